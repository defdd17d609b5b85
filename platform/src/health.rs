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
    /// What the service last said it can do, and whether a drill forces NOT_SERVING anyway.
    wanted: Arc<AtomicBool>,
    forced_down: Arc<AtomicBool>,
    /// One status change at a time, so a late SERVING cannot land after the drain began.
    changing: Arc<tokio::sync::Mutex<()>>,
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
            wanted: Arc::new(AtomicBool::new(false)),
            forced_down: Arc::new(AtomicBool::new(false)),
            changing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Reports SERVING (true) or NOT_SERVING (false); logs only when the status changes.
    /// Once draining has begun the status stays NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        let _one_at_a_time = self.changing.lock().await;
        self.apply(serving).await;
    }

    async fn apply(&self, serving: bool) {
        self.wanted.store(serving, Ordering::SeqCst);
        let serving = serving
            && !self.draining.load(Ordering::SeqCst)
            && !self.forced_down.load(Ordering::SeqCst);
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

    /// Forces NOT_SERVING (true) whatever the service says, or lifts that (false): a drill.
    pub async fn force_not_serving(&self, forced: bool) {
        let _one_at_a_time = self.changing.lock().await;
        self.forced_down.store(forced, Ordering::SeqCst);
        let wanted = self.wanted.load(Ordering::SeqCst);
        self.apply(wanted).await;
    }

    /// Turns NOT_SERVING for good: the process is shutting down.
    pub async fn begin_drain(&self) {
        let _one_at_a_time = self.changing.lock().await;
        self.draining.store(true, Ordering::SeqCst);
        self.apply(false).await;
    }

    /// Follows the serving status (for `/readyz`).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }
}

/// Waits (at most `within`) until `service` on `channel` reports `want`, following the health
/// service's Watch stream. Used by tests and the suite harness instead of sleeping.
pub async fn wait_for_status(
    channel: tonic::transport::Channel,
    service: &str,
    want: ServingStatus,
    within: std::time::Duration,
) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let want = want as i32;
    let watch = async {
        let mut client = HealthClient::new(channel);
        let mut stream = client
            .watch(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| format!("health watch failed: {s}"))?
            .into_inner();
        while let Some(update) = stream
            .message()
            .await
            .map_err(|s| format!("health watch broke: {s}"))?
        {
            if update.status == want {
                return Ok(());
            }
        }
        Err("health watch ended".to_owned())
    };
    tokio::time::timeout(within, watch)
        .await
        .map_err(|_| format!("{service} did not reach status {want} within {within:?}"))?
}
