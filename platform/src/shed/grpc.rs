//! Shedding gRPC calls: a call holds its permit until its response body ends, so a slow download
//! or an open stream still counts. Streaming methods draw from a pool of their own, so long-lived
//! streams cannot starve unary calls (nor the reverse), and health watches (the gateways'
//! balancers) from a third, so no number of live feeds can keep a gateway from learning that a
//! replica is up. A refused call is answered RESOURCE_EXHAUSTED with a pushback (gRFC A6).

use std::{
    collections::HashSet,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::OwnedSemaphorePermit;

use super::{Pool, Protocol, ShedRefusal};

/// How long a shed caller is asked to wait before trying again (gRFC A6 server pushback).
pub const SHED_PUSHBACK_MS: u64 = 100;

/// `grpc.health.v1.Health/Watch` streams held at once, apart from the stream limit: one per
/// gateway replica (and per health-checking client), so a few hundred is ample.
pub const HEALTH_WATCHES: usize = 256;
const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";

/// The gRPC server's pools: unary calls, streams (the methods in `streaming`) and health watches.
#[derive(Clone)]
pub struct Grpc {
    calls: Pool,
    streams: Pool,
    health_watches: Pool,
    streaming: Arc<HashSet<String>>,
}

impl Grpc {
    pub fn new(call_limit: usize, stream_limit: usize, streaming: Arc<HashSet<String>>) -> Self {
        Self {
            calls: Pool::new("calls", call_limit.max(1)),
            streams: Pool::new("streams", stream_limit.max(1)),
            health_watches: Pool::new("health_watches", HEALTH_WATCHES),
            streaming,
        }
    }
}

impl<ReqB, ResB: Default> Protocol<http::Request<ReqB>, ResB> for Grpc {
    type Response = http::Response<PermitBody<ResB>>;

    fn pool(&self, req: &http::Request<ReqB>) -> &Pool {
        let path = req.uri().path();
        if path == HEALTH_WATCH {
            &self.health_watches
        } else if self.streaming.contains(path) {
            &self.streams
        } else {
            &self.calls
        }
    }

    fn admitted(resp: http::Response<ResB>, permit: OwnedSemaphorePermit) -> Self::Response {
        resp.map(|inner| PermitBody {
            inner,
            permit: Some(permit),
        })
    }

    fn refusal(&self, _: &Pool) -> Self::Response {
        let mut resp: http::Response<ResB> = tonic::Status::resource_exhausted(
            "the server is at its concurrency limit; retry with backoff",
        )
        .into_http();
        resp.headers_mut().insert(
            "grpc-retry-pushback-ms",
            http::HeaderValue::from(SHED_PUSHBACK_MS),
        );
        resp.extensions_mut().insert(ShedRefusal);
        resp.map(|inner| PermitBody {
            inner,
            permit: None,
        })
    }

    fn log_shed(&self, pool: &Pool, shed: u64) {
        tracing::warn!(
            pool = pool.name,
            limit = pool.limit,
            shed,
            every_secs = pool.log_every().as_secs(),
            "gRPC calls shed at the concurrency limit (count since the last such line)"
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body that gives its concurrency permit back when it ends (or is dropped).
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B: Default> Default for PermitBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            permit: None,
        }
    }
}

impl<B: http_body::Body> http_body::Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        let ended = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(f)) => f.is_trailers(),
        };
        if ended {
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::shed::ShedLayer;

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_call_beyond_its_pool_is_refused_with_a_pushback_until_a_body_ends() {
        let answer = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(
                http_body_util::Full::<bytes::Bytes>::default(),
            ))
        });
        let streaming = Arc::new(HashSet::from(["/pkg.Svc/Watch".to_owned()]));
        let shed = prometheus::IntCounter::new("shed_total", "shed").unwrap();
        let svc = ShedLayer::new(Grpc::new(1, 1, streaming), shed.clone()).layer(answer);

        // The first call's body has not ended: it still holds the one unary permit.
        let first = svc.clone().oneshot(request("/pkg.Svc/Get")).await.unwrap();
        let refused = svc.clone().oneshot(request("/pkg.Svc/Get")).await.unwrap();
        assert_eq!(crate::metrics::grpc_status(refused.headers()), Some(8));
        assert_eq!(refused.headers()["grpc-retry-pushback-ms"], "100");
        assert!(refused.extensions().get::<ShedRefusal>().is_some());
        assert_eq!(shed.get(), 1);

        // Streams and health watches draw from pools of their own.
        for path in ["/pkg.Svc/Watch", HEALTH_WATCH] {
            let admitted = svc.clone().oneshot(request(path)).await.unwrap();
            assert_eq!(
                crate::metrics::grpc_status(admitted.headers()),
                None,
                "{path}"
            );
        }

        // Its body gone, the first call's permit is free again.
        drop(first);
        let again = svc.clone().oneshot(request("/pkg.Svc/Get")).await.unwrap();
        assert_eq!(crate::metrics::grpc_status(again.headers()), None);
        assert_eq!(shed.get(), 1);
    }
}
