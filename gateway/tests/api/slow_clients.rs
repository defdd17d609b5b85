//! One client holding hundreds of slow connections, bodies that trickle in and heads that never
//! end, cannot take the gateway from anyone else: the real binary over real loopback sockets,
//! the attacker on 127.0.0.1 and the reader on 127.0.0.2 (Linux routes all of 127/8 to lo).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::fakes::fake_services;

/// Connections of each kind the attacker opens, together past its cap.
const SLOW_BODIES: usize = 200;
const HALF_HEADS: usize = 200;
const PER_CLIENT: usize = 256;
/// Below the slow bodies: were a permit taken before the body is read, they would hold all.
const CONCURRENCY_LIMIT: usize = 64;
/// The header and body read timeouts.
const READ_TIMEOUT: Duration = Duration::from_millis(3_000);
/// The pod's memory limit (k8s/base/gateway.yaml).
const MEMORY_LIMIT_KIB: u64 = 64 * 1024;

struct Gateway {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
}

/// The gateway binary on free loopback ports, every upstream at `upstream`, once it answers.
async fn start_gateway(upstream: &str) -> Gateway {
    let http = SocketAddr::from(([127, 0, 0, 1], tests::free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], tests::free_port()));
    let timeout = READ_TIMEOUT.as_millis().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .envs([
            ("HTTP_ADDR", http.to_string()),
            ("ADMIN_ADDR", admin.to_string()),
            ("MARKETPLACE_URL", upstream.to_owned()),
            ("RECOMMENDATIONS_URL", upstream.to_owned()),
            ("USERS_URL", upstream.to_owned()),
            ("CONCURRENCY_LIMIT", CONCURRENCY_LIMIT.to_string()),
            ("HEADER_READ_TIMEOUT_MS", timeout.clone()),
            ("BODY_READ_TIMEOUT_MS", timeout),
            ("IDLE_TIMEOUT_MS", "10000".to_owned()),
            ("MAX_CONNECTIONS_PER_CLIENT", PER_CLIENT.to_string()),
            ("RUST_LOG", "error".to_owned()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let gateway = Gateway { child, http, admin };
    let started = Instant::now();
    while TcpStream::connect(admin).await.is_err() || TcpStream::connect(http).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway did not listen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway
}

impl Gateway {
    /// The gateway's resident memory, from /proc.
    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// One sample's value from the admin port's /metrics, 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// How an attacker's connection ended, and after how long.
#[derive(Debug)]
struct Ending {
    after: Duration,
    /// The first line the gateway sent, if any.
    status_line: String,
}

/// Sends `head`, then `trickle` one byte a second (at most 10), and reads until the gateway
/// closes the connection (at most 12 s).
async fn attack(addr: SocketAddr, head: Vec<u8>, trickle: u8) -> Ending {
    let stream = TcpStream::connect(addr).await.expect("connect");
    // From the accept: a burst of connects can wait for a SYN retransmit first.
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let writer = async move {
        if write.write_all(&head).await.is_err() {
            return;
        }
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if write.write_all(&[trickle]).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    let reader = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        // A reset (the gateway closing with our bytes unread) also ends the connection.
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let got = tokio::select! {
        got = tokio::time::timeout(Duration::from_secs(12), reader) => got.unwrap_or_default(),
        () = writer => unreachable!("the writer never ends on its own"),
    };
    Ending {
        after: started.elapsed(),
        status_line: String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A POST announcing 10,000 bytes of body, which then come a byte a second.
fn slow_body_head() -> Vec<u8> {
    b"POST /api/v1/users HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
      content-length: 10000\r\n\r\n{"
        .to_vec()
}

/// 7 KiB of a request head that never ends (a byte a second of one more header follows).
fn half_head() -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nhost: gateway\r\n".to_vec();
    for i in 0..70 {
        head.extend_from_slice(format!("x-filler-{i:02}: {}\r\n", "a".repeat(88)).as_bytes());
    }
    head.extend_from_slice(b"x-never-ends: ");
    head
}

/// Latencies of `n` GET / and GET /api/v1/books/1, alternating, all of which must be 200.
async fn reader_latencies(client: &reqwest::Client, base: &str, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let path = if i % 2 == 0 { "/" } else { "/api/v1/books/1" };
        let started = Instant::now();
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        latencies.push(started.elapsed());
        assert_eq!(status, 200, "GET {path} while the attack holds: {body}");
    }
    latencies
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_slow_connections_from_one_client_leave_another_served_and_memory_bounded() {
    let (upstream, _calls) = fake_services(true).await;
    let gateway = start_gateway(&upstream).await;
    let base = format!("http://{}", gateway.http);
    // The reader comes from another address; its idle connections go before the gateway's
    // header timer would close them under a request.
    let reader = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .pool_idle_timeout(Duration::from_millis(1_000))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Warm up (upstream channels, the popular panel), then the normal p99.
    let started = Instant::now();
    while reader
        .get(format!("{base}/api/v1/books/1"))
        .send()
        .await
        .map(|r| r.status())
        .ok()
        != Some(reqwest::StatusCode::OK)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no book after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader_latencies(&reader, &base, 20).await;
    let normal = p99(reader_latencies(&reader, &base, 60).await);

    // The attack: every connection from 127.0.0.1, the two kinds interleaved.
    let attack_started = Instant::now();
    let attackers: Vec<_> = (0..SLOW_BODIES + HALF_HEADS)
        .map(|i| {
            let (head, trickle) = if i % 2 == 0 {
                (slow_body_head(), b'1')
            } else {
                (half_head(), b'a')
            };
            tokio::spawn(attack(gateway.http, head, trickle))
        })
        .collect();
    // Until every admitted attacker is held (and before the read timeouts free them).
    let held = loop {
        let open = gateway.metric("http_connections_open").await as usize;
        if open >= PER_CLIENT {
            break open;
        }
        assert!(
            attack_started.elapsed() < READ_TIMEOUT - Duration::from_millis(1_500),
            "only {open} attacker connections open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let during_started = Instant::now();
    let during = reader_latencies(&reader, &base, 40).await;
    let reader_done = during_started.elapsed();
    let rss_kib = gateway.rss_kib();
    let still_held = gateway.metric("http_connections_open").await as usize;
    let during_p99 = p99(during);
    println!(
        "normal p99 {normal:?}; under attack ({held} connections held) p99 {during_p99:?}; \
         RSS {rss_kib} KiB"
    );
    assert!(
        still_held >= PER_CLIENT,
        "the reader's requests ({reader_done:?}) ran while the attack held its connections \
         ({still_held} open at the end)"
    );
    assert!(
        during_p99 <= normal * 4 + Duration::from_millis(100),
        "p99 under attack {during_p99:?} against {normal:?} normally"
    );
    assert!(
        rss_kib < MEMORY_LIMIT_KIB,
        "RSS {rss_kib} KiB over the pod's limit"
    );

    // Every attacker connection ended: past the cap at once (503), the others by the timeouts.
    let mut refused = 0;
    let mut timed_out_bodies = 0;
    let mut timed_out_heads = 0;
    for (i, a) in attackers.into_iter().enumerate() {
        let ending = a.await.unwrap();
        if ending.status_line.starts_with("HTTP/1.1 503") || ending.after < READ_TIMEOUT / 2 {
            refused += 1;
            continue;
        }
        assert!(
            ending.status_line.is_empty() || ending.status_line.starts_with("HTTP/1.1 408"),
            "attacker {i}: {ending:?}"
        );
        assert!(
            ending.after >= READ_TIMEOUT - Duration::from_millis(200)
                && ending.after < READ_TIMEOUT + Duration::from_secs(3),
            "attacker {i} held for {:?} ({ending:?})",
            ending.after
        );
        if i % 2 == 0 {
            timed_out_bodies += 1;
        } else {
            timed_out_heads += 1;
        }
    }
    assert_eq!(
        refused,
        SLOW_BODIES + HALF_HEADS - PER_CLIENT,
        "refused at the per-client cap"
    );
    assert_eq!(
        gateway
            .metric("http_connections_refused_total{reason=\"per_client\"}")
            .await as usize,
        refused
    );
    // The slow bodies were answered 408 (seen in the metrics: a reset may hide it from the
    // attacker), the heads closed by the header timeout.
    assert_eq!(
        gateway
            .metric("http_requests_total{method=\"POST\",route=\"/api/v1/users\",status=\"408\"}")
            .await as usize,
        timed_out_bodies
    );
    assert_eq!(
        gateway
            .metric("http_connections_timed_out_total{phase=\"head\"}")
            .await as usize,
        timed_out_heads
    );
    assert!(timed_out_bodies > 0 && timed_out_heads > 0);
}
