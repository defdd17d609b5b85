//! Faults under load, on the real binaries over loopback: replicas killed or drained, the
//! gateway drained, recommendations crashed and restarted, the database cut off and back, writes
//! cut by a crash, bursts beyond the limits. Every loop is bounded in count and time, every test
//! prints the figures it saw (`cargo test -p tests --test faults -- --nocapture`).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Suite, SuiteOptions, metric, unique, wait_until};

/// The outcome of every request a [`Load`] sent.
#[derive(Debug, Default, Clone)]
struct Tally {
    sent: u64,
    ok: u64,
    /// Non-2xx answers: (status, url).
    bad: Vec<(u16, String)>,
    /// Requests that got no answer at all.
    lost: Vec<String>,
}

/// Closed-loop load: `workers` tasks each sending the next URL of `urls` as soon as the previous
/// answered, until stopped, at most `max` requests each and 60 s in all.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    fn start(client: Client, urls: Vec<String>, workers: usize, max: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let urls = Arc::new(urls);
        let next = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (client, urls, next, stop) =
                    (client.clone(), urls.clone(), next.clone(), stop.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut t = Tally::default();
                    while !stop.load(Ordering::SeqCst)
                        && t.sent < max
                        && started.elapsed() < Duration::from_secs(60)
                    {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize % urls.len();
                        let url = &urls[i];
                        t.sent += 1;
                        match client
                            .get(url)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                t.ok += 1;
                            }
                            Ok(r) => t.bad.push((r.status().as_u16(), url.clone())),
                            Err(e) => t.lost.push(format!("{url}: {e}")),
                        }
                    }
                    t
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.await_all().await
    }
}

fn assert_clean(what: &str, t: &Tally) {
    println!(
        "{what}: {} requests, {} ok, {} non-2xx, {} unanswered",
        t.sent,
        t.ok,
        t.bad.len(),
        t.lost.len()
    );
    assert!(t.sent > 0, "{what}: no traffic");
    assert!(
        t.bad.is_empty() && t.lost.is_empty(),
        "{what}: failures {:?} {:?}",
        &t.bad[..t.bad.len().min(5)],
        &t.lost[..t.lost.len().min(5)]
    );
}

fn book_urls(s: &Suite, n: i64) -> Vec<String> {
    (1..=n)
        .map(|id| format!("{}/api/v1/books/{id}", s.base_url))
        .collect()
}

async fn ready_replicas(s: &Suite, upstream: &str) -> f64 {
    metric(
        s.admin("gateway").unwrap(),
        "gateway_upstream_ready_replicas",
        &[&format!("upstream=\"{upstream}\"")],
    )
    .await
}

fn skip_external() -> bool {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "faults: signal processes, so they run only against a suite they started",
        );
        return true;
    }
    false
}

const GET_BOOK_OK: &str = "grpc_method=\"GetBook\"";

#[tokio::test]
async fn two_replicas_share_the_load_and_a_killed_one_costs_no_failed_request() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        marketplace_replicas: 2,
        ..SuiteOptions::default()
    })
    .await;
    wait_until(
        "both replicas in the balancer",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let c = Client::new();
    let t = Load::start(c.clone(), book_urls(&s, 200), 8, 50)
        .await_all()
        .await;
    assert_clean("spread", &t);
    let mut shares = Vec::new();
    for name in ["marketplace", "marketplace-2"] {
        let n = metric(
            s.admin(name).unwrap(),
            "grpc_server_handled_total",
            &[GET_BOOK_OK, "grpc_code=\"OK\""],
        )
        .await;
        shares.push(n);
    }
    println!(
        "GetBook calls per replica over {} requests: {shares:?}",
        t.sent
    );
    assert!(
        shares.iter().all(|&n| n >= t.sent as f64 * 0.2),
        "both replicas get a fair share: {shares:?}"
    );

    // Kill one mid-load: in-flight calls on it are retried on the other.
    let load = Load::start(c.clone(), book_urls(&s, 500), 8, 5_000);
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.signal("marketplace-2", "KILL").await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let t = load.finish().await;
    let retries = metric(
        s.admin("gateway").unwrap(),
        "grpc_client_retries_total",
        &["outcome=\"retried\""],
    )
    .await;
    println!("retries after SIGKILL: {retries}");
    assert_clean("SIGKILL of one replica under load", &t);
    assert_eq!(ready_replicas(&s, "marketplace").await, 1.0);

    // It comes back and gets calls again by itself.
    s.restart("marketplace-2").await;
    wait_until(
        "the restarted replica rejoins",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let t = Load::start(c, book_urls(&s, 100), 4, 25).await_all().await;
    assert_clean("after restart", &t);
    let back = metric(
        s.admin("marketplace-2").unwrap(),
        "grpc_server_handled_total",
        &[GET_BOOK_OK],
    )
    .await;
    println!("the restarted replica served {back} of {} calls", t.sent);
    assert!(back > 0.0);
}

#[tokio::test]
async fn sigterm_to_a_replica_under_load_loses_nothing_and_health_turns_first() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        marketplace_replicas: 2,
        env_for: vec![(
            "marketplace".into(),
            "SHUTDOWN_DELAY_MS".into(),
            "300".into(),
        )],
        ..SuiteOptions::default()
    })
    .await;
    wait_until(
        "both replicas in the balancer",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let addr = s.grpc_addr("marketplace-2").unwrap().to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let t0 = Instant::now();
    let not_serving = tokio::spawn(async move {
        platform::health::wait_for_status(
            channel,
            "bookstore.marketplace.v1.MarketplaceService",
            tonic_health::ServingStatus::NotServing,
            Duration::from_secs(20),
        )
        .await
        .map(|()| t0.elapsed())
    });
    let load = Load::start(Client::new(), book_urls(&s, 500), 8, 5_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.signal("marketplace-2", "TERM").await;
    // When does the listener close? Connect until refused (bounded).
    let mut closed = None;
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = s.wait_exit("marketplace-2", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = load.finish().await;
    let not_serving = not_serving
        .await
        .unwrap()
        .expect("NOT_SERVING seen on Watch");
    let closed = closed.expect("the listener closed");
    println!("NOT_SERVING at {not_serving:?}, listener closed at {closed:?}, exit {status:?}");
    assert!(
        not_serving < closed,
        "health turns before the listener closes"
    );
    assert!(status.is_some_and(|s| s.success()), "a clean exit");
    assert_clean("SIGTERM of one replica under load", &t);
}

#[tokio::test]
async fn sigterm_to_the_gateway_answers_every_accepted_request_and_ends_open_streams() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        env_for: vec![("gateway".into(), "SHUTDOWN_DELAY_MS".into(), "500".into())],
        ..SuiteOptions::default()
    })
    .await;
    // A slow marketplace keeps requests in flight across the signal.
    let slow = reqwest::Client::new()
        .put(format!("{}/faults", s.admin("marketplace").unwrap()))
        .body(r#"{"rules":[{"method":"GetBook","latency_ms":150}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::OK, "the fault is set");
    let c = Client::new();
    let mut stream = c
        .get(format!("{}/api/v1/ratings/stream", s.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Stand in for the load balancer: stop sending once /readyz says so.
    let ready_url = format!("{}/readyz", s.admin("gateway").unwrap());
    let load = Load::start(c.clone(), book_urls(&s, 200), 8, 5_000);
    let lb = {
        let stop = load.stop.clone();
        let c = c.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                let ready = c
                    .get(&ready_url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ready {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let signalled = Instant::now();
    s.signal("gateway", "TERM").await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    let stream_ended = signalled.elapsed();
    let status = s.wait_exit("gateway", Duration::from_secs(10)).await;
    lb.await.unwrap();
    let t = load.finish().await;
    println!("SSE stream ended {stream_ended:?} after SIGTERM; gateway exit {status:?}");
    assert!(ended.is_ok(), "the open stream ends within the drain");
    assert!(status.is_some_and(|s| s.success()));
    assert_clean("SIGTERM of the gateway under load", &t);
}

#[tokio::test]
async fn recommendations_crash_leaves_other_routes_whole_and_the_section_returns_by_itself() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start().await;
    let c = Client::new();
    let mut independent = book_urls(&s, 50);
    independent.push(format!("{}/api/v1/books?page_size=5", s.base_url));
    independent.push(format!("{}/api/v1/books/search?q=hobbit", s.base_url));
    let api = Load::start(c.clone(), independent, 4, 5_000);
    let pages = Load::start(c.clone(), vec![format!("{}/", s.base_url)], 2, 2_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.signal("recommendations", "KILL").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let home = c
        .get(format!("{}/", s.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !home.contains("Popular now"),
        "the section is left out while it is down"
    );
    s.restart("recommendations").await;
    let back = Instant::now();
    wait_until("the section returns", Duration::from_secs(15), || async {
        c.get(format!("{}/", s.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Popular now")
    })
    .await;
    println!(
        "the recommendations section returned {:?} after the restart",
        back.elapsed()
    );
    assert_clean("independent API routes", &api.finish().await);
    assert_clean("home page", &pages.finish().await);
}

/// A TCP proxy to the database that the test can cut and restore (the database stays up).
struct Cut {
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    addr: std::net::SocketAddr,
}

impl Cut {
    async fn to(target: String) -> Cut {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, cs) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the database is unreachable
                }
                let target = target.clone();
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Cut { up, conns, addr }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

async fn readyz(s: &Suite, name: &str) -> bool {
    reqwest::get(format!("{}/readyz", s.admin(name).unwrap()))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test]
async fn a_database_outage_turns_services_not_serving_then_serving_again() {
    if skip_external() {
        return;
    }
    let Some(users_db) = platform::database::testing::postgres_url("outage_users").await else {
        return;
    };
    let Some(ratings_db) = platform::database::testing::postgres_url("outage_ratings").await else {
        return;
    };
    let url: reqwest::Url = users_db.parse().unwrap();
    let cut = Cut::to(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port().unwrap_or(5432)
    ))
    .await;
    // Each service's own database, both reached through the cut.
    let via = |db: &str| {
        let mut u: reqwest::Url = db.parse().unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(cut.addr.port())).unwrap();
        u.to_string()
    };
    let s = Suite::start_options(SuiteOptions {
        env_for: vec![
            ("users".into(), "DATABASE_URL".into(), via(&users_db)),
            (
                "recommendations".into(),
                "DATABASE_URL".into(),
                via(&ratings_db),
            ),
        ],
        ..SuiteOptions::default()
    })
    .await;
    let cut_at = Instant::now();
    cut.set(false);
    wait_until(
        "NOT_SERVING without the database",
        Duration::from_secs(30),
        || async { !readyz(&s, "users").await && !readyz(&s, "recommendations").await },
    )
    .await;
    let down = cut_at.elapsed();
    let r = Client::new()
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": format!("o{}@example.com", unique()), "password": "correct horse battery", "display_name": "o"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "an outage is 503, not 500"
    );
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let back_at = Instant::now();
    cut.set(true);
    wait_until(
        "SERVING once the database is back",
        Duration::from_secs(30),
        || async { readyz(&s, "users").await && readyz(&s, "recommendations").await },
    )
    .await;
    println!(
        "NOT_SERVING {down:?} after the cut; SERVING {:?} after the return",
        back_at.elapsed()
    );
}

async fn sign_up(s: &Suite, c: &Client) -> String {
    let email = format!("w{}@example.com", unique());
    let r = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "password": "correct horse battery", "display_name": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.sign_in(c, &email, "correct horse battery").await
}

/// Writes ratings (each to a new book) from 4 writers while recommendations is SIGKILLed and
/// restarted; every acknowledged rating must be there afterwards with its stars.
async fn no_acknowledged_write_is_lost(db: Option<String>) {
    let mut s = Suite::start_options(SuiteOptions {
        recommendations_db: db,
        ..SuiteOptions::default()
    })
    .await;
    let c = Client::new();
    let token = sign_up(&s, &c).await;
    let acked: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (c, token, acked, stop, base) = (
                c.clone(),
                token.clone(),
                acked.clone(),
                stop.clone(),
                s.base_url.clone(),
            );
            tokio::spawn(async move {
                let (mut tried, mut failed) = (0u32, 0u32);
                for i in 0..2_000i64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let book = 1 + w * 2_000 + i;
                    let stars = 1 + (book % 5);
                    tried += 1;
                    let r = c
                        .put(format!("{base}/api/v1/me/ratings/{book}"))
                        .bearer_auth(&token)
                        .json(&json!({ "stars": stars }))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().push((book, stars))
                        }
                        _ => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (tried, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.signal("recommendations", "KILL").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.restart("recommendations").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut tried, mut failed) = (0, 0);
    for w in writers {
        let (t, f) = w.await.unwrap();
        tried += t;
        failed += f;
    }
    let acked = acked.lock().unwrap().clone();
    let mut stored = std::collections::HashMap::new();
    let mut page_token = String::new();
    for _ in 0..200 {
        let r: Value = c
            .get(format!(
                "{}/api/v1/me/ratings?page_size=100&page_token={page_token}",
                s.base_url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for x in r["ratings"].as_array().unwrap() {
            stored.insert(x["book_id"].as_i64().unwrap(), x["stars"].as_i64().unwrap());
        }
        page_token = r["next_page_token"].as_str().unwrap_or_default().to_owned();
        if page_token.is_empty() {
            break;
        }
    }
    println!(
        "{tried} writes tried, {} acknowledged, {failed} failed while down, {} stored",
        acked.len(),
        stored.len()
    );
    assert!(
        acked.len() > 10,
        "writes were acknowledged before and after the crash"
    );
    let missing: Vec<_> = acked
        .iter()
        .filter(|(b, st)| stored.get(b) != Some(st))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write_on_sqlite() {
    if skip_external() {
        return;
    }
    no_acknowledged_write_is_lost(None).await;
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write_on_postgres() {
    if skip_external() {
        return;
    }
    let Some(pg) = platform::database::testing::postgres_url("writes").await else {
        return;
    };
    no_acknowledged_write_is_lost(Some(pg)).await;
}

#[tokio::test]
async fn a_burst_beyond_the_gateway_limit_is_shed_with_retry_after_not_queued() {
    if skip_external() {
        return;
    }
    const LIMIT: usize = 4;
    const BURST: usize = 16;
    // How long each admitted request holds its permit: long enough that the burst is answered
    // while they hold, however loaded the machine.
    const HOLD: Duration = Duration::from_millis(1500);
    let s = Suite::start_options(SuiteOptions {
        env_for: vec![(
            "gateway".into(),
            "CONCURRENCY_LIMIT".into(),
            LIMIT.to_string(),
        )],
        ..SuiteOptions::default()
    })
    .await;
    let (gateway, market) = (
        s.admin("gateway").unwrap().to_owned(),
        s.admin("marketplace").unwrap().to_owned(),
    );
    let slow = Client::new()
        .put(format!("{market}/faults"))
        .body(format!(
            r#"{{"rules":[{{"method":"GetBook","latency_ms":{}}}]}}"#,
            HOLD.as_millis()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::OK, "the fault is set");
    let held = || {
        metric(
            &market,
            "faults_injected_total",
            &["grpc_method=\"GetBook\""],
        )
    };
    let (held_before, shed_before) = (
        held().await,
        metric(&gateway, "http_requests_shed_total", &[]).await,
    );

    // Each request answers its status, Retry-After, how long it took and when it ended.
    let c = Client::new();
    let send = |book: usize| {
        let (c, url) = (c.clone(), format!("{}/api/v1/books/{book}", s.base_url));
        tokio::spawn(async move {
            let started = Instant::now();
            let r = c.get(url).send().await.unwrap();
            let ended = Instant::now();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status(), retry_after, ended - started, ended)
        })
    };
    // The limit's worth of requests, each held by the marketplace: every permit is taken.
    let holders: Vec<_> = (1..=LIMIT).map(&send).collect();
    wait_until(
        "every admitted request to reach the slow marketplace",
        Duration::from_secs(30),
        || async { held().await - held_before == LIMIT as f64 },
    )
    .await;
    let burst: Vec<_> = (0..BURST).map(|i| send(LIMIT + 1 + i)).collect();
    let mut shed = Vec::new();
    for b in burst {
        let (status, retry_after, took, ended) = b.await.unwrap();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "a request beyond the limit, after {took:?}"
        );
        assert_eq!(retry_after.as_deref(), Some("1"));
        shed.push((took, ended));
    }
    let mut served = Vec::new();
    for h in holders {
        let (status, _, took, ended) = h.await.unwrap();
        assert_eq!(status, StatusCode::OK, "an admitted request");
        assert!(
            took >= HOLD,
            "served without the injected latency: {took:?}"
        );
        served.push(ended);
    }
    // Not queued: every refusal came back while the admitted requests still held every permit,
    // so none of them waited for one.
    let first_served = served.iter().min().unwrap();
    let slowest_shed = shed.iter().map(|(took, _)| *took).max().unwrap();
    assert!(
        shed.iter().all(|(_, ended)| ended < first_served),
        "a refusal came back after a permit was given back: queued"
    );
    let counted = metric(&gateway, "http_requests_shed_total", &[]).await - shed_before;
    assert_eq!(counted, BURST as f64, "the gateway counted what it shed");
    println!(
        "burst of {} at a gateway limit of {LIMIT}: {} served in >= {HOLD:?}, {} shed, \
         the slowest refusal in {slowest_shed:?}",
        LIMIT + BURST,
        served.len(),
        shed.len()
    );

    // The permits came back: with the fault gone, the next request is served.
    let clear = Client::new()
        .delete(format!("{market}/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        clear.status(),
        StatusCode::NO_CONTENT,
        "the fault is cleared"
    );
    let (status, ..) = send(1).await.unwrap();
    assert_eq!(status, StatusCode::OK, "a request after the burst");
    s.stop().await;
}

/// Small helpers on futures of numbers, so waits read as sentences.
trait MapEq {
    fn map_eq(self, want: f64) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = f64>> MapEq for F {
    async fn map_eq(self, want: f64) -> bool {
        self.await == want
    }
}

impl Load {
    /// Waits until every worker sent its `max` requests.
    async fn await_all(self) -> Tally {
        let mut all = Tally::default();
        for t in self.tasks {
            let t = t.await.unwrap();
            all.sent += t.sent;
            all.ok += t.ok;
            all.bad.extend(t.bad);
            all.lost.extend(t.lost);
        }
        all
    }
}
