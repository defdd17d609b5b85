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

mod common;

use common::{Error, target_dirs};

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use catalog::Digest;
use clap::Parser;
use platform::database::LazyPool;
use protos::recommendations::v1::{
    RatingEventKind, WatchRatingsRequest,
    recommendations_service_client::RecommendationsServiceClient,
};
use recommendations::{
    changelog::{IndexState, rebuild_digest},
    store::{Backend, SqlRatingStore, migrator},
};
use tokio::{sync::Semaphore, task::JoinSet};
use tonic::transport::Channel;

/// The issue's bound: a rating reaches every replica's index with p99 ≤ 250 ms and max ≤ 1 s.
const P99_TARGET: Duration = Duration::from_millis(250);
const MAX_TARGET: Duration = Duration::from_secs(1);
const REPLICAS: usize = 3;
const TOKEN_SECRET: &str = "replicas-benchmark-secret-that-is-long-enough";
/// As the Dockerfile, `make run` and the manifests set it.
const GLIBC_TUNABLES: &str = "glibc.malloc.tcache_count=64";
/// Ratings in flight at once; beyond it a scheduled rating is counted as not sent.
const MAX_IN_FLIGHT: usize = 2_000;
/// Events kept per stream (far above what the default run makes).
const MAX_EVENTS: usize = 1_000_000;

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

/// The two fresh databases of a run: the replicas' and the users service's (each service runs
/// its own migrations).
#[derive(Clone)]
struct Databases {
    recommendations: String,
    users: String,
}

impl Databases {
    async fn admin(admin_url: &str) -> Result<sqlx::PgConnection, Error> {
        use sqlx::Connection;
        Ok(sqlx::PgConnection::connect(admin_url).await?)
    }

    async fn create(&self, admin_url: &str) -> Result<(), Error> {
        let mut conn = Self::admin(admin_url).await?;
        for db in [&self.recommendations, &self.users] {
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    async fn drop_all(&self, admin_url: &str) {
        let Ok(mut conn) = Self::admin(admin_url).await else {
            eprintln!("warning: cannot reach PostgreSQL to drop the bench databases");
            return;
        };
        for db in [&self.recommendations, &self.users] {
            if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await
            {
                eprintln!("warning: dropping {db}: {e}");
            }
        }
    }
}

/// `admin_url` with its database replaced by `db` (query string kept).
fn database_url(admin_url: &str, db: &str) -> String {
    let (main, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(m, q)| (m, Some(q)));
    let base = match main.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, _)) => format!("{scheme}://{authority}"),
            None => main.to_owned(),
        },
        None => main.to_owned(),
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Settings given to a process.
type Settings = Vec<(&'static str, String)>;

/// Token settings: `users keygen`'s pair (the signing key for users alone, the public key for
/// every service that checks tokens), or, from a users binary without `keygen`, the shared
/// `TOKEN_SECRET` of earlier builds.
fn token_env(bin_dir: &Path) -> Result<(Settings, Settings), Error> {
    let out = Command::new(bin_dir.join("users"))
        .arg("keygen")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("running users keygen: {e} (cargo build --release --bins)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Ok(
        match (
            out.status.success(),
            line("TOKEN_SIGNING_KEY"),
            line("TOKEN_PUBLIC_KEYS"),
        ) {
            (true, Some(signing), Some(public)) => (
                vec![("TOKEN_SIGNING_KEY", signing)],
                vec![("TOKEN_PUBLIC_KEYS", public)],
            ),
            _ => (Vec::new(), vec![("TOKEN_SECRET", TOKEN_SECRET.to_owned())]),
        },
    )
}

/// One server process; killed (and reaped) when dropped.
struct Proc {
    name: String,
    child: Child,
    admin: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(
        bin_dir: &Path,
        binary: &str,
        name: &str,
        env: &[(&str, String)],
        admin: SocketAddr,
        logs: &Path,
    ) -> Result<Self, Error> {
        let path = bin_dir.join(binary);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: build it first with `cargo build --release --bins`",
                path.display()
            )
            .into());
        }
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let child = Command::new(&path)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("ADMIN_ADDR", admin.to_string())
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("CATALOG_PATH")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", path.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            admin,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `within`) until the admin port's `/readyz` answers 200.
    async fn ready(&mut self, http: &reqwest::Client, within: Duration) -> Result<(), Error> {
        let url = format!("http://{}/readyz", self.admin);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("{} exited before it was ready: {status}", self.name).into());
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(format!("{} not ready within {within:?} ({url})", self.name).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// CPU time (user + system, threads that ended included) of a process in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, after the command name's last `)`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// The sum of a metric's samples whose labels contain every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn get_text(http: &reqwest::Client, url: &str) -> Result<String, Error> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// What identifies a rating on the streams within a run: (book_id, stars, update_time_unix_ms).
/// Book ids are cycled through the catalog, so a book is rated again only after every other one.
type Key = (i64, i32, i64);

/// What one replica's stream has delivered: each event's key and arrival.
#[derive(Default)]
struct Feed {
    events: Vec<(Key, Instant)>,
    ended: Option<String>,
}

/// A replica under test.
struct Replica {
    proc: Proc,
    grpc: SocketAddr,
    feed: Arc<Mutex<Feed>>,
}

/// Per-replica counters read at a phase's edges.
#[derive(Clone, Copy, Default)]
struct Counters {
    cpu: f64,
    applied: f64,
    delay_sum: f64,
    delay_count: f64,
    writes: f64,
}

impl Counters {
    async fn of(http: &reqwest::Client, r: &Replica) -> Result<Self, Error> {
        let text = get_text(http, &format!("http://{}/metrics", r.proc.admin)).await?;
        Ok(Self {
            cpu: cpu_seconds(r.proc.pid()),
            applied: metric(&text, "recommendations_log_applied_total", &[]),
            delay_sum: metric(&text, "recommendations_log_apply_delay_seconds_sum", &[]),
            delay_count: metric(&text, "recommendations_log_apply_delay_seconds_count", &[]),
            writes: metric(
                &text,
                "grpc_server_handled_total",
                &["grpc_method=\"RateBook\""],
            ),
        })
    }

    fn minus(self, before: Self) -> Self {
        Self {
            cpu: self.cpu - before.cpu,
            applied: self.applied - before.applied,
            delay_sum: self.delay_sum - before.delay_sum,
            delay_count: self.delay_count - before.delay_count,
            writes: self.writes - before.writes,
        }
    }
}

/// A rating the gateway acknowledged.
struct Acked {
    key: Key,
    sent: Instant,
    answered: Instant,
}

/// What one phase saw.
struct Phase {
    rate: u32,
    planned: u64,
    not_sent: u64,
    failed: u64,
    first_failures: Vec<String>,
    acked: Vec<Acked>,
    send_seconds: f64,
    latest_start: Duration,
    /// Per acknowledged rating: its arrival on each replica, minus its send.
    latencies: Vec<[Option<Duration>; REPLICAS]>,
    counters: Vec<Counters>,
}

impl Phase {
    fn missing(&self) -> usize {
        self.latencies
            .iter()
            .filter(|l| l.iter().any(Option::is_none))
            .count()
    }

    /// Time to every replica, of the ratings that reached them all.
    fn to_every(&self) -> Vec<Duration> {
        self.latencies
            .iter()
            .filter_map(|l| {
                l.iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()?
                    .into_iter()
                    .max()
            })
            .collect()
    }

    fn to_replica(&self, r: usize) -> Vec<Duration> {
        self.latencies.iter().filter_map(|l| l[r]).collect()
    }

    fn acks(&self) -> Vec<Duration> {
        self.acked.iter().map(|a| a.answered - a.sent).collect()
    }
}

/// Nearest-rank quantile.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Signs up `n` readers through the gateway (a few at a time: sign-up and sign-in each hash a
/// password); their bearer tokens.
async fn sign_up(http: &reqwest::Client, api: &str, n: usize) -> Result<Vec<String>, Error> {
    let gate = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (http, api, gate) = (http.clone(), api.to_owned(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let email = format!("bench-{i}@example.org");
            let password = format!("bench-password-{i}");
            let r = http
                .post(format!("{api}/users"))
                .json(&serde_json::json!({
                    "email": email, "display_name": format!("Bench {i}"), "password": password
                }))
                .send()
                .await?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("sign-up answered {}: {}", r.status(), r.text().await?).into());
            }
            let r = http
                .post(format!("{api}/sessions"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("sign-in answered {}: {}", r.status(), r.text().await?).into());
            }
            let body: serde_json::Value = r.json().await?;
            body["access_token"]
                .as_str()
                .map(|t| (i, t.to_owned()))
                .ok_or_else(|| Error::from("no access_token in the session"))
        });
    }
    let mut tokens = vec![String::new(); n];
    while let Some(done) = set.join_next().await {
        let (i, token) = done??;
        tokens[i] = token;
    }
    Ok(tokens)
}

/// Opens a replica's `WatchRatings` (every book) and records each event's arrival until the
/// stream ends or the task is aborted.
async fn watch(replica: &Replica, tasks: &mut JoinSet<()>) -> Result<(), Error> {
    let channel = Channel::from_shared(format!("http://{}", replica.grpc))?
        .connect()
        .await?;
    let mut stream = RecommendationsServiceClient::new(channel)
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await?
        .into_inner();
    let feed = replica.feed.clone();
    tasks.spawn(async move {
        loop {
            let next = stream.message().await;
            let at = Instant::now();
            let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
            match next {
                Ok(Some(event)) => {
                    if event.kind == RatingEventKind::Rated as i32
                        && let Some(r) = event.rating
                        && feed.events.len() < MAX_EVENTS
                    {
                        feed.events
                            .push(((r.book_id, r.stars, r.update_time_unix_ms), at));
                    }
                }
                Ok(None) => {
                    feed.ended = Some("the stream ended".into());
                    return;
                }
                Err(status) => {
                    feed.ended = Some(format!("the stream failed: {status}"));
                    return;
                }
            }
        }
    });
    Ok(())
}

/// Everything a phase needs to drive ratings.
struct Driver {
    http: reqwest::Client,
    api: String,
    tokens: Arc<Vec<String>>,
    books: Arc<Vec<i64>>,
    /// Ratings scheduled so far in the run (the next one's sequence number).
    seq: u64,
}

enum Outcome {
    Acked(Acked),
    Failed(String),
}

impl Driver {
    /// Sends `rate`/s for `seconds` in an open loop: each PUT starts at its scheduled instant,
    /// whether or not the earlier ones have been answered.
    async fn drive(&mut self, rate: u32, seconds: u64) -> (Vec<Outcome>, u64, f64, Duration) {
        let planned = u64::from(rate) * seconds;
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut set = JoinSet::new();
        let mut not_sent = 0;
        let mut latest_start = Duration::ZERO;
        let start = Instant::now() + Duration::from_millis(10);
        for i in 0..planned {
            let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(at.into()).await;
            latest_start = latest_start.max(at.elapsed());
            let seq = self.seq;
            self.seq += 1;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                not_sent += 1;
                continue;
            };
            let token = self.tokens[(seq % self.tokens.len() as u64) as usize].clone();
            let book = self.books[(seq % self.books.len() as u64) as usize];
            let stars = (seq % 5) as i32 + 1;
            let request = self
                .http
                .put(format!("{}/me/ratings/{book}", self.api))
                .bearer_auth(token)
                .json(&serde_json::json!({ "stars": stars }));
            set.spawn(async move {
                let _permit = permit;
                let sent = Instant::now();
                let answer = match request.send().await {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(format!("PUT book {book}: {e}")),
                };
                let status = answer.status();
                if !status.is_success() {
                    let body = answer.text().await.unwrap_or_default();
                    return Outcome::Failed(format!("PUT book {book}: {status} {body}"));
                }
                match answer.json::<serde_json::Value>().await {
                    Ok(v) => Outcome::Acked(Acked {
                        key: (
                            v["book_id"].as_i64().unwrap_or(-1),
                            v["stars"].as_i64().unwrap_or(-1) as i32,
                            v["update_time_unix_ms"].as_i64().unwrap_or(-1),
                        ),
                        sent,
                        answered: Instant::now(),
                    }),
                    Err(e) => Outcome::Failed(format!("PUT book {book}: body: {e}")),
                }
            });
        }
        let send_seconds = start.elapsed().as_secs_f64();
        let mut outcomes = Vec::with_capacity(planned as usize);
        // Each PUT is bounded by the client's timeout.
        while let Some(done) = set.join_next().await {
            outcomes.push(
                done.unwrap_or_else(|e| Outcome::Failed(format!("a sender task failed: {e}"))),
            );
        }
        (outcomes, not_sent, send_seconds, latest_start)
    }
}

/// Each acknowledged rating's arrival on every replica's stream, minus its send.
fn arrivals(acked: &[Acked], replicas: &[Replica]) -> Vec<[Option<Duration>; REPLICAS]> {
    let mut seen: Vec<HashMap<Key, Instant>> = Vec::with_capacity(REPLICAS);
    for r in replicas {
        let feed = r.feed.lock().unwrap_or_else(|e| e.into_inner());
        let mut first = HashMap::with_capacity(feed.events.len());
        for &(key, at) in &feed.events {
            first.entry(key).or_insert(at);
        }
        seen.push(first);
    }
    acked
        .iter()
        .map(|a| {
            let mut row = [None; REPLICAS];
            for (slot, s) in row.iter_mut().zip(&seen) {
                *slot = s
                    .get(&a.key)
                    .map(|&at| at.saturating_duration_since(a.sent));
            }
            row
        })
        .collect()
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
    let (signing, verifying) = token_env(&bin_dir)?;
    let market_grpc = free_addr()?;
    let mut marketplace = Proc::spawn(
        &bin_dir,
        "marketplace",
        "marketplace",
        &[("GRPC_ADDR", market_grpc.to_string())],
        free_addr()?,
        &logs,
    )?;
    let mut replicas = Vec::with_capacity(REPLICAS);
    for i in 0..REPLICAS {
        let grpc = free_addr()?;
        let proc = Proc::spawn(
            &bin_dir,
            "recommendations",
            &format!("recommendations-{}", i + 1),
            &[
                vec![
                    ("GRPC_ADDR", grpc.to_string()),
                    ("DATABASE_URL", recs_db.clone()),
                ],
                verifying.clone(),
            ]
            .concat(),
            free_addr()?,
            &logs,
        )?;
        replicas.push(Replica {
            proc,
            grpc,
            feed: Arc::default(),
        });
    }
    let users_grpc = free_addr()?;
    let mut users = Proc::spawn(
        &bin_dir,
        "users",
        "users",
        &[
            vec![
                ("GRPC_ADDR", users_grpc.to_string()),
                ("DATABASE_URL", users_db),
                (
                    "RECOMMENDATIONS_URL",
                    format!("http://{}", replicas[0].grpc),
                ),
            ],
            verifying,
            signing,
        ]
        .concat(),
        free_addr()?,
        &logs,
    )?;
    let gateway_http = free_addr()?;
    let recommendations_url = replicas
        .iter()
        .map(|r| format!("http://{}", r.grpc))
        .collect::<Vec<_>>()
        .join(",");
    let mut gateway = Proc::spawn(
        &bin_dir,
        "gateway",
        "gateway",
        &[
            ("HTTP_ADDR", gateway_http.to_string()),
            ("MARKETPLACE_URL", format!("http://{market_grpc}")),
            ("RECOMMENDATIONS_URL", recommendations_url),
            ("USERS_URL", format!("http://{users_grpc}")),
            // Every reader signs up and in from this one address.
            ("AUTH_RATE_PER_MINUTE", "1000000".into()),
            ("AUTH_RATE_BURST", "1000000".into()),
        ],
        free_addr()?,
        &logs,
    )?;
    let within = Duration::from_secs(120);
    marketplace.ready(&http, within).await?;
    for r in &mut replicas {
        r.proc.ready(&http, within).await?;
    }
    users.ready(&http, within).await?;
    gateway.ready(&http, within).await?;
    // Until the gateway's balancer holds all three, a phase would not be balanced over them.
    let started = Instant::now();
    loop {
        let text = get_text(&http, &format!("http://{}/metrics", gateway.admin)).await?;
        let ready = metric(
            &text,
            "gateway_upstream_ready_replicas",
            &["upstream=\"recommendations\""],
        );
        if ready as usize == REPLICAS {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the gateway sees {ready} ready recommendations replicas").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "suite up: gateway http://{gateway_http}, replicas {}",
        replicas
            .iter()
            .map(|r| r.grpc.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

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

async fn counters(http: &reqwest::Client, replicas: &[Replica]) -> Result<Vec<Counters>, Error> {
    let mut v = Vec::with_capacity(replicas.len());
    for r in replicas {
        v.push(Counters::of(http, r).await?);
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    admin_url: &str,
    phases: &[Phase],
    replicas: &[Replica],
    states: &[IndexState],
    rebuilt: &str,
    unexpected: &[usize],
    correct: bool,
    problems: &[String],
) -> Result<String, Error> {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut md = String::new();
    writeln!(md, "# recommendations: three replicas converging\n")?;
    let rates = args
        .rates
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let defaults = Args::parse_from(["replicas"]);
    let make_args = if (&args.rates, args.seconds, args.users, args.settle_seconds)
        == (
            &defaults.rates,
            defaults.seconds,
            defaults.users,
            defaults.settle_seconds,
        ) {
        String::new()
    } else {
        format!(
            " REPLICAS_ARGS=\"--rates {rates} --seconds {} --users {} --settle-seconds {}\"",
            args.seconds, args.users, args.settle_seconds
        )
    };
    writeln!(
        md,
        "Machine: `nproc` {nproc}, {date}. Command: `TEST_POSTGRES_URL={} make bench-replicas{make_args}` \
         (phases of {} s at {rates} ratings/s).\n",
        platform::database::redact(admin_url),
        args.seconds,
    )?;
    writeln!(
        md,
        "Release binaries on loopback: marketplace, users, three recommendations replicas on one \
         fresh PostgreSQL database, a gateway balancing over the three. {} readers rate books \
         (`PUT /api/v1/me/ratings/{{id}}`, HTTP/1.1 keep-alive) in an open loop; each replica's \
         `WatchRatings` is watched directly, and an event there means the change is in that \
         replica's index. Latency: the PUT sent → the rating on a replica's stream; *to every \
         replica* is the slowest of the three. Targets: p99 ≤ {} ms, max ≤ {} ms.\n",
        args.users,
        P99_TARGET.as_millis(),
        MAX_TARGET.as_millis()
    )?;
    writeln!(
        md,
        "| rate | sent (achieved) | acknowledged | missing | to every replica p50 | p99 | max | \
         p99 r1 | p99 r2 | p99 r3 | PUT answered p99 | p99 ≤ 250 ms | max ≤ 1 s |"
    )?;
    writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for p in phases {
        let every = p.to_every();
        let (p99, max) = (
            quantile(&every, 0.99),
            every.iter().max().copied().unwrap_or_default(),
        );
        let met = |ok: bool| if ok { "met" } else { "**missed**" };
        let sent = p.planned - p.not_sent;
        writeln!(
            md,
            "| {}/s | {sent} ({:.0}/s) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.rate,
            sent as f64 / p.send_seconds.max(1e-9),
            p.acked.len(),
            p.missing(),
            ms(quantile(&every, 0.5)),
            ms(p99),
            ms(max),
            ms(quantile(&p.to_replica(0), 0.99)),
            ms(quantile(&p.to_replica(1), 0.99)),
            ms(quantile(&p.to_replica(2), 0.99)),
            ms(quantile(&p.acks(), 0.99)),
            met(!every.is_empty() && p99 <= P99_TARGET),
            met(!every.is_empty() && max <= MAX_TARGET),
        )?;
    }
    writeln!(
        md,
        "\nApply cost: each replica's CPU (user + system, `/proc/<pid>/stat`) over the phase, \
         divided by the changes it applied (`recommendations_log_applied_total`). It also holds \
         the replica's share of the writes (RateBook calls the gateway sent it) and its stream; \
         server-side delay is `recommendations_log_apply_delay_seconds` (write's timestamp → \
         applied), mean.\n"
    )?;
    writeln!(
        md,
        "| rate | replica | writes taken | applied | CPU | µs CPU per rating applied | server-side delay, mean |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for p in phases {
        for (i, c) in p.counters.iter().enumerate() {
            writeln!(
                md,
                "| {}/s | r{} | {:.0} | {:.0} | {:.2} s | {:.0} µs | {:.1} ms |",
                p.rate,
                i + 1,
                c.writes,
                c.applied,
                c.cpu,
                c.cpu * 1e6 / c.applied.max(1.0),
                c.delay_sum * 1000.0 / c.delay_count.max(1.0)
            )?;
        }
    }
    writeln!(
        md,
        "\nFinal indexes (admin `/index`), against a rebuild from the ratings table: `{rebuilt}`.\n"
    )?;
    writeln!(
        md,
        "| replica | position | open gaps | users | ratings | digest | stream events of no acknowledged PUT |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for (i, (s, r)) in states.iter().zip(replicas).enumerate() {
        writeln!(
            md,
            "| r{} ({}) | {} | {} | {} | {} | `{}` {} | {} |",
            i + 1,
            r.grpc,
            s.position,
            s.open_gaps,
            s.users,
            s.ratings,
            s.digest,
            if s.digest == rebuilt {
                "= rebuild"
            } else {
                "**≠ rebuild**"
            },
            unexpected.get(i).copied().unwrap_or(0)
        )?;
    }
    let latency_met = phases.iter().all(|p| {
        let every = p.to_every();
        !every.is_empty()
            && quantile(&every, 0.99) <= P99_TARGET
            && every.iter().max().is_some_and(|m| *m <= MAX_TARGET)
    });
    writeln!(
        md,
        "\nCorrectness: {}. Latency targets (p99 ≤ 250 ms, max ≤ 1 s at every rate): {}.",
        if correct {
            "every acknowledged rating reached every replica's stream, and every index equals the rebuild".to_owned()
        } else {
            format!("**FAILED**: {}", problems.join("; "))
        },
        if latency_met { "met" } else { "**missed**" }
    )?;
    if let Some(worst) = phases.iter().map(|p| p.latest_start).max() {
        writeln!(
            md,
            "\nThe open loop started its PUTs at most {} after their scheduled instant; ratings \
             not sent because {MAX_IN_FLIGHT} were in flight: {}.",
            ms(worst),
            phases.iter().map(|p| p.not_sent).sum::<u64>()
        )?;
    }
    Ok(md)
}
