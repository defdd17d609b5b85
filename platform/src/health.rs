//! Health as the outside sees it: the gRPC health service (per-service name and the overall "")
//! and the admin `/readyz`, moved together so they never disagree.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

/// The serving status of one gRPC service, reported under its full name and under "".
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service: &'static str,
    ready: watch::Sender<bool>,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// Starts NOT_SERVING: a service turns SERVING only once it can really serve.
    pub(crate) async fn new(reporter: HealthReporter, service: &'static str) -> Self {
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
        Self {
            reporter,
            service,
            ready: watch::Sender::new(false),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reports SERVING (true) or NOT_SERVING (false); logs only when the status changes.
    /// Once draining has begun the status stays NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        let serving = serving && !self.draining.load(Ordering::SeqCst);
        let changed = self
            .ready
            .send_if_modified(|r| std::mem::replace(r, serving) != serving);
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service, status).await;
        if changed {
            tracing::info!(service = self.service, serving, "health changed");
        }
    }

    /// Turns NOT_SERVING for good: the process is shutting down.
    pub async fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.set_serving(false).await;
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether the service reports SERVING now.
    pub fn is_serving(&self) -> bool {
        *self.ready.borrow()
    }

    /// Follows the serving status (for `/readyz`).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }
}
