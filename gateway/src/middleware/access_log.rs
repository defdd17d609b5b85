//! The access log: a line per request that is logged (see [`AccessLogLayer`]).

use std::future::Future;

use crate::shed;

/// The access-log line of a request: every error and slow request, a sample of the others
/// (`ACCESS_LOG_SAMPLE`), none for a shed one (see [`shed`]); nothing at all when info lines are
/// filtered out. A tower layer rather than `from_fn`: no boxed future and no clone of the inner
/// service per request.
#[derive(Clone, Copy)]
pub struct AccessLogLayer;

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog(inner)
    }
}

#[derive(Clone)]
pub struct AccessLog<S>(S);

impl<S, B, ResB> tower::Service<http::Request<B>> for AccessLog<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        AccessLogFuture {
            started: tracing::enabled!(tracing::Level::INFO).then(std::time::Instant::now),
            inner: self.0.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        started: Option<std::time::Instant>,
    }
}

impl<F, E, ResB> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(res), Some(start)) = (&result, this.started.take())
            // A shed request's line is the shed layer's, one per interval for all of them.
            && res.extensions().get::<shed::ShedRefusal>().is_none()
        {
            let latency = start.elapsed();
            let failed = res.status().is_client_error() || res.status().is_server_error();
            if platform::telemetry::access_logged(failed, latency) {
                tracing::info!(
                    status = res.status().as_u16(),
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    "request answered"
                );
            }
        }
        std::task::Poll::Ready(result)
    }
}
