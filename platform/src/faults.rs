//! Fault injection for drills, switched at runtime without a restart: added latency (fixed plus
//! uniform jitter), a share of calls failed with a chosen gRPC code, and a failing readiness;
//! each rule optionally scoped to one method. Every injected fault is counted in
//! `faults_injected_total{grpc_service,grpc_method,fault}`, logged and recorded on the call's
//! span (`fault.injected`), so a drill is honest about what was injected.
//!
//! Switched through the admin port (`GET`/`PUT`/`DELETE /faults`, JSON) or a file the process
//! watches (`FAULTS_FILE`, e.g. a ConfigMap key mounted in the pod: kubelet updates it in place,
//! no rollout needed). Health and reflection calls are never faulted (use `not_ready` for that).

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::Either;
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use crate::{grpc_path::split_grpc_path, health::Health};

/// One fault rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Method name (`GetBook`) or full path (`/bookstore.marketplace.v1.MarketplaceService/GetBook`);
    /// absent: every method of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Added before the call is handled, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Uniform extra latency in `0..=latency_jitter_ms`.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// Share of calls (0.0-1.0) answered with `error_code` instead of being handled.
    #[serde(default)]
    pub error_rate: f64,
    /// gRPC code name of injected errors (`UNAVAILABLE`, `INTERNAL`, ...); default UNAVAILABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Every fault currently switched on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// Report NOT_SERVING (health and `/readyz`) while the process goes on serving.
    #[serde(default)]
    pub not_ready: bool,
}

/// Why a fault configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadFaults {
    #[error("faults are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rules[{0}].error_rate must be between 0 and 1, got {1}")]
    Rate(usize, f64),
    #[error("rules[{0}].error_code {1:?} is not a gRPC code name (e.g. UNAVAILABLE)")]
    Code(usize, String),
    #[error("rules[{0}]: latency_ms and latency_jitter_ms must add up to at most 600000")]
    Latency(usize),
}

impl FaultConfig {
    /// Parses and checks a configuration.
    pub fn parse(json: &str) -> Result<Self, BadFaults> {
        let c: FaultConfig = if json.trim().is_empty() {
            FaultConfig::default()
        } else {
            serde_json::from_str(json)?
        };
        for (i, r) in c.rules.iter().enumerate() {
            if !(0.0..=1.0).contains(&r.error_rate) {
                return Err(BadFaults::Rate(i, r.error_rate));
            }
            if let Some(code) = &r.error_code
                && code_from_name(code).is_none()
            {
                return Err(BadFaults::Code(i, code.clone()));
            }
            if r.latency_ms.saturating_add(r.latency_jitter_ms) > 600_000 {
                return Err(BadFaults::Latency(i));
            }
        }
        Ok(c)
    }
}

/// A gRPC code from its canonical name (`DEADLINE_EXCEEDED`) or grpc-go's (`DeadlineExceeded`).
pub fn code_from_name(name: &str) -> Option<tonic::Code> {
    let n: String = name
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    (1..=16)
        .map(tonic::Code::from_i32)
        .find(|c| format!("{c:?}").to_ascii_lowercase() == n)
}

/// The switch every layer and the admin routes share.
#[derive(Clone)]
pub struct Faults {
    current: Arc<RwLock<Arc<FaultConfig>>>,
    /// Whether `current` has any rule: read on every call, written only by [`Faults::set`], so
    /// calls without faults share no lock or count between the server's threads.
    armed: Arc<AtomicBool>,
    health: Option<Health>,
    injected: IntCounterVec,
}

impl Faults {
    pub fn new(metrics: &crate::metrics::Metrics, health: Option<Health>) -> Self {
        Self {
            current: Arc::default(),
            armed: Arc::default(),
            health,
            injected: metrics.counter_vec(
                "faults_injected_total",
                "Faults injected on purpose (drills), by kind: latency, error, not_ready.",
                &["grpc_service", "grpc_method", "fault"],
            ),
        }
    }

    pub fn get(&self) -> Arc<FaultConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Switches to `config` (an empty one switches every fault off).
    pub async fn set(&self, config: FaultConfig) {
        let not_ready = config.not_ready;
        let changed = {
            let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
            let changed = **cur != config;
            self.armed
                .store(!config.rules.is_empty(), Ordering::Release);
            *cur = Arc::new(config);
            changed
        };
        if changed {
            tracing::warn!(faults = %serde_json::to_string(&*self.get()).unwrap_or_default(), "fault injection changed");
        }
        if let Some(h) = &self.health {
            if not_ready && changed {
                self.injected
                    .with_label_values(&["", "", "not_ready"])
                    .inc();
            }
            h.force_not_serving(not_ready).await;
        }
    }

    /// Follows `path`: applies its content when it changes (checked every `every`); a missing or
    /// empty file means no faults, an invalid one is logged and ignored.
    pub async fn watch_file(self, path: PathBuf, every: Duration) {
        let mut last: Option<String> = None;
        loop {
            let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            if last.as_deref() != Some(text.as_str()) {
                match FaultConfig::parse(&text) {
                    Ok(c) => self.set(c).await,
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "fault file ignored")
                    }
                }
                last = Some(text);
            }
            tokio::time::sleep(every).await;
        }
    }

    fn rule_for(&self, path: &str) -> Option<FaultRule> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let cfg = self.get();
        if cfg.rules.is_empty() || path.starts_with("/grpc.") {
            return None;
        }
        let (_, method) = split_grpc_path(path);
        cfg.rules
            .iter()
            .find(|r| r.method.as_deref().is_none_or(|m| m == method || m == path))
            .cloned()
    }
}

/// Applies [`Faults`] to gRPC calls; sits inside the metrics layer so injected faults are seen
/// exactly as real ones would be.
#[derive(Clone)]
pub struct FaultLayer {
    faults: Faults,
}

impl FaultLayer {
    pub fn new(faults: Faults) -> Self {
        Self { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

/// See [`FaultLayer`].
#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
    faults: Faults,
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for FaultService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// A call without a fault is the inner call itself, not boxed.
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let Some(rule) = self.faults.rule_for(req.uri().path()) else {
            return Either::Left(self.inner.call(req));
        };
        // The service polled ready is the one that must be called; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (service, method) = split_grpc_path(req.uri().path());
        let (service, method) = (service.to_owned(), method.to_owned());
        let injected = self.faults.injected.clone();
        Either::Right(Box::pin(async move {
            let latency =
                rule.latency_ms + crate::random_below(rule.latency_jitter_ms.saturating_add(1));
            let span = tracing::Span::current();
            if latency > 0 {
                injected
                    .with_label_values(&[&service, &method, "latency"])
                    .inc();
                span.record("fault.injected", format!("latency {latency}ms"));
                tracing::info!(latency_ms = latency, "fault injected: latency");
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            if rule.error_rate > 0.0
                && (crate::random_below(1_000_000) as f64) < rule.error_rate * 1e6
            {
                let code = rule
                    .error_code
                    .as_deref()
                    .and_then(code_from_name)
                    .unwrap_or(tonic::Code::Unavailable);
                injected
                    .with_label_values(&[&service, &method, "error"])
                    .inc();
                span.record("fault.injected", format!("error {code:?}"));
                tracing::info!(code = ?code, "fault injected: error");
                return Ok(tonic::Status::new(code, "injected fault").into_http());
            }
            inner.call(req).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_read_in_both_spellings() {
        assert_eq!(
            code_from_name("UNAVAILABLE"),
            Some(tonic::Code::Unavailable)
        );
        assert_eq!(
            code_from_name("DEADLINE_EXCEEDED"),
            Some(tonic::Code::DeadlineExceeded)
        );
        assert_eq!(
            code_from_name("ResourceExhausted"),
            Some(tonic::Code::ResourceExhausted)
        );
        assert_eq!(code_from_name("OK"), None);
        assert_eq!(code_from_name("nope"), None);
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_field() {
        let e = FaultConfig::parse(r#"{"rules":[{"error_rate":2}]}"#).unwrap_err();
        assert!(e.to_string().contains("rules[0].error_rate"), "{e}");
        let e = FaultConfig::parse(r#"{"rules":[{"error_code":"BROKEN"}]}"#).unwrap_err();
        assert!(e.to_string().contains("error_code"), "{e}");
        assert!(FaultConfig::parse(r#"{"rulez":[]}"#).is_err());
        assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
    }

    #[tokio::test]
    async fn a_rule_scoped_to_a_method_leaves_the_others_alone() {
        let f = Faults::new(&crate::metrics::Metrics::new(), None);
        let book = "/bookstore.marketplace.v1.MarketplaceService/GetBook";
        assert!(f.rule_for(book).is_none());
        f.set(FaultConfig::parse(r#"{"rules":[{"method":"GetBook","latency_ms":5}]}"#).unwrap())
            .await;
        assert!(
            f.rule_for("/bookstore.marketplace.v1.MarketplaceService/GetBook")
                .is_some()
        );
        assert!(
            f.rule_for("/bookstore.marketplace.v1.MarketplaceService/ListBooks")
                .is_none()
        );
        assert!(f.rule_for("/grpc.health.v1.Health/Check").is_none());
        // Switched off again: no call is looked at.
        f.set(FaultConfig::default()).await;
        assert!(f.rule_for(book).is_none());
    }
}
