//! Convergence benchmark of recommendations replicas: three RELEASE replicas on one fresh
//! PostgreSQL database behind a gateway that balances over all three, ratings written through the
//! gateway's REST API in an open loop (50/s, then 500/s), and each replica's `WatchRatings` stream
//! watched directly. An event on a replica's stream means the change is in its index, so a
//! rating's latency to a replica is its arrival there minus the instant its PUT was sent; it has
//! converged when it has reached all three. Also the apply cost (each replica's CPU from
//! `/proc/<pid>/stat` over the changes it applied) and the final index digests, which must agree
//! with each other and with a rebuild from the ratings table.
//!
//! ```text
//! cargo build --release --bins
//! TEST_POSTGRES_URL=postgres://USER:PASS@127.0.0.1:5432/postgres \
//!   cargo bench -p recommendations --bench replicas -- --rates 50,500 --seconds 20
//! ```
//!
//! Writes `target/bench/replicas.md` (the processes' logs beside it in `replicas-logs/`). Exits
//! non-zero on a correctness failure only (a write refused, a rating missing from a stream,
//! indexes that differ), not on a missed latency target.
#![forbid(unsafe_code)]

#[path = "../common/mod.rs"]
mod common;
mod database;
mod driver;
mod procs;
mod report;
mod streams;
mod suite;

use common::{Error, target_dirs};
use database::{Databases, database_url};
use driver::{Driver, MAX_IN_FLIGHT, Outcome, Phase, arrivals, sign_up};
use report::{ms, quantile, report};
use streams::{counters, watch};
use suite::Suite;

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use catalog::Digest;
use clap::Parser;
use platform::database::LazyPool;
use recommendations::{
    changelog::{IndexState, rebuild_digest},
    store::{Backend, SqlRatingStore, migrator},
};
use tokio::task::JoinSet;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Three recommendations replicas on one PostgreSQL: time for a rating to reach every replica's index"
)]
struct Args {
    /// Rating rates (per second) to drive, one phase each, in order.
    #[arg(long, value_delimiter = ',', default_value = "50,500")]
    rates: Vec<u32>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Readers signed up, who take turns rating.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Seconds after a phase's last acknowledged write within which each of its ratings must
    /// have reached every stream (else it counts as missing).
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// Where the binaries are (default: beside this bench's own executable, target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Report file (default: target/bench/replicas.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(admin_url) = ["BENCH_POSTGRES_URL", "TEST_POSTGRES_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    else {
        eprintln!(
            "the replicas benchmark needs a PostgreSQL server: set BENCH_POSTGRES_URL or \
             TEST_POSTGRES_URL to an admin URL (postgres://USER:PASS@127.0.0.1:5432/postgres)"
        );
        return ExitCode::from(2);
    };
    let tag = format!(
        "bookstore_bench_replicas_{}_{}",
        std::process::id(),
        platform::now_unix_ms()
    );
    let dbs = Databases {
        recommendations: format!("{tag}_recs"),
        users: format!("{tag}_users"),
    };
    if let Err(e) = dbs.create(&admin_url).await {
        eprintln!("replicas benchmark: cannot create its databases: {e}");
        dbs.drop_all(&admin_url).await;
        return ExitCode::from(2);
    }
    // The run owns every child process: they are killed when it ends, however it ends (an
    // error, a panic, Ctrl-C, the overall time limit), before the databases are dropped.
    let run = tokio::spawn(run(args.clone(), admin_url.clone(), dbs.clone()));
    let abort = run.abort_handle();
    let limit = Duration::from_secs(300 + args.rates.len() as u64 * (args.seconds + 60));
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, run) => match r {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(format!("the run panicked: {join}").into()),
            Err(_) => { abort.abort(); Err(format!("the run took longer than {limit:?}").into()) }
        },
        _ = tokio::signal::ctrl_c() => { abort.abort(); Err("interrupted".into()) }
    };
    // Give an aborted run's drops (the children killed) a moment to happen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    dbs.drop_all(&admin_url).await;
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("replicas benchmark failed: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args, admin_url: String, dbs: Databases) -> Result<bool, Error> {
    if args.rates.is_empty() || args.rates.contains(&0) || args.users == 0 || args.seconds == 0 {
        return Err("--rates (each > 0), --users and --seconds must be positive".into());
    }
    let (target, profile) = target_dirs()?;
    let bin_dir = args.bin_dir.clone().unwrap_or(profile);
    let bench_dir = target.join("bench");
    let logs = bench_dir.join("replicas-logs");
    std::fs::create_dir_all(&logs)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()?;

    // 1. The suite: marketplace, users, three replicas, a gateway over the three.
    let recs_db = database_url(&admin_url, &dbs.recommendations);
    let users_db = database_url(&admin_url, &dbs.users);
    // The processes are kept (running) until the end of the run.
    let Suite {
        marketplace: _marketplace,
        replicas,
        users: _users,
        gateway: _gateway,
        gateway_http,
    } = suite::start(&bin_dir, &logs, &recs_db, users_db, &http).await?;

    // 2. Readers, then one stream per replica.
    let api = format!("http://{gateway_http}/api/v1");
    let signing = Instant::now();
    let tokens = sign_up(&http, &api, args.users).await?;
    println!(
        "{} readers signed up and in, {:.1} s",
        tokens.len(),
        signing.elapsed().as_secs_f64()
    );
    let mut streams = JoinSet::new();
    for r in &replicas {
        watch(r, &mut streams).await?;
    }
    let mut books = Digest::builtin()?.ids().to_vec();
    books.sort_unstable();
    let mut driver = Driver {
        http: http.clone(),
        api,
        tokens: Arc::new(tokens),
        books: Arc::new(books),
        seq: 0,
    };

    // 3. A second of warm-up (connections, caches; checked but not reported), then the phases.
    let schedule: Vec<(u32, u64, bool)> = std::iter::once((20, 1, false))
        .chain(args.rates.iter().map(|&r| (r, args.seconds, true)))
        .collect();
    let mut phases = Vec::new();
    let mut correct = true;
    let mut problems = Vec::new();
    // Every acknowledged rating's key, the warm-up's included.
    let mut all_keys = HashSet::new();
    for (rate, seconds, reported) in schedule {
        let before = counters(&http, &replicas).await?;
        let (outcomes, not_sent, send_seconds, latest_start) = driver.drive(rate, seconds).await;
        let mut acked = Vec::new();
        let (mut failed, mut first_failures) = (0u64, Vec::new());
        for o in outcomes {
            match o {
                Outcome::Acked(a) => acked.push(a),
                Outcome::Failed(why) => {
                    failed += 1;
                    if first_failures.len() < 5 {
                        first_failures.push(why);
                    }
                }
            }
        }
        // Until every acknowledged rating is on every stream, or the settle time has passed.
        let settle_until = Instant::now() + Duration::from_secs(args.settle_seconds);
        let latencies = loop {
            let l = arrivals(&acked, &replicas);
            if l.iter().all(|row| row.iter().all(Option::is_some)) || Instant::now() > settle_until
            {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let after = counters(&http, &replicas).await?;
        all_keys.extend(acked.iter().map(|a| a.key));
        let phase = Phase {
            rate,
            planned: u64::from(rate) * seconds,
            not_sent,
            failed,
            first_failures,
            acked,
            send_seconds,
            latest_start,
            latencies,
            counters: after
                .iter()
                .zip(&before)
                .map(|(a, b)| a.minus(*b))
                .collect(),
        };
        let label = if reported {
            format!("{rate}/s")
        } else {
            format!("warm-up {rate}/s")
        };
        if phase.failed > 0 {
            correct = false;
            problems.push(format!(
                "{label}: {} of {} writes failed, e.g. {:?}",
                phase.failed, phase.planned, phase.first_failures
            ));
        }
        if phase.missing() > 0 {
            correct = false;
            problems.push(format!(
                "{label}: {} acknowledged ratings missing from at least one replica's stream",
                phase.missing()
            ));
        }
        let every = phase.to_every();
        println!(
            "{label}: {} acknowledged, missing {}, to every replica p50 {} p99 {} max {}",
            phase.acked.len(),
            phase.missing(),
            ms(quantile(&every, 0.5)),
            ms(quantile(&every, 0.99)),
            ms(every.iter().max().copied().unwrap_or_default())
        );
        if reported {
            phases.push(phase);
        }
    }
    for r in &replicas {
        let feed = r.feed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &feed.ended {
            correct = false;
            problems.push(format!("{}: {why}", r.proc.name));
        }
    }
    streams.abort_all();

    // 4. The final indexes: equal to each other and to a rebuild from the ratings table.
    let pool = platform::database::connect(&recs_db, 2, &migrator(Backend::Postgres)).await?;
    let lazy = LazyPool::default();
    lazy.set(pool.clone());
    let rebuilt = rebuild_digest(
        &SqlRatingStore::new(lazy, Backend::Postgres),
        Digest::builtin()?,
    )
    .await?;
    pool.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let states = loop {
        let mut states = Vec::new();
        for r in &replicas {
            let url = format!("http://{}/index", r.proc.admin);
            states.push(
                http.get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<IndexState>()
                    .await?,
            );
        }
        if states.iter().all(|s| s.digest == rebuilt.digest) || Instant::now() > deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if states.iter().any(|s| s.digest != rebuilt.digest) {
        correct = false;
        problems.push(format!(
            "the replicas' index digests {:?} are not all the rebuild's {}",
            states.iter().map(|s| s.digest.as_str()).collect::<Vec<_>>(),
            rebuilt.digest
        ));
    }
    // The stream tasks hold channels to the replicas; they end before the replicas do.
    while streams.join_next().await.is_some() {}
    let unexpected: Vec<usize> = {
        replicas
            .iter()
            .map(|r| {
                let feed = r.feed.lock().unwrap_or_else(|e| e.into_inner());
                feed.events
                    .iter()
                    .filter(|(k, _)| !all_keys.contains(k))
                    .count()
            })
            .collect()
    };

    // 5. The report.
    let md = report(
        &args,
        &admin_url,
        &phases,
        &replicas,
        &states,
        &rebuilt.digest,
        &unexpected,
        correct,
        &problems,
    )?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| bench_dir.join("replicas.md"));
    std::fs::write(&out, &md)?;
    println!("\n{md}\nwritten to {}", out.display());
    for p in &problems {
        eprintln!("correctness failure: {p}");
    }
    Ok(correct)
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], tests::free_port()))
}
