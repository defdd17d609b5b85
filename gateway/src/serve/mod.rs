//! Serving the public port with every connection bounded in time and memory: a head must arrive
//! within HEADER_READ_TIMEOUT_MS, a body within BODY_READ_TIMEOUT_MS (read before the request
//! takes a concurrency permit: [`crate::middleware::ReadBodyLayer`]), a connection with nothing
//! in flight lives IDLE_TIMEOUT_MS, one whose client takes none of its answer SEND_TIMEOUT_MS
//! (`activity.rs`), and connections are capped per client and in total (`caps.rs`). HTTP/1.1
//! and h2c, hyper-util's auto builder, one task per connection.

mod activity;
mod caps;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use platform::metrics::Metrics;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

use self::{
    activity::{Activity, ConnService, SendTimeout},
    caps::{Clients, ConnMetrics, REFUSED, Slot},
};
use crate::middleware::BodyTurn;

/// How long each part of a connection may take, and how many connections there may be.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// A request's head (request line and headers) must arrive within this many milliseconds of
    /// the connection being ready for one (accepted, or its previous answer sent); otherwise the
    /// connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A request's whole body (at most BODY_LIMIT_BYTES) must arrive within this many
    /// milliseconds of its head, else 408. Bodies are read before the request counts against
    /// CONCURRENCY_LIMIT, so slow senders cannot hold the permits.
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// A connection with no request in flight is closed after this many milliseconds (HTTP/2
    /// with GOAWAY). An open answer (the live feed) is a request in flight. HTTP/1 connections
    /// wait for their next head under HEADER_READ_TIMEOUT_MS too: they idle at most the shorter.
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub idle_timeout_ms: u64,
    /// A connection whose client takes none of an answer for this many milliseconds (its
    /// socket stays full: a reader that stalls) is closed.
    #[arg(long, env = "SEND_TIMEOUT_MS", default_value_t = 30_000)]
    pub send_timeout_ms: u64,
    /// Connections open at once; beyond, a new one is answered 503 and closed. Sized for the
    /// pod's 64 MiB: 512 of the costliest kind take ~36 MiB (the arithmetic: `serve::caps`).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client is its /64), so one
    /// client cannot take every connection (nor need more than the gateway serves at once,
    /// CONCURRENCY_LIMIT); beyond, 503 and closed. Behind a proxy or SNAT, where every client
    /// shares an address, raise it to MAX_CONNECTIONS.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,
}

impl ConnectionArgs {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.max(1))
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms.max(1))
    }
}

/// Largest HTTP/1 read (and write) buffer: bounds a request head to 16 KiB (beyond, 431) and
/// what one connection can make the gateway hold, where hyper's default is ~400 KiB.
const HTTP1_MAX_BUF: usize = 16 * 1024;
/// HTTP/2 connection window: the protocol's initial 64 KiB, never widened (hyper's default is
/// 1 MiB).
const H2_CONN_WINDOW: u32 = 65_535;
/// HTTP/2 streams at once per connection, and what each may send before its body is read (a
/// connection's bodies are read one at a time): at most 16 KiB of unread bodies per
/// connection. The API's bodies are small; a larger one takes a few window updates.
const H2_MAX_STREAMS: u32 = 8;
/// See [`H2_MAX_STREAMS`].
const H2_STREAM_WINDOW: u32 = 2 * 1024;
/// HTTP/2 answers queued per stream for a slow client (hyper's default is 400 KiB).
const H2_MAX_SEND_BUF: usize = 64 * 1024;
/// After an idle connection is asked to close (GOAWAY, or keep-alive off), how long before it
/// is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Serves `app` on `listener` until `stop` resolves, then stops accepting, asks every
/// connection to finish (HTTP/1: after its answer; HTTP/2: GOAWAY) and waits for them; the
/// caller bounds that wait (`platform::shutdown::Drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    args: &ConnectionArgs,
    metrics: &Metrics,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_read_timeout())
        .max_buf_size(HTTP1_MAX_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        // Pings find dead peers of long streams (the live feed), which are never idle.
        .keep_alive_interval(args.idle_timeout())
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let conn_metrics = ConnMetrics::new(metrics);
    let clients = Clients::new(
        args.max_connections,
        args.max_connections_per_client,
        conn_metrics.clone(),
    );
    let limits = Limits {
        head: args.header_read_timeout(),
        idle: args.idle_timeout(),
        send: args.send_timeout(),
    };
    // Every connection holds a receiver: `closed()` is when the last one has ended.
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Some(slot) = clients.admit(peer.ip()) else {
            // Best effort: a client that has sent its request already may see a reset instead.
            let _ = tcp.try_write(REFUSED);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(connection(
            builder.clone(),
            tcp,
            peer,
            app.clone(),
            limits,
            drain_rx.clone(),
            conn_metrics.timed_out.clone(),
            slot,
        ));
    }
    drop(listener);
    drop(drain_rx);
    drain_tx.send_replace(true);
    drain_tx.closed().await;
    Ok(())
}

/// An accept that failed: a connection reset before it was taken is nothing; anything else
/// (out of file descriptors) is logged and waited out, as axum's `serve` does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The per-connection time limits the serve loop enforces (hyper enforces HTTP/1 heads').
#[derive(Clone, Copy)]
struct Limits {
    /// From accept to the first request's head, whatever the protocol (or none yet).
    head: Duration,
    idle: Duration,
    send: Duration,
}

/// Serves one connection until it ends, the drain closes it, or it has had no request in flight
/// for too long.
#[allow(clippy::too_many_arguments)]
async fn connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut drain: watch::Receiver<bool>,
    timed_out: prometheus::IntCounterVec,
    slot: Slot,
) {
    let activity = Activity::new();
    let service = ConnService {
        app,
        peer,
        activity: activity.clone(),
        body_turn: BodyTurn::new(),
    };
    let io = TokioIo::new(SendTimeout::new(tcp, limits.send, activity.clone()));
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = *drain.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let mut ended_by: Option<&'static str> = None;
    let mut asked_to_close: Option<Instant> = None;
    // When the connection will have been idle too long, and for what (None: in flight).
    let idle_until = || {
        let a = activity.lock().unwrap();
        match (a.in_flight, a.sending, a.served) {
            (0, false, true) => Some((a.idle_since + limits.idle, "idle")),
            (0, false, false) => Some((a.idle_since + limits.head, "head")),
            _ => None,
        }
    };
    loop {
        let wake = match (idle_until(), asked_to_close) {
            // In flight: look again later (a request's end does not wake this task).
            (None, _) => Instant::now() + limits.idle,
            (Some((t, _)), None) => t,
            (Some(_), Some(asked)) => asked + CLOSE_GRACE,
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    ended_by = ended_by.or_else(|| timeout_phase(e.as_ref()));
                    tracing::debug!(error = %e, %peer, "connection ended");
                }
                break;
            }
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                // Looked at again: a request may have started since `wake` was chosen.
                let now = Instant::now();
                match (idle_until(), asked_to_close) {
                    (Some((t, phase)), None) if t <= now => {
                        ended_by = Some(phase);
                        conn.as_mut().graceful_shutdown();
                        asked_to_close = Some(now);
                    }
                    // Still open and still idle: a half-sent head, or a client that ignores
                    // GOAWAY. Dropping the connection closes it.
                    (Some(_), Some(asked)) if now >= asked + CLOSE_GRACE => break,
                    _ => {}
                }
            }
        }
    }
    if let Some(phase) = ended_by {
        timed_out.with_label_values(&[phase]).inc();
    }
    drop(slot);
}

/// Which of the connection's own timeouts ended it, if one did.
fn timeout_phase(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && h.is_timeout()
        {
            return Some("head");
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Some("send");
        }
        cause = c.source();
    }
    None
}
