//! Shutdown signals: SIGTERM or SIGINT end a process; tests pass any future instead.

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (Kubernetes, `docker stop`).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        _ = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}

/// The drain every server of the suite follows, gateway and services alike, written once:
/// on the shutdown signal it turns not ready at once (health NOT_SERVING, `/readyz` 503); after
/// `delay` (time for balancers and endpoints to notice) it stops accepting and tells long-lived
/// streams to end; then in-flight requests get at most `timeout` before the rest are closed.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub delay: std::time::Duration,
    pub timeout: std::time::Duration,
}

/// The future a server is given to know when to stop accepting (`with_graceful_shutdown`,
/// `serve_with_incoming_shutdown`).
pub type StopAccepting = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Drain {
    /// Runs the server `serve` builds, then the drain when `shutdown` resolves: `not_ready`
    /// first, the pause, `draining` set to true, and the bounded wait. Stops `admin` last, so
    /// `/readyz` and `/metrics` answer throughout.
    pub async fn run<F, E>(
        self,
        name: &'static str,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        not_ready: impl std::future::Future<Output = ()> + Send + 'static,
        draining: tokio::sync::watch::Sender<bool>,
        admin: crate::admin::AdminTask,
        serve: impl FnOnce(StopAccepting) -> F,
    ) -> Result<(), E>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let delay = self.delay;
        let stop_accepting = Box::pin(async move {
            shutdown.await;
            not_ready.await;
            tracing::info!(service = name, "draining: not ready");
            tokio::time::sleep(delay).await;
            draining.send_replace(true);
            let _ = started_tx.send(());
        });
        let server = serve(stop_accepting);
        let timeout = self.timeout;
        let result = tokio::select! {
            r = server => r,
            _ = async {
                if started_rx.await.is_ok() {
                    tokio::time::sleep(timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(service = name, "drain timed out; closing the remaining requests");
                Ok(())
            }
        };
        admin.stop().await;
        tracing::info!(service = name, "stopped");
        result
    }
}
