//! The admin HTTP port every process serves: `/metrics`, `/livez` and `/readyz`.

use std::future::Future;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    faults::{FaultConfig, Faults},
    metrics::Metrics,
};

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    ready: watch::Receiver<bool>,
}

/// `/metrics` (Prometheus text), `/livez` (the process answers), `/readyz` (it can serve) and,
/// for gRPC services, `/faults` (fault injection: GET shows, PUT replaces, DELETE clears).
pub fn router(metrics: Metrics, ready: watch::Receiver<bool>, faults: Option<Faults>) -> Router {
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, ready });
    match faults {
        Some(f) => router.merge(
            Router::new()
                .route(
                    "/faults",
                    get(get_faults).put(put_faults).delete(clear_faults),
                )
                .with_state(f),
        ),
        None => router,
    }
}

async fn get_faults(State(f): State<Faults>) -> Json<FaultConfig> {
    Json((*f.get()).clone())
}

async fn put_faults(State(f): State<Faults>, body: String) -> axum::response::Response {
    match FaultConfig::parse(&body) {
        Ok(c) => {
            f.set(c.clone()).await;
            Json(c).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn clear_faults(State(f): State<Faults>) -> StatusCode {
    f.set(FaultConfig::default()).await;
    StatusCode::NO_CONTENT
}

async fn render_metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if *s.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The admin server running beside a service; [`AdminTask::stop`] ends it.
pub struct AdminTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminTask {
    /// Serves `router` on `listener` in a task of its own.
    pub fn spawn(listener: TcpListener, router: Router) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// Stops serving and waits for the task to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Serves the admin router until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(crate::listen::without_nagle(listener), router)
        .with_graceful_shutdown(shutdown)
        .await
}
