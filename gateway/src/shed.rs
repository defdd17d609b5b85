//! The gateway's load shedding: at most `limit` requests at once; beyond that a request is
//! answered 503 at once (with `Retry-After`), never queued. The layer is
//! [`platform::shed::ShedLayer`], the one the services run; the gateway gives it its refusal.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::shed::{Http, ShedLayer};

pub use platform::shed::ShedRefusal;

use crate::error::ApiError;

/// At most `limit` requests at once; each one refused counts in `shed`.
pub fn layer(limit: usize, shed: prometheus::IntCounter) -> ShedLayer<Http<axum::body::Body>> {
    ShedLayer::new(Http::new(limit, refusal), shed)
}

/// The answer to a shed request: a problem document, as every error of the gateway's.
fn refusal() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gateway is at its concurrency limit; retry with backoff",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

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
        let svc = layer(2, shed.clone()).layer(slow);
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
        let mut svc = layer(1, shed.clone()).layer(never);
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
