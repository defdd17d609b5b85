//! The public port's serve loop on its own (`gateway::serve::serve`) over loopback sockets: what
//! a connection may hold and for how long, and what it still gets (the peer address, HTTP/2,
//! answers that stream for longer than any timeout).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{Router, body::Body, extract::ConnectInfo, routing::get};
use bytes::Bytes;
use gateway::serve::{ConnectionArgs, serve};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use platform::metrics::Metrics;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

const TIMEOUT: Duration = Duration::from_millis(400);
/// Chunks of the streamed answer, one per `TIMEOUT / 2`: it outlives every timeout.
const CHUNKS: usize = 8;
const BIG: usize = 64 << 20;

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/stream",
            get(|| async {
                Body::from_stream(futures_util::stream::unfold(0, |n| async move {
                    if n == CHUNKS {
                        return None;
                    }
                    tokio::time::sleep(TIMEOUT / 2).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("{n}\n"))),
                        n + 1,
                    ))
                }))
            }),
        )
        .route("/big", get(|| async { vec![b'x'; BIG] }))
}

/// The serve loop with every timeout at [`TIMEOUT`], on a free port; its metrics and the
/// sender that stops it.
async fn start() -> (SocketAddr, Metrics, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ms = TIMEOUT.as_millis() as u64;
    let args = ConnectionArgs {
        header_read_timeout_ms: ms,
        body_read_timeout_ms: ms,
        idle_timeout_ms: ms,
        send_timeout_ms: ms,
        max_connections: 64,
        max_connections_per_client: 8,
    };
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let m = metrics.clone();
    tokio::spawn(async move {
        serve(listener, app(), &args, &m, async {
            let _ = stopped.await;
        })
        .await
    });
    (addr, metrics, stop)
}

fn counter(metrics: &Metrics, name: &str, label: &str) -> u64 {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == label))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Reads until the gateway closes the connection (at most 5 s); what came and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the connection is closed");
    (got, Instant::now())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_idles_after_an_answer_is_closed_on_time() {
    let (addr, metrics, _stop) = start().await;
    // Silent from the start: the protocol is not even known.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    let (got, closed) = until_closed(&mut silent).await;
    assert!(got.is_empty());
    let held = closed - opened;
    assert!(
        held >= TIMEOUT - Duration::from_millis(50) && held < TIMEOUT * 3,
        "{held:?}"
    );
    assert_eq!(
        counter(&metrics, "http_connections_timed_out_total", "head"),
        1
    );

    // Keep-alive after one answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = Instant::now();
    let (got, closed) = until_closed(&mut idle).await;
    assert!(got.starts_with(b"HTTP/1.1 200 OK"), "{got:?}");
    let held = closed - answered;
    assert!(
        held >= TIMEOUT - Duration::from_millis(50) && held < TIMEOUT * 3,
        "{held:?}"
    );
}

#[tokio::test]
async fn an_answer_that_streams_longer_than_every_timeout_is_not_cut() {
    let (addr, _metrics, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (got, _) = until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(started.elapsed() >= TIMEOUT * (CHUNKS as u32) / 2 - TIMEOUT);
    for n in 0..CHUNKS {
        assert!(
            text.contains(&format!("{n}\n")),
            "chunk {n} missing: {text}"
        );
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_closed_after_the_send_timeout() {
    let (addr, metrics, _stop) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Reads nothing: the socket fills and the answer waits.
    let started = Instant::now();
    while counter(&metrics, "http_connections_timed_out_total", "send") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not closed after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (got, _) = until_closed(&mut s).await;
    assert!(got.len() < BIG, "the whole answer came: {}", got.len());
}

#[tokio::test]
async fn handlers_see_the_peer_address_and_one_client_past_its_cap_is_refused() {
    let (addr, metrics, _stop) = start().await;
    let from = |ip: [u8; 4]| async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((ip, 0))).unwrap();
        socket.connect(addr).await.unwrap()
    };
    let mut other = from([127, 0, 0, 3]).await;
    other
        .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = until_closed(&mut other).await;
    assert!(
        String::from_utf8_lossy(&got).ends_with("127.0.0.3"),
        "{got:?}"
    );

    // Eight held from one address (the cap); the ninth is told 503 and closed.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(from([127, 0, 0, 4]).await);
    }
    let mut ninth = from([127, 0, 0, 4]).await;
    let (got, _) = until_closed(&mut ninth).await;
    assert!(got.starts_with(b"HTTP/1.1 503"), "{got:?}");
    assert_eq!(
        counter(&metrics, "http_connections_refused_total", "per_client"),
        1
    );
    // Another address is still welcome.
    let mut third = from([127, 0, 0, 5]).await;
    third
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = until_closed(&mut third).await;
    assert!(got.starts_with(b"HTTP/1.1 200 OK"), "{got:?}");
    drop(held);
}

#[tokio::test]
async fn h2c_is_served_and_an_idle_http2_connection_is_closed() {
    let (addr, _metrics, stop) = start().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let answer = sender
        .send_request(
            http::Request::get(format!("http://{addr}/"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answer.version(), http::Version::HTTP_2);
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .unwrap();
    assert!(answered.elapsed() >= TIMEOUT - Duration::from_millis(50));
    drop(stop);
}

#[tokio::test]
async fn on_stop_the_loop_closes_idle_connections_and_returns() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let args = ConnectionArgs {
        header_read_timeout_ms: 60_000,
        body_read_timeout_ms: 60_000,
        idle_timeout_ms: 60_000,
        send_timeout_ms: 60_000,
        max_connections: 64,
        max_connections_per_client: 64,
    };
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        serve(listener, app(), &args, &metrics, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the loop returns once its connections are closed")
        .unwrap()
        .unwrap();
    let (got, _) = until_closed(&mut idle).await;
    assert!(got.is_empty());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
