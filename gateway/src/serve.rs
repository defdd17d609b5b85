//! Serving the public port with every connection bounded in time and memory: a head must arrive
//! within HEADER_READ_TIMEOUT_MS, a body within BODY_READ_TIMEOUT_MS (read before the request
//! takes a concurrency permit), a connection with nothing in flight lives IDLE_TIMEOUT_MS, one
//! whose client takes none of its answer SEND_TIMEOUT_MS, and connections are capped per client
//! and in total. HTTP/1.1 and h2c, hyper-util's auto builder, one task per connection.
//!
//! Memory (the pod's limit is 64 MiB), measured on the release binary with the image's
//! GLIBC_TUNABLES: the gateway idles at ~10.5 MiB (17 MiB under load, README). Per connection
//! held open: 19 KiB for an HTTP/1 head stuck at 7 KiB, 34 KiB for a 16 KiB body trickling in
//! (46 KiB counting the burst of answers when hundreds end at once), 16 KiB for an idle HTTP/2
//! connection and 71 KiB for one whose 8 streams all wait with a body: the costliest kind.
//! So MAX_CONNECTIONS = 512: 512 x 71 KiB = 36 MiB, + 17 MiB = 53 MiB, under the limit with
//! room for the allocator. (Measured: 512 such connections from two addresses while another
//! client read books, peak RSS 47 MiB.) Bodies being read are one per connection at most.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use platform::metrics::Metrics;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::Instant,
};

use crate::error::ApiError;

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
    /// pod's 64 MiB: 512 of the costliest kind take ~36 MiB (the arithmetic: `serve` module).
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
/// What a connection refused at the caps is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
    connection: close\r\ncontent-length: 0\r\n\r\n";

/// The connection metrics: `http_connections_open`, `http_connections_refused_total{reason}`
/// (`total`, `per_client`) and `http_connections_timed_out_total{phase}` (`head`, `idle`,
/// `send`; bodies that time out are 408s in `http_requests_total`).
#[derive(Clone)]
struct ConnMetrics {
    open: prometheus::IntGauge,
    refused_total: prometheus::IntCounter,
    refused_per_client: prometheus::IntCounter,
    timed_out: prometheus::IntCounterVec,
}

impl ConnMetrics {
    fn new(metrics: &Metrics) -> Self {
        let refused = metrics.counter_vec(
            "http_connections_refused_total",
            "Connections answered 503 and closed at once: at MAX_CONNECTIONS (total) or \
             MAX_CONNECTIONS_PER_CLIENT (per_client).",
            &["reason"],
        );
        let timed_out = metrics.counter_vec(
            "http_connections_timed_out_total",
            "Connections closed by a timeout: no (next) request head in time (head), nothing in \
             flight too long (idle), or an answer the client does not take (send).",
            &["phase"],
        );
        for phase in ["head", "idle", "send"] {
            timed_out.with_label_values(&[phase]);
        }
        Self {
            open: metrics.gauge("http_connections_open", "Client connections open."),
            refused_total: refused.with_label_values(&["total"]),
            refused_per_client: refused.with_label_values(&["per_client"]),
            timed_out,
        }
    }
}

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
    let clients = Clients::new(args, conn_metrics.clone());
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
        body_turn: BodyTurn(Arc::new(Semaphore::new(1))),
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

/// What the idle timer of a connection needs to know.
struct Activity {
    in_flight: usize,
    /// When the last request in flight ended, or the last wait to send (or the accept).
    idle_since: Instant,
    /// Whether any request has started.
    served: bool,
    /// Whether a write waits for the client to take what was sent.
    sending: bool,
}

impl Activity {
    fn new() -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            in_flight: 0,
            idle_since: Instant::now(),
            served: false,
            sending: false,
        }))
    }
}

/// The router, for one connection: each request is given the peer's address (the sign-in
/// budget's key) and the connection's [`BodyTurn`], and is counted in flight until its
/// answer's body is sent or dropped.
#[derive(Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Mutex<Activity>>,
    body_turn: BodyTurn,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = http::Response<InFlightBody>;
    type Error = Infallible;
    type Future = InFlightFuture<axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.body_turn.clone());
        {
            let mut a = self.activity.lock().unwrap();
            a.in_flight += 1;
            a.served = true;
        }
        let guard = InFlight(self.activity.clone());
        // A router is always ready (axum documents it), so no `poll_ready` first.
        let future = tower::Service::call(&mut self.app.clone(), req);
        InFlightFuture {
            inner: future,
            guard: Some(guard),
        }
    }
}

/// One request in flight on a connection; dropped with its answer's body (or the answer never
/// given).
struct InFlight(Arc<Mutex<Activity>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap();
        a.in_flight -= 1;
        a.idle_since = Instant::now();
    }
}

pin_project_lite::pin_project! {
    /// The router's answer, its body carrying the request's [`InFlight`].
    struct InFlightFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F> Future for InFlightFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<http::Response<InFlightBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| InFlightBody {
            inner,
            _guard: guard,
        })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request in flight until it is sent.
    struct InFlightBody {
        #[pin]
        inner: Body,
        _guard: Option<InFlight>,
    }
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A socket whose writes fail with `TimedOut` once they have waited `limit` for room: the
    /// client has stopped reading (or reads a byte now and then), and the answer would be held
    /// for as long as it pleases. While a write waits the connection is not idle: an answer
    /// can be all in hyper's buffer, its request over, and still be on its way.
    struct SendTimeout<T> {
        #[pin]
        io: T,
        limit: Duration,
        // Allocated on the first wait only; `waiting` says whether it runs.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        waiting: bool,
        activity: Arc<Mutex<Activity>>,
    }
}

impl<T> SendTimeout<T> {
    fn new(io: T, limit: Duration, activity: Arc<Mutex<Activity>>) -> Self {
        Self {
            io,
            limit,
            timer: None,
            waiting: false,
            activity,
        }
    }
}

impl<T: AsyncWrite> SendTimeout<T> {
    fn track<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        let this = self.project();
        let result = op(this.io, cx);
        // Both changes are rare: only a full socket starts a wait.
        match (&result, *this.waiting) {
            (Poll::Pending, false) => {
                let deadline = Instant::now() + *this.limit;
                match this.timer {
                    Some(t) => t.as_mut().reset(deadline),
                    None => *this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                *this.waiting = true;
                this.activity.lock().unwrap().sending = true;
            }
            (Poll::Ready(_), true) => {
                *this.waiting = false;
                let mut a = this.activity.lock().unwrap();
                a.sending = false;
                a.idle_since = Instant::now();
            }
            _ => {}
        }
        if result.is_pending()
            && let Some(timer) = this.timer
        {
            ready!(timer.as_mut().poll(cx));
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took none of the answer in time",
            )));
        }
        result
    }
}

impl<T: AsyncRead> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.track(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.track(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.track(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// Connections open, in total and per client.
struct Clients {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<OpenConnections>,
    metrics: ConnMetrics,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back when dropped.
struct Slot {
    clients: Arc<Clients>,
    client: IpAddr,
}

impl Clients {
    fn new(args: &ConnectionArgs, metrics: ConnMetrics) -> Arc<Self> {
        Arc::new(Self {
            max_total: args.max_connections.max(1),
            max_per_client: args.max_connections_per_client.max(1),
            open: Mutex::default(),
            metrics,
        })
    }

    /// A place for a connection from `peer`, or `None` (counted) when a cap is reached.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let client = client_key(peer);
        let mut open = self.open.lock().unwrap();
        if open.total >= self.max_total {
            self.metrics.refused_total.inc();
            return None;
        }
        let mine = open.by_client.entry(client).or_default();
        if *mine >= self.max_per_client {
            self.metrics.refused_per_client.inc();
            return None;
        }
        *mine += 1;
        open.total += 1;
        self.metrics.open.set(open.total as i64);
        Some(Slot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap();
        open.total -= 1;
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
        self.clients.metrics.open.set(open.total as i64);
    }
}

/// Who a client is for the per-client cap: an IPv4 address, or an IPv6 /64 (what one
/// subscriber is usually given, so one host cannot pass as millions of clients).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Reads a request's body whole (at most `limit` bytes, and a byte more to tell a body too
/// large) within `timeout` of its head, before the layers inside it run: the concurrency
/// permit ([`crate::shed`]) is taken only by a request that has arrived. Too slow: 408. Too
/// large: the first `limit + 1` bytes are passed on and the extractors' limit answers 413 as
/// without this layer. One connection's bodies are read one at a time (HTTP/2 streams wait
/// their turn, within their own timeout), so bodies being read hold at most one
/// BODY_LIMIT_BYTES per connection, whatever the protocol.
#[derive(Clone)]
pub struct ReadBodyLayer {
    timeout: Duration,
    limit: usize,
}

impl ReadBodyLayer {
    /// Bodies of at most `limit` bytes, each read within `timeout` of its head.
    pub fn new(timeout: Duration, limit: usize) -> Self {
        Self { timeout, limit }
    }
}

/// A connection's turn to have a body read, in each of its requests' extensions.
#[derive(Clone)]
struct BodyTurn(Arc<Semaphore>);

impl<S> tower::Layer<S> for ReadBodyLayer {
    type Service = ReadBody<S>;
    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ReadBodyLayer`].
#[derive(Clone)]
pub struct ReadBody<S> {
    inner: S,
    layer: ReadBodyLayer,
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request<Body>> for ReadBody<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ReadBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        use http_body::Body as _;
        // Most requests (GET) have no body: straight through, nothing boxed.
        if req.body().is_end_stream() {
            return ReadBodyFuture::Direct {
                inner: self.inner.call(req),
            };
        }
        // The clone waits for the body; the service made ready answers it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        ReadBodyFuture::Reading {
            answer: Box::pin(async move {
                let (parts, body) = req.into_parts();
                let expected = body
                    .size_hint()
                    .upper()
                    .map_or(layer.limit + 1, |n| n.min(layer.limit as u64 + 1) as usize);
                let turn = parts.extensions.get::<BodyTurn>().cloned();
                let http1 = parts.version < http::Version::HTTP_2;
                let read = async {
                    let _turn = match turn {
                        Some(BodyTurn(t)) => Some(t.acquire_owned().await),
                        None => None,
                    };
                    read_at_most(body, layer.limit, expected).await
                };
                match tokio::time::timeout(layer.timeout, read).await {
                    Ok(Ok(bytes)) => {
                        inner
                            .call(Request::from_parts(parts, Body::from(bytes)))
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "request body not read");
                        Ok(ApiError::bad_request("the request body could not be read")
                            .into_response())
                    }
                    Err(_) => {
                        let mut answer = ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the request body did not arrive within {} ms",
                                layer.timeout.as_millis()
                            ),
                        )
                        .into_response();
                        // The rest of the body is never read: the connection cannot be reused.
                        if http1 {
                            answer
                                .headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok(answer)
                    }
                }
            }),
        }
    }
}

/// At most `limit + 1` bytes of `body` (`capacity` expected), in one piece.
async fn read_at_most(mut body: Body, limit: usize, capacity: usize) -> Result<Bytes, axum::Error> {
    // The usual case, a body that comes in one frame, is kept as it came: no copy.
    let mut single: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers: none of the gateway's routes reads them
        };
        let held = single.as_ref().map_or(0, Bytes::len) + joined.as_ref().map_or(0, BytesMut::len);
        data.truncate(limit + 1 - held);
        if let Some(whole) = joined.as_mut() {
            whole.extend_from_slice(&data);
        } else if let Some(first) = single.take() {
            let mut whole = BytesMut::with_capacity(capacity.max(held + data.len()));
            whole.extend_from_slice(&first);
            whole.extend_from_slice(&data);
            joined = Some(whole);
        } else {
            single = Some(data);
        }
        if single.as_ref().map_or(0, Bytes::len) + joined.as_ref().map_or(0, BytesMut::len) > limit
        {
            break;
        }
    }
    Ok(joined.map_or_else(|| single.unwrap_or_default(), BytesMut::freeze))
}

pin_project_lite::pin_project! {
    /// A request without a body, passed straight on; or one whose body is being read first.
    #[project = ReadBodyProj]
    pub enum ReadBodyFuture<F> {
        Direct { #[pin] inner: F },
        Reading { answer: BoxedAnswer },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ReadBodyFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ReadBodyProj::Direct { inner } => inner.poll(cx),
            ReadBodyProj::Reading { answer } => answer.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use tower::{Layer, ServiceExt};

    use super::*;

    fn args(total: usize, per_client: usize) -> ConnectionArgs {
        ConnectionArgs {
            header_read_timeout_ms: 1_000,
            body_read_timeout_ms: 1_000,
            idle_timeout_ms: 1_000,
            send_timeout_ms: 1_000,
            max_connections: total,
            max_connections_per_client: per_client,
        }
    }

    #[test]
    fn a_client_past_its_cap_is_refused_while_others_are_admitted_up_to_the_total() {
        let metrics = Metrics::new();
        let m = ConnMetrics::new(&metrics);
        let clients = Clients::new(&args(3, 2), m.clone());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        let a1 = clients.admit(a).unwrap();
        let _a2 = clients.admit(a).unwrap();
        assert!(clients.admit(a).is_none(), "a third from the same client");
        assert_eq!(m.refused_per_client.get(), 1);
        let _b1 = clients.admit(b).unwrap();
        assert!(clients.admit(c).is_none(), "the total is reached");
        assert_eq!(m.refused_total.get(), 1);
        assert_eq!(m.open.get(), 3);
        drop(a1);
        assert_eq!(m.open.get(), 2);
        let _c1 = clients
            .admit(c)
            .expect("a closed connection gives its place back");
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let one: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one.into()), client_key(two.into()));
        assert_ne!(client_key(one.into()), client_key(other.into()));
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_key(mapped.into()),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    /// A service that answers with the length of the body it got, or 413 past `limit` (as the
    /// extractors do), counting the requests that reached it.
    fn echo_len(
        limit: usize,
        reached: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |req: Request<Body>| {
            let reached = reached.clone();
            async move {
                reached.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = http_body_util::Limited::new(req.into_body(), limit)
                    .collect()
                    .await;
                Ok::<_, Infallible>(match body {
                    Ok(b) => b.to_bytes().len().to_string().into_response(),
                    Err(_) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                })
            }
        })
    }

    async fn text(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_body_that_trickles_past_the_timeout_is_408_and_never_reaches_the_service() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc = ReadBodyLayer::new(Duration::from_millis(200), 100)
            .layer(echo_len(100, reached.clone()));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        // Sent on, never finished: the sender is held.
        let body = Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let started = std::time::Instant::now();
        let answer = svc
            .oneshot(Request::post("/").body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        assert_eq!(answer.headers()["connection"], "close");
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_in_pieces_arrives_whole_and_one_too_large_still_meets_the_limit() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc =
            ReadBodyLayer::new(Duration::from_secs(5), 10).layer(echo_len(10, reached.clone()));
        let pieces = |parts: &'static [&'static [u8]]| {
            Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
                parts
                    .iter()
                    .map(|p| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(p)))),
            )))
        };
        let whole = svc
            .clone()
            .oneshot(
                Request::post("/")
                    .body(pieces(&[b"abc", b"def", b"ghij"]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(text(whole).await, "10");
        let large = svc
            .clone()
            .oneshot(
                Request::post("/")
                    .body(pieces(&[b"abcdef", b"ghijkl", b"mnop"]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let empty = svc
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(text(empty).await, "0");
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn one_connections_bodies_are_read_one_at_a_time() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc =
            ReadBodyLayer::new(Duration::from_millis(300), 10).layer(echo_len(10, reached.clone()));
        let turn = BodyTurn(Arc::new(Semaphore::new(1)));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(1);
        let mut slow = Request::post("/")
            .body(Body::new(http_body_util::StreamBody::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )))
            .unwrap();
        slow.extensions_mut().insert(turn.clone());
        let started = std::time::Instant::now();
        let slow = tokio::spawn(svc.clone().oneshot(slow));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Another stream of the same connection, its body all there: it waits for the turn.
        let mut quick = Request::post("/").body(Body::from("x")).unwrap();
        quick.extensions_mut().insert(turn);
        let quick = svc.oneshot(quick).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(text(quick).await, "1");
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(tx);
    }

    #[tokio::test]
    async fn a_socket_the_client_stops_reading_fails_its_writes_after_the_send_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = SendTimeout::new(server, Duration::from_millis(200), Activity::new());
        let started = std::time::Instant::now();
        let err = tokio::io::AsyncWriteExt::write_all(&mut server, &[0u8; 4096])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(client);
    }

    #[tokio::test]
    async fn a_client_that_keeps_reading_is_never_timed_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = SendTimeout::new(server, Duration::from_millis(100), Activity::new());
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            // Slower than the timeout in all, but never stalled for the timeout's length.
            while got < 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                got += tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                    .await
                    .unwrap();
            }
        });
        tokio::io::AsyncWriteExt::write_all(&mut server, &[0u8; 1024])
            .await
            .unwrap();
        reader.await.unwrap();
    }
}
