//! Every call to an upstream goes through here, inside the client metrics layer (so a retried
//! call is still one call in `grpc_client_handled_total`, with its retries counted apart):
//!
//! - it never waits past its deadline, even for a replica: with none ready it fails UNAVAILABLE
//!   at once (after discovery's first round), and a call stuck in the balancer's queue is
//!   answered DEADLINE_EXCEEDED when its `grpc-timeout` runs out;
//! - idempotent reads (`Get*`, `List*`, `Search*`, `BatchGet*`) that fail UNAVAILABLE are tried
//!   again, at most twice, after a jittered backoff, with the time left sent on, and only while
//!   the retry budget allows (gRFC A6 / Linkerd style: retries at most 20% of calls, plus a
//!   floor of 10 per second). Writes are never retried.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use platform::deadline::{encode_grpc_timeout, parse_grpc_timeout};
use prometheus::IntCounterVec;
use tonic::body::Body;
use tower::{
    Service, ServiceExt,
    retry::budget::{Budget, TpsBudget},
};

use super::discovery::{Replicas, backoff};

/// Most attempts of one idempotent read (the first and two retries).
pub const MAX_ATTEMPTS: u32 = 3;

/// Whether a method only reads (safe to send twice).
pub fn is_idempotent(method: &str) -> bool {
    ["Get", "List", "Search", "BatchGet"]
        .iter()
        .any(|p| method.starts_with(p))
}

/// The shared state of one upstream's calls.
pub struct CallPolicy {
    pub name: &'static str,
    pub replicas: Arc<Replicas>,
    budget: TpsBudget,
    retries: IntCounterVec,
}

impl CallPolicy {
    pub fn new(name: &'static str, replicas: Arc<Replicas>, retries: IntCounterVec) -> Self {
        Self {
            name,
            replicas,
            budget: TpsBudget::new(Duration::from_secs(10), 10, 0.2),
            retries,
        }
    }
}

/// See the module docs; wraps the balanced channel.
#[derive(Clone)]
pub struct Calls<S> {
    inner: S,
    policy: Arc<CallPolicy>,
}

impl<S> Calls<S> {
    pub fn new(inner: S, policy: Arc<CallPolicy>) -> Self {
        Self { inner, policy }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn status_response(status: tonic::Status) -> http::Response<Body> {
    status.into_http()
}

impl<S> Service<http::Request<Body>> for Calls<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt below, within the call's deadline.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let started = Instant::now();
            let deadline = req
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout)
                .map(|t| started + t);
            let method = platform::observe::split_grpc_path(req.uri().path()).1;
            let retryable = is_idempotent(method);
            let method = method.to_owned();
            policy.budget.deposit();
            let (parts, body) = req.into_parts();
            // A unary request is one small message: kept so it can be sent again.
            let body: Bytes = body.collect().await.map_err(BoxError::from)?.to_bytes();
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let left = match deadline {
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(l) if !l.is_zero() => Some(l),
                        _ => {
                            return Ok(status_response(tonic::Status::deadline_exceeded(
                                "Timeout expired",
                            )));
                        }
                    },
                    None => None,
                };
                let mut req = http::Request::from_parts(
                    parts.clone(),
                    Body::new(http_body_util::Full::new(body.clone())),
                );
                if let Some(l) = left
                    && let Ok(v) = encode_grpc_timeout(l).parse()
                {
                    req.headers_mut().insert("grpc-timeout", v);
                }
                let outcome = attempt_once(inner.clone(), req, &policy, left).await;
                let unavailable = match &outcome {
                    Ok(resp) => {
                        platform::metrics::grpc_status(resp.headers())
                            == Some(tonic::Code::Unavailable as i32)
                    }
                    Err(_) => true,
                };
                if !unavailable || !retryable || attempt >= MAX_ATTEMPTS {
                    return outcome;
                }
                if !policy.budget.withdraw() {
                    policy
                        .retries
                        .with_label_values(&[policy.name, &method, "budget_exhausted"])
                        .inc();
                    return outcome;
                }
                let pause = backoff(attempt);
                if let Some(l) = left
                    && pause >= l
                {
                    return outcome;
                }
                policy
                    .retries
                    .with_label_values(&[policy.name, &method, "retried"])
                    .inc();
                tracing::debug!(
                    upstream = policy.name,
                    method,
                    attempt,
                    "retrying after UNAVAILABLE"
                );
                tokio::time::sleep(pause).await;
            }
        })
    }
}

/// One attempt: waits for a ready replica and for the answer, never past `left`.
async fn attempt_once<S>(
    mut inner: S,
    req: http::Request<Body>,
    policy: &CallPolicy,
    left: Option<Duration>,
) -> Result<http::Response<Body>, BoxError>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Error: Into<BoxError>,
{
    let within = left.unwrap_or(Duration::from_secs(3600));
    if policy.replicas.ready() == 0 && !policy.replicas.wait_ready(within).await {
        return Ok(status_response(tonic::Status::unavailable(format!(
            "no ready {} replica",
            policy.name
        ))));
    }
    let call = async {
        let svc = inner.ready().await.map_err(Into::into)?;
        svc.call(req).await.map_err(Into::into)
    };
    match tokio::time::timeout(within, call).await {
        Ok(r) => r,
        Err(_) => Ok(status_response(tonic::Status::deadline_exceeded(
            "Timeout expired",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_idempotent() {
        for m in [
            "GetBook",
            "ListBooks",
            "SearchBooks",
            "BatchGetBooks",
            "ListPopularBooks",
        ] {
            assert!(is_idempotent(m), "{m}");
        }
        for m in [
            "RateBook",
            "DeleteRating",
            "CreateUser",
            "SignIn",
            "UpdateUser",
            "DeleteUser",
        ] {
            assert!(!is_idempotent(m), "{m}");
        }
    }
}
