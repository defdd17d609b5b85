//! The gRPC server every service runs: health (Check and Watch), reflection, the RED metrics and
//! tracing layer, a concurrency limit that sheds excess calls, request timeouts, the admin port,
//! and a graceful, bounded drain on shutdown.

use std::{
    collections::HashSet,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use prometheus::IntCounter;
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tonic::{
    body::Body,
    server::NamedService,
    transport::{Server, server::TcpIncoming},
};
use tower::{Layer, Service, ServiceBuilder};

use crate::{
    admin,
    config::ServeArgs,
    deadline::DeadlineLayer,
    faults::{FaultLayer, Faults},
    health::Health,
    metrics::{Metrics, RpcMetrics, Side},
    observe::Observe,
    shutdown::Drain,
    telemetry::{LogThrottle, RpcAccessLog, RpcSpan},
};

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("admin server: {0}")]
    Admin(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::config::TlsFileError),
}

/// What a service gets before it starts serving: its metrics registry, its health (NOT_SERVING
/// until the service says otherwise) and a signal that flips when draining begins.
pub struct Kit {
    pub metrics: Metrics,
    pub health: Health,
    /// Fault injection for drills (admin `/faults`, `FAULTS_FILE`).
    pub faults: Faults,
    name: &'static str,
    /// Routes of the service's own beside `/metrics`, `/livez`, `/readyz` and `/faults`.
    admin_routes: Option<axum::Router>,
    health_server:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
    draining: watch::Sender<bool>,
}

impl Kit {
    /// A kit for the service whose full gRPC name is `name` (e.g. `bookstore.users.v1.UsersService`).
    pub async fn new(name: &'static str) -> Self {
        let reporter = tonic_health::server::HealthReporter::new();
        let health_server = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
        );
        let metrics = Metrics::new();
        let health = Health::new(reporter, name).await;
        Self {
            faults: Faults::new(&metrics, Some(health.clone())),
            metrics,
            health,
            name,
            admin_routes: None,
            health_server,
            draining: watch::Sender::new(false),
        }
    }

    /// Serves `routes` on the admin port too (a service's own diagnostics).
    pub fn admin_routes(&mut self, routes: axum::Router) {
        self.admin_routes = Some(routes);
    }

    /// Resolves once draining has begun; long-lived streams end on it so the drain can finish.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Serves `service` with the standard stack on `grpc` and the admin routes on `admin` until
    /// `shutdown` resolves; then NOT_SERVING, a pause of `shutdown_delay`, and a drain of at most
    /// `drain_timeout` before returning.
    pub async fn serve<S>(
        self,
        grpc: TcpListener,
        admin_listener: TcpListener,
        opts: &ServeArgs,
        descriptor_set: &[u8],
        service: S,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError>
    where
        S: Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        let Kit {
            metrics,
            health,
            faults,
            name,
            admin_routes,
            health_server,
            draining,
        } = self;
        // Reflection v1 and v1alpha: grpcurl and tonic speak v1; Python's grpcio-reflection,
        // older grpcurl, grpcui and Postman still speak v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(descriptor_set)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let reflection = reflection().build_v1()?;
        let streaming = streaming_methods(&[descriptor_set, tonic_health::pb::FILE_DESCRIPTOR_SET]);
        let rpc_metrics = RpcMetrics::new(&metrics, Side::Server);
        let shed = metrics.counter_vec(
            "grpc_server_shed_total",
            "gRPC calls refused with RESOURCE_EXHAUSTED because the concurrency limit was reached.",
            &["grpc_service"],
        );
        metrics
            .gauge(
                "grpc_server_concurrency_limit",
                "Calls this server handles at once before shedding (saturation = in_flight / limit).",
            )
            .set(opts.concurrency_limit as i64);
        metrics
            .gauge(
                "grpc_server_stream_limit",
                "Open server streams this server holds at once before shedding new ones.",
            )
            .set(opts.stream_limit as i64);
        let stack = ServiceBuilder::new()
            // Outermost: a span for every call, shed ones included, then its RED metrics, then
            // its access-log line (inside the span, so it carries the trace id); one layer.
            .layer(Observe::new(
                (RpcSpan(Side::Server), (rpc_metrics, RpcAccessLog)),
                Side::Server,
            ))
            // Deadlines answered DEADLINE_EXCEEDED inside the metrics layer (not tonic's
            // CANCELLED outside it), so every view of an expired call agrees.
            .layer(DeadlineLayer::new(Some(opts.request_timeout())))
            // Concurrency limits: calls beyond them are shed at once instead of queueing; a
            // call holds its permit until its response ends, streams from their own pool.
            .layer(ShedLayer::new(
                opts.concurrency_limit,
                opts.stream_limit,
                streaming,
                shed.with_label_values(&[name]),
            ))
            // Drills: injected latency counts against the deadline and the limits, injected errors are seen
            // by the metrics and the span exactly as real ones.
            .layer(FaultLayer::new(faults.clone()));

        if let Some(path) = opts.faults_file.clone() {
            tokio::spawn(
                faults
                    .clone()
                    .watch_file(path, std::time::Duration::from_secs(2)),
            );
        }
        let admin_router = admin::router(metrics.clone(), health.subscribe(), Some(faults));
        let admin = admin::AdminTask::spawn(
            admin_listener,
            match admin_routes {
                Some(routes) => admin_router.merge(routes),
                None => admin_router,
            },
        );

        let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
        let mut builder = Server::builder();
        if let Some(tls) = opts.tls()? {
            builder = builder.tls_config(tls).map_err(|e| {
                ServeError::Tls(crate::config::TlsFileError {
                    flag: "--tls-cert/--tls-key/--tls-client-ca",
                    why: tonic_error_chain(&e),
                })
            })?;
            tracing::info!(
                service = name,
                mutual = opts.tls_client_ca.is_some(),
                "serving TLS"
            );
        }
        let router = builder
            .layer(stack)
            .add_service(health_server)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(service);
        tracing::info!(service = name, "gRPC server started");
        let drain = Drain {
            delay: opts.shutdown_delay(),
            timeout: opts.drain_timeout(),
        };
        // NOT_SERVING first, then the pause, then streams end and the listener closes.
        let not_ready = async move { health.begin_drain().await };
        drain
            .run(name, shutdown, not_ready, draining, admin, |stop| {
                router.serve_with_incoming_shutdown(incoming, stop)
            })
            .await
            .map_err(ServeError::from)
    }
}

/// An error and its sources, one line (tonic's transport errors keep the cause in the source).
fn tonic_error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// The paths (`/package.Service/Method`) of every server- or client-streaming method in these
/// encoded descriptor sets, plus server reflection's (a bidirectional stream).
pub fn streaming_methods(descriptor_sets: &[&[u8]]) -> Arc<HashSet<String>> {
    use prost::Message;
    let mut out: HashSet<String> = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for set in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = service.name.unwrap_or_default();
                for m in service.method {
                    if m.server_streaming() || m.client_streaming() {
                        let full = if package.is_empty() {
                            service_name.clone()
                        } else {
                            format!("{package}.{service_name}")
                        };
                        out.insert(format!("/{full}/{}", m.name.unwrap_or_default()));
                    }
                }
            }
        }
    }
    Arc::new(out)
}

/// Limits the calls in progress; a call beyond the limit is answered RESOURCE_EXHAUSTED at once
/// (load shedding) rather than queued behind the others. A call holds its permit until its
/// response body ends, so a slow download or an open stream still counts. Streaming methods draw
/// from a pool of their own, so long-lived streams cannot starve unary calls (nor the reverse),
/// and health watches (the gateways' balancers) from a third, so no number of live feeds can
/// keep a gateway from learning that a replica is up.
///
/// A shed call is counted (`grpc_server_shed_total`) and gets no access-log line of its own:
/// each pool writes one WARN line per [`SHED_LOG_EVERY`] at most, saying how many it shed since
/// the last, so a flood cannot flood the logs.
#[derive(Clone)]
pub struct ShedLayer {
    calls: Pool,
    streams: Pool,
    health_watches: Pool,
    streaming: Arc<HashSet<String>>,
    shed: IntCounter,
}

/// One pool of permits, and its throttled shed log.
#[derive(Clone)]
struct Pool {
    name: &'static str,
    limit: usize,
    permits: Arc<Semaphore>,
    log: Arc<LogThrottle>,
}

impl Pool {
    fn new(name: &'static str, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            name,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            log: Arc::new(LogThrottle::new(SHED_LOG_EVERY)),
        }
    }

    /// A call refused: the line, when one is due.
    fn log_shed(&self) {
        if let Some(shed) = self.log.hit() {
            tracing::warn!(
                pool = self.name,
                limit = self.limit,
                shed,
                every_secs = self.log.every().as_secs(),
                "gRPC calls shed at the concurrency limit (count since the last such line)"
            );
        }
    }
}

/// At most one shed line per pool per this interval.
pub const SHED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks the refusal of a shed call (a response extension), so the access log leaves it to the
/// throttled shed line.
#[derive(Debug, Clone, Copy)]
pub struct ShedRefusal;

impl ShedLayer {
    pub fn new(
        call_limit: usize,
        stream_limit: usize,
        streaming: Arc<HashSet<String>>,
        shed: IntCounter,
    ) -> Self {
        Self {
            calls: Pool::new("calls", call_limit),
            streams: Pool::new("streams", stream_limit),
            health_watches: Pool::new("health_watches", HEALTH_WATCHES),
            streaming,
            shed,
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = ShedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ShedService {
            inner,
            limits: self.clone(),
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone)]
pub struct ShedService<S> {
    inner: S,
    limits: ShedLayer,
}

/// How long a shed caller is asked to wait before trying again (gRFC A6 server pushback).
pub const SHED_PUSHBACK_MS: u64 = 100;

/// `grpc.health.v1.Health/Watch` streams held at once, apart from STREAM_LIMIT: one per
/// gateway replica (and per health-checking client), so a few hundred is ample.
pub const HEALTH_WATCHES: usize = 256;
const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for ShedService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    ResB: Default,
{
    type Response = http::Response<PermitBody<ResB>>;
    type Error = S::Error;
    type Future = ShedFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let path = req.uri().path();
        let pool = if path == HEALTH_WATCH {
            &self.limits.health_watches
        } else if self.limits.streaming.contains(path) {
            &self.limits.streams
        } else {
            &self.limits.calls
        };
        match pool.permits.clone().try_acquire_owned() {
            Ok(permit) => ShedFuture::Admitted {
                inner: self.inner.call(req),
                permit: Some(permit),
            },
            Err(_) => {
                self.limits.shed.inc();
                pool.log_shed();
                let mut resp: http::Response<ResB> = tonic::Status::resource_exhausted(
                    "the server is at its concurrency limit; retry with backoff",
                )
                .into_http();
                resp.headers_mut().insert(
                    "grpc-retry-pushback-ms",
                    http::HeaderValue::from(SHED_PUSHBACK_MS),
                );
                resp.extensions_mut().insert(ShedRefusal);
                ShedFuture::Shed {
                    refusal: Some(resp),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`ShedService`]: an admitted call holding its permit, or the refusal.
    #[project = ShedProjection]
    pub enum ShedFuture<F, ResB> {
        Admitted {
            #[pin]
            inner: F,
            permit: Option<OwnedSemaphorePermit>,
        },
        Shed {
            refusal: Option<http::Response<ResB>>,
        },
    }
}

impl<F, ResB, E> Future for ShedFuture<F, ResB>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = Result<http::Response<PermitBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (resp, permit) = match self.project() {
            ShedProjection::Admitted { inner, permit } => {
                (std::task::ready!(inner.poll(cx))?, permit.take())
            }
            ShedProjection::Shed { refusal } => (
                refusal.take().expect("ShedFuture polled after completion"),
                None,
            ),
        };
        Poll::Ready(Ok(resp.map(|inner| PermitBody { inner, permit })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that gives its concurrency permit back when it ends (or is dropped).
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B: Default> Default for PermitBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            permit: None,
        }
    }
}

impl<B: http_body::Body> http_body::Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        let ended = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(f)) => f.is_trailers(),
        };
        if ended {
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
