//! The gRPC server every service runs: health (Check and Watch), reflection, the RED metrics and
//! tracing layer, a concurrency limit that sheds excess calls, request timeouts, the admin port,
//! and a graceful, bounded drain on shutdown.

use std::{collections::HashSet, convert::Infallible, future::Future, sync::Arc};

use tokio::{net::TcpListener, sync::watch};
use tonic::{
    body::Body,
    server::NamedService,
    transport::{Server, server::TcpIncoming},
};
use tower::{Service, ServiceBuilder};

use crate::{
    admin,
    config::ServeArgs,
    deadline::DeadlineLayer,
    faults::{FaultLayer, Faults},
    health::Health,
    metrics::{Metrics, Side},
    observe::{Observe, RpcAccessLog, RpcMetrics, RpcSpan},
    shed::{self, ShedLayer},
    shutdown::Drain,
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
                shed::Grpc::new(opts.concurrency_limit, opts.stream_limit, streaming),
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
