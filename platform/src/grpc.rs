//! The gRPC server every service runs: health (Check and Watch), reflection, the RED metrics and
//! tracing layer, a concurrency limit that sheds excess calls, request timeouts, the admin port,
//! and a graceful, bounded drain on shutdown.

use std::{
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
    health::Health,
    metrics::{GrpcMetricsLayer, Metrics, RpcMetrics, Side},
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
}

/// What a service gets before it starts serving: its metrics registry, its health (NOT_SERVING
/// until the service says otherwise) and a signal that flips when draining begins.
pub struct Kit {
    pub metrics: Metrics,
    pub health: Health,
    name: &'static str,
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
        Self {
            metrics: Metrics::new(),
            health: Health::new(reporter, name).await,
            name,
            health_server,
            draining: watch::Sender::new(false),
        }
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
            name,
            health_server,
            draining,
        } = self;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
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
        let stack = ServiceBuilder::new()
            // Outermost: a span and RED metrics for every call, shed ones included.
            .layer(GrpcMetricsLayer::new(rpc_metrics))
            // Concurrency limit: calls beyond it are shed at once instead of queueing.
            .layer(ShedLayer::new(
                opts.concurrency_limit,
                shed.with_label_values(&[name]),
            ));

        // Drain sequence: signal -> NOT_SERVING -> pause -> stop accepting, streams end -> drain.
        let (drain_started_tx, drain_started_rx) = tokio::sync::oneshot::channel::<()>();
        let delay = opts.shutdown_delay();
        let drain_health = health.clone();
        let signal = async move {
            shutdown.await;
            drain_health.begin_drain().await;
            tracing::info!(service = name, "draining: NOT_SERVING");
            tokio::time::sleep(delay).await;
            draining.send_replace(true);
            let _ = drain_started_tx.send(());
        };

        let admin_router = admin::router(metrics.clone(), health.subscribe());
        let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let admin_task = tokio::spawn(admin::serve(admin_listener, admin_router, async move {
            let _ = admin_stop_rx.await;
        }));

        let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
        let server = Server::builder()
            .timeout(opts.request_timeout())
            .layer(stack)
            .add_service(health_server)
            .add_service(reflection)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, signal);
        tracing::info!(service = name, "gRPC server started");

        let drain_timeout = opts.drain_timeout();
        tokio::pin!(server);
        let result = tokio::select! {
            r = &mut server => r.map_err(ServeError::from),
            _ = async {
                if drain_started_rx.await.is_ok() {
                    tokio::time::sleep(drain_timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(service = name, "drain timed out; closing the remaining calls");
                Ok(())
            }
        };
        let _ = admin_stop_tx.send(());
        let _ = admin_task.await;
        tracing::info!(service = name, "stopped");
        result
    }
}

/// Limits the calls in progress; a call beyond the limit is answered RESOURCE_EXHAUSTED at once
/// (load shedding) rather than queued behind the others.
#[derive(Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
    shed: IntCounter,
}

impl ShedLayer {
    pub fn new(limit: usize, shed: IntCounter) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            shed,
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = ShedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ShedService {
            inner,
            permits: self.permits.clone(),
            shed: self.shed.clone(),
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone)]
pub struct ShedService<S> {
    inner: S,
    permits: Arc<Semaphore>,
    shed: IntCounter,
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for ShedService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let permit: Option<OwnedSemaphorePermit> = self.permits.clone().try_acquire_owned().ok();
        match permit {
            Some(permit) => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let out = fut.await;
                    drop(permit);
                    out
                })
            }
            None => {
                self.shed.inc();
                Box::pin(async {
                    Ok(tonic::Status::resource_exhausted(
                        "the server is at its concurrency limit; retry with backoff",
                    )
                    .into_http())
                })
            }
        }
    }
}
