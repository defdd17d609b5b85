//! Recommendations replicas on one real PostgreSQL under faults: a replica killed during writes
//! and started again, the replicas' listening connections terminated, PostgreSQL itself
//! restarted. After each, every replica's index equals a rebuild from the ratings table, and
//! every rating the API acknowledged reached every feed subscriber that stayed connected.
//!
//! Each test runs a PostgreSQL server of its own (initdb into a temporary folder, on a free
//! port) so it can restart it. Needs Debian's `postgresql` package; without it the tests say so
//! and pass, unless `BOOKSTORE_REQUIRE_POSTGRES=1` (CI sets it).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use catalog::Digest;
use platform::database::LazyPool;
use protos::recommendations::v1::{
    RatingEventKind, WatchRatingsRequest,
    recommendations_service_client::RecommendationsServiceClient,
};
use recommendations::{
    changelog::{IndexState, rebuild_digest},
    store::{Backend, SqlRatingStore, migrator},
};
use reqwest::Client;
use serde_json::json;
use tests::{Suite, SuiteOptions, unique, wait_until};
use tokio::{sync::mpsc, task::JoinHandle};

/// A PostgreSQL server of the test's own, stopped when dropped.
struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Root cannot run PostgreSQL: the server runs as the `postgres` user then.
    as_postgres: bool,
}

impl PgServer {
    /// initdb and start a server on a free loopback port; `None` (after saying so) when the
    /// server binaries are not installed.
    fn start() -> Option<PgServer> {
        let Some(bin) = server_bin_dir() else {
            assert!(
                std::env::var("BOOKSTORE_REQUIRE_POSTGRES").is_err(),
                "BOOKSTORE_REQUIRE_POSTGRES is set but no PostgreSQL server is installed \
                 (/usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
            );
            platform::database::testing::note_skip(
                "replicas on PostgreSQL: no PostgreSQL server installed (apt-get install postgresql)",
            );
            return None;
        };
        let as_postgres = is_root();
        let data = if as_postgres {
            let out = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "mktemp",
                    "-d",
                    "/tmp/bookstore-pg-XXXXXX",
                ])
                .output()
                .expect("runuser mktemp");
            assert!(out.status.success(), "mktemp as postgres: {out:?}");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        } else {
            let d = std::env::temp_dir().join(format!("bookstore-pg-{}", unique()));
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let server = PgServer {
            bin,
            data,
            port,
            as_postgres,
        };
        let pgdata = server.data.join("db");
        server.run(
            "initdb",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-U",
                "bookstore",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.ctl("start");
        Some(server)
    }

    fn url(&self) -> String {
        format!("postgres://bookstore@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start|stop|restart`, waiting until it is done.
    fn ctl(&self, action: &str) {
        let pgdata = self.data.join("db");
        let log = self.data.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.data.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                action,
            ],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pgdata = self.data.join("db");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args([
                "-D",
                pgdata.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The newest installed server's `bin` folder (Debian: /usr/lib/postgresql/<major>/bin).
fn server_bin_dir() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The suite with `replicas` recommendations processes on `pg`, with `env` for them.
async fn suite(pg: &PgServer, replicas: usize, env: &[(&str, &str)]) -> Suite {
    Suite::start_options(SuiteOptions {
        recommendations_replicas: replicas,
        recommendations_db: Some(pg.url()),
        env_for: env
            .iter()
            .map(|(k, v)| {
                (
                    "recommendations".to_owned(),
                    (*k).to_owned(),
                    (*v).to_owned(),
                )
            })
            .collect(),
        ..SuiteOptions::default()
    })
    .await
}

fn replica_names(replicas: usize) -> Vec<String> {
    (1..=replicas)
        .map(|i| {
            if i == 1 {
                "recommendations".to_owned()
            } else {
                format!("recommendations-{i}")
            }
        })
        .collect()
}

/// Books (rated once each, so a feed event names its rating) from `first` on.
const BOOKS_PER_TEST: i64 = 240;

/// Readers that rate through the gateway; their tokens.
async fn readers(s: &Suite, c: &Client, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        let email = format!("replica-reader-{}@example.org", unique());
        let created = c
            .post(format!("{}/api/v1/users", s.base_url))
            .json(&json!({"email": email, "display_name": "Reader", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "sign-up: {}",
            created.status()
        );
        tokens.push(s.sign_in(c, &email, "correct horse battery").await);
    }
    tokens
}

/// Rates `books` one by one through the gateway, about one every `every`, while `during`
/// runs halfway; returns the books whose rating the API acknowledged.
async fn rate_while<F>(
    base: &str,
    tokens: &[String],
    books: &[i64],
    every: Duration,
    during: F,
) -> BTreeSet<i64>
where
    F: std::future::Future<Output = ()>,
{
    let (tx, mut rx) = mpsc::channel(books.len());
    let writer: JoinHandle<()> = {
        let base = base.to_owned();
        let tokens = tokens.to_vec();
        let books = books.to_vec();
        tokio::spawn(async move {
            let c = Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut tick = tokio::time::interval(every);
            for (i, book) in books.into_iter().enumerate() {
                tick.tick().await;
                let answer = c
                    .put(format!("{base}/api/v1/me/ratings/{book}"))
                    .bearer_auth(&tokens[i % tokens.len()])
                    .json(&json!({"stars": 1 + (book % 5)}))
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    let _ = tx.send(book).await;
                }
            }
        })
    };
    tokio::time::sleep(every * (books.len() as u32 / 2)).await;
    during.await;
    writer.await.unwrap();
    let mut acked = BTreeSet::new();
    while let Ok(book) = rx.try_recv() {
        acked.insert(book);
    }
    acked
}

/// A `WatchRatings` stream on one replica, collecting the rated books it delivers.
struct Subscriber {
    books: mpsc::UnboundedReceiver<i64>,
    seen: BTreeSet<i64>,
}

impl Subscriber {
    async fn connect(s: &Suite, replica: &str) -> Subscriber {
        let addr = s.grpc_addr(replica).expect("replica address");
        let mut client = RecommendationsServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut stream = client
            .watch_ratings(WatchRatingsRequest { book_id: 0 })
            .await
            .unwrap()
            .into_inner();
        let (tx, books) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(e)) = stream.message().await {
                if e.kind == RatingEventKind::Rated as i32
                    && let Some(r) = e.rating
                {
                    let _ = tx.send(r.book_id);
                }
            }
        });
        Subscriber {
            books,
            seen: BTreeSet::new(),
        }
    }

    /// Waits (at most 15 s) until every book of `acked` has been delivered.
    async fn assert_received(&mut self, acked: &BTreeSet<i64>, who: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !acked.is_subset(&self.seen) {
            match tokio::time::timeout_at(deadline, self.books.recv()).await {
                Ok(Some(book)) => {
                    self.seen.insert(book);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let missing: Vec<_> = acked.difference(&self.seen).collect();
        assert!(
            missing.is_empty(),
            "{who}'s feed subscriber missed {} acknowledged ratings: {missing:?}",
            missing.len()
        );
    }
}

async fn index_state(s: &Suite, replica: &str) -> Option<IndexState> {
    let admin = s.admin(replica)?;
    reqwest::get(format!("{admin}/index"))
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits (at most 20 s) until every replica's index equals a rebuild from the ratings table.
async fn assert_every_index_equals_a_rebuild(s: &Suite, pg: &PgServer, replicas: usize) {
    let pool = platform::database::connect(&pg.url(), 2, &migrator(Backend::Postgres))
        .await
        .unwrap();
    let lazy = LazyPool::default();
    lazy.set(pool);
    let store = SqlRatingStore::new(lazy, Backend::Postgres);
    let rebuilt = rebuild_digest(&store, Digest::builtin().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in replica_names(replicas) {
        loop {
            let state = index_state(s, &name).await;
            if state.as_ref().is_some_and(|x| x.digest == rebuilt.digest) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s index {state:?} is not a rebuild's {rebuilt:?}\n{}",
                s.log(&name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `sql` on `pg` (a superuser session of its own).
async fn psql(pg: &PgServer, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    let n: i64 = sqlx::Row::try_get(&sqlx::query(sql).fetch_one(&pool).await.unwrap(), 0).unwrap();
    pool.close().await;
    n
}

fn books(first: i64) -> Vec<i64> {
    (first..first + BOOKS_PER_TEST).collect()
}

#[tokio::test]
async fn a_replica_killed_during_writes_catches_up_when_started_again() {
    let Some(pg) = PgServer::start() else { return };
    let mut s = suite(&pg, 2, &[]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let base = s.base_url.clone();
    let mut stayed = Subscriber::connect(&s, "recommendations").await;
    let killed = async {
        s.signal("recommendations-2", "KILL").await;
        s.wait_exit("recommendations-2", Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.restart("recommendations-2").await;
    };
    let acked = rate_while(
        &base,
        &tokens,
        &books(1_000),
        Duration::from_millis(20),
        killed,
    )
    .await;
    assert!(
        acked.len() > 100,
        "only {} ratings acknowledged",
        acked.len()
    );
    stayed.assert_received(&acked, "recommendations").await;
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
    // The restarted replica follows the log again: its feed carries what comes next.
    let mut restarted = Subscriber::connect(&s, "recommendations-2").await;
    let more = &books(1_000 + BOOKS_PER_TEST)[..20];
    let after = rate_while(&base, &tokens, more, Duration::from_millis(10), async {}).await;
    restarted
        .assert_received(&after, "the restarted recommendations-2")
        .await;
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
}

#[tokio::test]
async fn listening_connections_terminated_during_writes_lose_no_change() {
    let Some(pg) = PgServer::start() else { return };
    // A minute between polls: only a notification (or a listener's reconnect) wakes a replica,
    // so a listener that did not come back would leave it behind.
    let s = suite(&pg, 2, &[("LOG_POLL_MS", "60000")]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let mut feeds = [
        Subscriber::connect(&s, "recommendations").await,
        Subscriber::connect(&s, "recommendations-2").await,
    ];
    let listeners =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'recommendations-log'";
    assert_eq!(psql(&pg, listeners).await, 2);
    let terminated = async {
        let n = psql(
            &pg,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'recommendations-log'",
        )
        .await;
        assert_eq!(n, 2);
    };
    let acked = rate_while(
        &s.base_url,
        &tokens,
        &books(3_000),
        Duration::from_millis(20),
        terminated,
    )
    .await;
    assert!(
        acked.len() > 200,
        "only {} ratings acknowledged",
        acked.len()
    );
    for (feed, name) in feeds.iter_mut().zip(replica_names(2)) {
        feed.assert_received(&acked, &name).await;
    }
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
    wait_until("both listeners back", Duration::from_secs(10), || async {
        psql(&pg, listeners).await == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_during_writes_every_replica_converges() {
    let Some(pg) = PgServer::start() else { return };
    let s = suite(&pg, 3, &[]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let mut feeds = Vec::new();
    for name in replica_names(3) {
        feeds.push(Subscriber::connect(&s, &name).await);
    }
    let restarted = async {
        tokio::task::block_in_place(|| pg.ctl("restart"));
    };
    let acked = rate_while(
        &s.base_url,
        &tokens,
        &books(5_000),
        Duration::from_millis(20),
        restarted,
    )
    .await;
    assert!(
        acked.len() > 60,
        "only {} ratings acknowledged",
        acked.len()
    );
    for (feed, name) in feeds.iter_mut().zip(replica_names(3)) {
        feed.assert_received(&acked, &name).await;
    }
    assert_every_index_equals_a_rebuild(&s, &pg, 3).await;
}
