//! Every call to an upstream goes through here, inside the client metrics layer (so a retried
//! call is still one call in `grpc_client_handled_total`, with its retries counted apart):
//!
//! - it never waits past its deadline, even for a replica: with none ready it fails UNAVAILABLE
//!   at once (after discovery's first round), and a call stuck in the balancer's queue is
//!   answered DEADLINE_EXCEEDED when its `grpc-timeout` runs out;
//! - idempotent reads (`Get*`, `List*`, `Search*`, `BatchGet*`) that fail UNAVAILABLE are tried
//!   again, at most twice, after a jittered backoff, with the time left sent on, and only while
//!   the retry budget allows (gRFC A6 / Linkerd style: retries at most 20% of calls, plus a
//!   floor of 10 per second). Writes are never retried, so they pass through as the caller
//!   made them; a read's one message is kept (no copy) for a retry, with its request line and
//!   headers.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use platform::deadline::{Deadline, client::restate};
use prometheus::IntCounterVec;
use tonic::body::Body;
use tower::{Service, ServiceExt};

mod budget;

pub use self::budget::RetryBudget;
use super::discovery::{BACKOFF, Replicas};

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
    budget: RetryBudget,
    retries: IntCounterVec,
}

impl CallPolicy {
    pub fn new(name: &'static str, replicas: Arc<Replicas>, retries: IntCounterVec) -> Self {
        Self {
            name,
            replicas,
            budget: RetryBudget::new(0.2, 10),
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

/// How long after the caller set `grpc-timeout` an attempt restates it with what is left.
const RESTATE_AFTER: Duration = Duration::from_millis(1);

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

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let mut inner = self.inner.clone();
        let policy = self.policy.clone();
        // The client put the call's deadline in the extensions when it stated it.
        let deadline = Deadline::of(&mut req);
        Box::pin(async move {
            policy.budget.deposit();
            if !is_idempotent(platform::grpc_path::split_grpc_path(req.uri().path()).1) {
                // A write is sent once, as the caller made it: nothing is kept.
                return match time_left(deadline) {
                    Ok(left) => attempt_once(&mut inner, req, &policy, left).await,
                    Err(expired) => Ok(expired.response()),
                };
            }
            let (parts, body) = req.into_parts();
            // A unary request is one small message: kept so it can be sent again.
            let body = whole_body(body).await?;
            // What a retry sends again: the request line and the headers. The extensions stay
            // with the first attempt; only the layers outside this one read them.
            let (method, version, uri, headers) = (
                parts.method.clone(),
                parts.version,
                parts.uri.clone(),
                parts.headers.clone(),
            );
            let rpc = || platform::grpc_path::split_grpc_path(uri.path()).1;
            let mut first = Some(parts);
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let left = match time_left(deadline) {
                    Ok(left) => left,
                    Err(expired) => return Ok(expired.response()),
                };
                let body = Body::new(http_body_util::Full::new(body.clone()));
                let mut req = match first.take() {
                    Some(parts) => http::Request::from_parts(parts, body),
                    None => {
                        let mut req = http::Request::new(body);
                        *req.method_mut() = method.clone();
                        *req.version_mut() = version;
                        *req.uri_mut() = uri.clone();
                        *req.headers_mut() = headers.clone();
                        req
                    }
                };
                // The header tells the server what is left; rewritten once time has gone by
                // (a retry after its backoff), not for the microseconds before a first send.
                if let Some((l, d)) = left.zip(deadline)
                    && d.started().elapsed() >= RESTATE_AFTER
                {
                    restate(req.headers_mut(), l);
                }
                // The same handle for every attempt: a clone of the channel allocates.
                let outcome = attempt_once(&mut inner, req, &policy, left).await;
                let unavailable = match &outcome {
                    Ok(resp) => {
                        platform::metrics::grpc_status(resp.headers())
                            == Some(tonic::Code::Unavailable as i32)
                    }
                    Err(_) => true,
                };
                if !unavailable || attempt >= MAX_ATTEMPTS {
                    return outcome;
                }
                if !policy.budget.withdraw() {
                    policy
                        .retries
                        .with_label_values(&[policy.name, rpc(), "budget_exhausted"])
                        .inc();
                    return outcome;
                }
                let pause = BACKOFF.jittered(attempt);
                if let Some(l) = left
                    && pause >= l
                {
                    return outcome;
                }
                policy
                    .retries
                    .with_label_values(&[policy.name, rpc(), "retried"])
                    .inc();
                tracing::debug!(
                    upstream = policy.name,
                    method = rpc(),
                    attempt,
                    "retrying after UNAVAILABLE"
                );
                tokio::time::sleep(pause).await;
            }
        })
    }
}

/// The time left before `deadline` (`None`: no deadline), or [`Expired`] when none is.
fn time_left(deadline: Option<Deadline>) -> Result<Option<Duration>, Expired> {
    match deadline.map(|d| d.left()) {
        None => Ok(None),
        Some(l) if !l.is_zero() => Ok(Some(l)),
        Some(_) => Err(Expired),
    }
}

/// A call's deadline has passed before an attempt.
struct Expired;

impl Expired {
    /// The answer: DEADLINE_EXCEEDED, as tonic words its own.
    fn response(self) -> http::Response<Body> {
        status_response(tonic::Status::deadline_exceeded("Timeout expired"))
    }
}

/// The whole of a request body: a unary call's one message is one frame, kept as it is (no
/// copy); more frames are joined.
async fn whole_body(mut body: Body) -> Result<Bytes, BoxError> {
    let mut whole = Bytes::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BoxError::from)?.into_data() else {
            continue;
        };
        whole = if whole.is_empty() {
            data
        } else {
            [whole, data].concat().into()
        };
    }
    Ok(whole)
}

/// One attempt: waits for a ready replica and for the answer, never past `left`.
async fn attempt_once<S>(
    inner: &mut S,
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
        Err(_) => Ok(Expired.response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::deadline::parse_grpc_timeout;

    use std::convert::Infallible;

    /// Each request's body and `x-probe` header, as an upstream received them.
    type Seen = Arc<std::sync::Mutex<Vec<(Bytes, String)>>>;

    fn calls_to<S>(upstream: S) -> Calls<S> {
        let retries = IntCounterVec::new(
            prometheus::Opts::new("retries_total", "retries"),
            &["upstream", "method", "outcome"],
        )
        .unwrap();
        let policy = CallPolicy::new("marketplace", Arc::new(Replicas::with_ready(1)), retries);
        Calls::new(upstream, Arc::new(policy))
    }

    #[tokio::test]
    async fn a_first_attempt_sends_the_callers_timeout_and_a_retry_what_is_left() {
        let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let upstream = tower::service_fn({
            let sent = sent.clone();
            move |req: http::Request<Body>| {
                let sent = sent.clone();
                async move {
                    let timeout = req.headers()["grpc-timeout"].to_str().unwrap().to_owned();
                    let mut sent = sent.lock().unwrap();
                    sent.push(timeout);
                    let status = if sent.len() == 1 {
                        tonic::Status::unavailable("restarting")
                    } else {
                        tonic::Status::ok("")
                    };
                    Ok::<_, Infallible>(status.into_http())
                }
            }
        });
        let mut calls = calls_to(upstream);
        let req = http::Request::builder()
            .uri("http://marketplace/bookstore.marketplace.v1.MarketplaceService/GetBook")
            .header("grpc-timeout", "5S")
            .body(Body::empty())
            .unwrap();
        let answer = calls.call(req).await.unwrap();
        assert_eq!(platform::metrics::grpc_status(answer.headers()), Some(0));
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2, "{sent:?}");
        // Sent as the caller set it ("5S"), or restated if this test was held up for over
        // RESTATE_AFTER before sending.
        let first = parse_grpc_timeout(&sent[0]).unwrap();
        assert!(first > Duration::from_millis(4990), "{first:?}");
        // The retry came after a backoff of at least 20 ms.
        let left = parse_grpc_timeout(&sent[1]).unwrap();
        assert!(left <= Duration::from_millis(4980), "{left:?}");
        assert!(left > Duration::from_secs(3), "{left:?}");
    }

    fn request(method: &str) -> http::Request<Body> {
        http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "http://marketplace/bookstore.marketplace.v1.MarketplaceService/{method}"
            ))
            .header("grpc-timeout", "5S")
            .header("x-probe", method)
            .body(Body::new(http_body_util::Full::new(Bytes::from_static(
                b"\0\0\0\0\x02\x08\x07",
            ))))
            .unwrap()
    }

    #[tokio::test]
    async fn a_read_is_sent_again_whole_and_a_write_only_once() {
        // An upstream answering UNAVAILABLE to every call.
        let seen = Seen::default();
        let upstream = tower::service_fn({
            let seen = seen.clone();
            move |req: http::Request<Body>| {
                let seen = seen.clone();
                async move {
                    let probe = req.headers()["x-probe"].to_str().unwrap().to_owned();
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    seen.lock().unwrap().push((body, probe));
                    Ok::<_, Infallible>(tonic::Status::unavailable("restarting").into_http())
                }
            }
        });
        let mut calls = calls_to(upstream);
        let answer = calls.call(request("GetBook")).await.unwrap();
        assert_eq!(
            platform::metrics::grpc_status(answer.headers()),
            Some(tonic::Code::Unavailable as i32)
        );
        let attempts = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(attempts.len(), MAX_ATTEMPTS as usize, "{attempts:?}");
        for (body, probe) in &attempts {
            assert_eq!(&body[..], b"\0\0\0\0\x02\x08\x07");
            assert_eq!(probe, "GetBook");
        }
        calls.call(request("RateBook")).await.unwrap();
        let attempts = seen.lock().unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(&attempts[0].0[..], b"\0\0\0\0\x02\x08\x07");
    }

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
