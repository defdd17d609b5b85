//! HTTP RED metrics for axum routers, labelled by route template (`/books/{id}`), never by raw
//! path, so a crawler cannot explode the series count.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::extract::MatchedPath;
use http::{Request, Response};
use prometheus::{HistogramVec, IntCounterVec, IntGauge};

use crate::metrics::Metrics;

/// `http_requests_total`, `http_request_duration_seconds` and `http_requests_in_flight`.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter_vec(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status.",
                &["method", "route", "status"],
            ),
            duration: metrics.histogram_vec(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (to the response head), by method and route.",
                &["method", "route"],
            ),
            in_flight: metrics.gauge("http_requests_in_flight", "HTTP requests in progress."),
        }
    }
}

/// The route template of a request, or `unmatched` for paths no route knows.
pub fn route_of<B>(req: &Request<B>) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned())
}

/// One request being tracked: counted once, on its answer or, when the client goes away first
/// (the handler future is dropped), as status 499 (client closed request).
struct Tracked {
    m: HttpMetrics,
    /// Shared, not copied: labels are borrowed from the request's own values.
    route: Option<MatchedPath>,
    method: http::Method,
    start: Instant,
    status: Option<http::StatusCode>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.m.in_flight.dec();
        let status = self.status.as_ref().map_or("499", http::StatusCode::as_str);
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let method = self.method.as_str();
        self.m
            .requests
            .with_label_values(&[method, route, status])
            .inc();
        self.m
            .duration
            .with_label_values(&[method, route])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// The layer recording every request (a tower layer rather than `from_fn`: no boxed future and
/// no clone of the inner service per request).
#[derive(Clone)]
pub struct TrackLayer(HttpMetrics);

impl TrackLayer {
    pub fn new(metrics: HttpMetrics) -> Self {
        Self(metrics)
    }
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;
    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            m: self.0.clone(),
        }
    }
}

/// See [`TrackLayer`].
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    m: HttpMetrics,
}

impl<S, B, ResB> tower::Service<Request<B>> for Track<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.m.in_flight.inc();
        let tracked = Tracked {
            route: req.extensions().get::<MatchedPath>().cloned(),
            method: req.method().clone(),
            m: self.m.clone(),
            start: Instant::now(),
            // Until an answer comes: 499, client closed request.
            status: None,
        };
        TrackFuture {
            inner: self.inner.call(req),
            tracked: Some(tracked),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Track`].
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        tracked: Option<Tracked>,
    }
}

impl<F, E, ResB> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(mut tracked)) = (&result, this.tracked.take()) {
            tracked.status = Some(response.status());
        }
        Poll::Ready(result)
    }
}
