//! Scale benchmark of the recommendations service: synthetic ratings that follow the catalog's
//! real popularity and star histograms are written to a fresh SQLite file, the RELEASE binary is
//! started on it as a child process, and its start-up time, memory and query latencies are
//! measured from outside.
//!
//! ```text
//! cargo build --release -p recommendations --bin recommendations
//! cargo bench -p recommendations --bench scale -- --ratings 1000000 --users 50000 --seed 42
//! ```
//!
//! Writes a markdown report to `target/bench/recommendations-scale.md` and exits non-zero when
//! the peak RSS reaches `--max-peak-mib` (192 MiB: the Deployment's limit is 256Mi).
#![forbid(unsafe_code)]

#[path = "../common/mod.rs"]
mod common;
mod db;
mod measure;

use common::{Error, target_dirs};
use db::{ROWS_PER_INSERT, write_db};
use measure::{ActivitySummary, Latencies, Mem};

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use catalog::Digest;
use clap::Parser;
use platform::auth::{GeneratedKeys, TokenSigner, generate_keys};
use protos::recommendations::v1::{
    ListPopularBooksRequest, ListRecommendationsForMeRequest, ListSimilarBooksRequest,
    RecommendationSource, recommendations_service_client::RecommendationsServiceClient,
};
use recommendations::{
    recommender::Recommender,
    similarity::{Limits, bound_bytes},
    store::RatingRow,
};
use tonic::{Request, transport::Channel};
use workload::{Spec, SplitMix64, Synthetic};

/// The token key pair of this run: the service gets the public key, the benchmark signs.
static KEYS: std::sync::LazyLock<GeneratedKeys> = std::sync::LazyLock::new(generate_keys);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(about = "Scale benchmark of the recommendations service (release binary, SQLite).")]
struct Args {
    /// Ratings to generate.
    #[arg(long, default_value_t = 1_000_000)]
    ratings: u64,
    /// Users to generate.
    #[arg(long, default_value_t = 50_000)]
    users: u32,
    /// Seed of the synthetic ratings and of the query sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// ListSimilarBooks calls (books sampled by popularity).
    #[arg(long, default_value_t = 2_000)]
    similar_queries: usize,
    /// ListRecommendationsForMe calls (users sampled across the activity distribution).
    #[arg(long, default_value_t = 2_000)]
    personal_queries: usize,
    /// Fail when the peak RSS reaches this many MiB.
    #[arg(long, default_value_t = 192.0)]
    max_peak_mib: f64,
    /// The recommendations binary (default: `recommendations` next to this benchmark's profile
    /// directory, i.e. target/release/recommendations).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scale benchmark failed: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Error> {
    let (target, profile) = target_dirs()?;
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| profile.join("recommendations"));
    if !binary.is_file() {
        eprintln!(
            "the release binary {} is missing: build it first with\n    \
             cargo build --release -p recommendations --bin recommendations",
            binary.display()
        );
        return Ok(ExitCode::from(2));
    }
    if let (Ok(bin), Ok(me)) = (
        std::fs::metadata(&binary).and_then(|m| m.modified()),
        std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|m| m.modified()),
    ) && bin < me
    {
        eprintln!(
            "warning: {} is older than this benchmark; it may not include the latest changes \
             (cargo build --release -p recommendations --bin recommendations)",
            binary.display()
        );
    }
    let bench_dir = target.join("bench");
    std::fs::create_dir_all(&bench_dir)?;

    // 1. Synthetic ratings into a fresh SQLite file.
    let catalog = Digest::builtin()?;
    let started = Instant::now();
    let synthetic = Synthetic::new(
        &catalog,
        Spec {
            ratings: args.ratings,
            users: args.users,
            seed: args.seed,
            ..Spec::default()
        },
    );
    let db_path = bench_dir.join("recommendations-scale.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let written = write_db(&db_path, &synthetic).await?;
    let generation = started.elapsed();
    let db_bytes = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    let activity = ActivitySummary::of(&synthetic);
    println!(
        "generated and wrote {written} ratings by {} users in {:.2} s ({:.0} MiB file)",
        synthetic.users(),
        generation.as_secs_f64(),
        db_bytes as f64 / MIB
    );

    // The same ratings indexed in this process, without the database: the index's own time and
    // size (the service's log line "recommender ready" has the same figures).
    let built = Instant::now();
    let recommender = Recommender::new(Digest::builtin()?);
    let mut loader = recommender.loader();
    for r in synthetic.iter() {
        loader.push(RatingRow {
            user_id: synthetic.user_id(r.user),
            book_id: r.book_id,
            stars: r.stars,
            updated_at_ms: r.updated_at_ms,
        });
    }
    loader.finish();
    let build_time = built.elapsed();
    let stats = recommender.stats();
    drop(recommender);
    println!(
        "indexed in process in {:.2} s: {stats:?}",
        build_time.as_secs_f64()
    );

    // 2. Start the release binary on it.
    let (grpc_addr, admin_addr) = (free_addr(), free_addr());
    let exec = Instant::now();
    let mut child = tokio::process::Command::new(&binary)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db_path.display()),
        )
        .env("TOKEN_PUBLIC_KEYS", &KEYS.public_key)
        .env("GRPC_ADDR", grpc_addr.to_string())
        .env("ADMIN_ADDR", admin_addr.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("CATALOG_PATH")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the child exited at once")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let readyz = format!("http://{admin_addr}/readyz");
    let mut at_start: Option<(Duration, Mem)> = None;
    let serving = loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the service exited before SERVING: {status}").into());
        }
        if exec.elapsed() > Duration::from_secs(600) {
            return Err("not SERVING after 600 s".into());
        }
        // Any answer means the admin port is up; 200 means SERVING.
        if let Ok(r) = http.get(&readyz).send().await {
            if at_start.is_none() {
                at_start = Some((exec.elapsed(), Mem::of(pid)?));
            }
            if r.status().is_success() {
                break exec.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let after_load = Mem::of(pid)?;
    let (admin_up, at_start) = at_start.ok_or("never answered")?;
    println!(
        "SERVING after {:.3} s; RSS {:.1} MiB (peak {:.1} MiB)",
        serving.as_secs_f64(),
        after_load.rss as f64 / MIB,
        after_load.hwm as f64 / MIB
    );

    // 3. Queries, one at a time over one channel.
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))?
        .connect()
        .await?;
    let mut client = RecommendationsServiceClient::new(channel);
    client
        .list_popular_books(ListPopularBooksRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await?;
    let mut rng = SplitMix64::new(args.seed ^ 0x5157);
    let books: Vec<i64> = (0..args.similar_queries)
        .map(|_| synthetic.popular_book(&mut rng))
        .collect();
    let mut similar = Latencies::default();
    for &book in &books {
        let t = Instant::now();
        let r = client
            .list_similar_books(ListSimilarBooksRequest {
                book_id: book,
                page_size: 10,
            })
            .await?;
        similar.record(t.elapsed(), r.get_ref().recommendations.len());
    }
    let key = TokenSigner::from_secret(&KEYS.signing_key)?;
    let users = synthetic.users_across_activity(args.personal_queries, &mut rng);
    let requests: Vec<Request<ListRecommendationsForMeRequest>> = users
        .iter()
        .map(|&u| {
            let (token, _) = key.issue(&synthetic.user_id(u), Duration::from_secs(3600));
            let mut r = Request::new(ListRecommendationsForMeRequest { page_size: 10 });
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            Ok(r)
        })
        .collect::<Result<_, Error>>()?;
    let mut personal = Latencies::default();
    let mut personal_picks = 0usize;
    for request in requests {
        let t = Instant::now();
        let r = client.list_recommendations_for_me(request).await?;
        let recs = &r.get_ref().recommendations;
        personal.record(t.elapsed(), recs.len());
        personal_picks += recs
            .iter()
            .filter(|x| x.source == RecommendationSource::Personal as i32)
            .count();
    }
    let after_queries = Mem::of(pid)?;

    // 4. Stop it gracefully.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        child.kill().await?;
    }

    // 5. Report.
    let peak_mib = after_queries.hwm.max(after_load.hwm) as f64 / MIB;
    let pass = peak_mib < args.max_peak_mib;
    let bound = bound_bytes(
        Limits::default(),
        catalog.len(),
        written as usize,
        synthetic.users() as usize,
        36,
    );
    let mut md = String::new();
    writeln!(md, "# recommendations: scale benchmark\n")?;
    writeln!(
        md,
        "{} ratings by {} users (seed {}), release binary `{}`, SQLite, default limits \
         (window C = 50, neighbours M = 100, seeds L = 50).\n",
        written,
        synthetic.users(),
        args.seed,
        binary.display()
    )?;
    writeln!(md, "| measure | value |\n| --- | --- |")?;
    writeln!(
        md,
        "| ratings per user | median {}, p99 {}, max {}; {:.0} % of ratings by users with more than 50 |",
        activity.median,
        activity.p99,
        activity.max,
        activity.heavy_share * 100.0
    )?;
    writeln!(
        md,
        "| DB generation (generate + one transaction of {ROWS_PER_INSERT}-row INSERTs) | {:.2} s ({:.0} MiB file) |",
        generation.as_secs_f64(),
        db_bytes as f64 / MIB
    )?;
    writeln!(
        md,
        "| exec → admin port answers | {:.3} s |",
        admin_up.as_secs_f64()
    )?;
    writeln!(md, "| exec → SERVING | {:.3} s |", serving.as_secs_f64())?;
    writeln!(
        md,
        "| RSS at start (admin port up) | {:.1} MiB |",
        at_start.rss as f64 / MIB
    )?;
    writeln!(
        md,
        "| RSS after load (SERVING) | {:.1} MiB |",
        after_load.rss as f64 / MIB
    )?;
    writeln!(
        md,
        "| RSS after the queries | {:.1} MiB |",
        after_queries.rss as f64 / MIB
    )?;
    writeln!(
        md,
        "| peak RSS (VmHWM) | {peak_mib:.1} MiB (limit {:.0} MiB: {}) |",
        args.max_peak_mib,
        if pass { "pass" } else { "FAIL" }
    )?;
    writeln!(
        md,
        "| index built in process (no database) | {:.2} s, {:.1} MiB estimated ({} neighbour entries over {} books) |",
        build_time.as_secs_f64(),
        stats.approx_bytes as f64 / MIB,
        stats.neighbour_entries,
        stats.books
    )?;
    writeln!(
        md,
        "| index bound (similarity::bound_bytes) | {:.1} MiB |",
        bound as f64 / MIB
    )?;
    writeln!(
        md,
        "\n| RPC (sequential, one channel) | calls | p50 | p99 | max | mean results |\n| --- | --- | --- | --- | --- | --- |"
    )?;
    writeln!(md, "{}", similar.row("ListSimilarBooks (by popularity)"))?;
    writeln!(
        md,
        "{}",
        personal.row("ListRecommendationsForMe (across activity)")
    )?;
    writeln!(
        md,
        "\nPersonal picks (not popular fill) per ListRecommendationsForMe: {:.1} of 10 on average.",
        personal_picks as f64 / personal.calls().max(1) as f64
    )?;
    let report = bench_dir.join("recommendations-scale.md");
    std::fs::write(&report, &md)?;
    println!("\n{md}\nwritten to {}", report.display());
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        eprintln!("peak RSS {peak_mib:.1} MiB >= {:.0} MiB", args.max_peak_mib);
        ExitCode::FAILURE
    })
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], tests::free_port()))
}
