//! Load shedding: at most `limit` requests at once; beyond that a request is answered 503 at once
//! (with `Retry-After`), never queued. One layer holding a semaphore permit per admitted request,
//! where tower's `GlobalConcurrencyLimit` + `LoadShed` + axum's `HandleError` cloned the inner
//! service, boxed a future and went through an error type on every request. A shed request is
//! counted and gets no access-log line of its own: one WARN line per [`SHED_LOG_EVERY`] at most
//! says how many were shed since the last, so a flood cannot flood the logs.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::telemetry::LogThrottle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// At most one shed line per this interval.
pub const SHED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks a response as a shed request's refusal (an extension), so the access log leaves it to
/// the throttled shed line.
#[derive(Debug, Clone, Copy)]
pub struct ShedRefusal;

/// See the module docs.
#[derive(Clone)]
pub struct ShedLayer {
    limit: usize,
    permits: Arc<Semaphore>,
    shed: prometheus::IntCounter,
    log: Arc<LogThrottle>,
}

impl ShedLayer {
    /// At most `limit` requests at once; each one refused counts in `shed`.
    pub fn new(limit: usize, shed: prometheus::IntCounter) -> Self {
        Self {
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            shed,
            log: Arc::new(LogThrottle::new(SHED_LOG_EVERY)),
        }
    }

    fn refused(&self) {
        self.shed.inc();
        if let Some(shed) = self.log.hit() {
            tracing::warn!(
                limit = self.limit,
                shed,
                every_secs = self.log.every().as_secs(),
                "requests shed at the concurrency limit (count since the last such line)"
            );
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    layer: ShedLayer,
}

impl<S, R> tower::Service<R> for Shed<S>
where
    S: tower::Service<R, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ShedFuture<S::Future>;

    // Readiness is the inner service's (axum's routes are always ready); the limit is applied
    // in `call`, so a request beyond it is answered, not held back.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        match self.layer.permits.clone().try_acquire_owned() {
            Ok(permit) => ShedFuture {
                inner: Some(self.inner.call(req)),
                permit: Some(permit),
            },
            Err(_) => {
                self.layer.refused();
                ShedFuture {
                    inner: None,
                    permit: None,
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer (the permit held until it is ready), or the refusal.
    pub struct ShedFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ShedFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let mut refusal = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is at its concurrency limit; retry with backoff",
            )
            .into_response();
            refusal.extensions_mut().insert(ShedRefusal);
            return Poll::Ready(Ok(refusal));
        };
        let answer = ready!(inner.poll(cx));
        this.permit.take();
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[tokio::test]
    async fn beyond_the_limit_a_request_is_refused_at_once_and_counted() {
        let (release, released) = tokio::sync::watch::channel(false);
        let slow = tower::service_fn(move |_: ()| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok::<_, Infallible>(StatusCode::OK.into_response())
            }
        });
        let shed = prometheus::IntCounter::new("shed_total", "shed").unwrap();
        let svc = ShedLayer::new(2, shed.clone()).layer(slow);
        // A permit is taken when a request is admitted and held until its answer is ready.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = svc.clone();
            held.push(s.ready().await.unwrap().call(()));
        }
        let mut refused = svc.clone();
        // Refused at once: a queued request would wait for the slow ones and time out here.
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            refused.ready().await.unwrap().call(()),
        )
        .await
        .expect("refused at once, not queued")
        .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
        assert!(
            answer.extensions().get::<ShedRefusal>().is_some(),
            "marked, for the access log"
        );
        assert_eq!(shed.get(), 1);
        release.send_replace(true);
        for h in held {
            assert_eq!(h.await.unwrap().status(), StatusCode::OK);
        }
        // The permits came back.
        let again = svc.clone().oneshot(()).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(shed.get(), 1);
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_answer_gives_its_permit_back() {
        let never =
            tower::service_fn(|_: ()| std::future::pending::<Result<Response, Infallible>>());
        let shed = prometheus::IntCounter::new("shed_total", "shed").unwrap();
        let mut svc = ShedLayer::new(1, shed.clone()).layer(never);
        let admitted = svc.ready().await.unwrap().call(());
        let refused = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The client went away: its permit is free for the next request.
        drop(admitted);
        let next = svc.ready().await.unwrap().call(());
        assert_eq!(shed.get(), 1, "admitted, not shed");
        drop(next);
    }
}
