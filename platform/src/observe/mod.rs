//! Watching gRPC calls from start to status, written once: [`Observe`] wraps a service and tells
//! an [`Observer`] when a call starts and, exactly once, which status it ended with: from a
//! trailers-only response, from the trailers at the end of the body, from a transport error, or,
//! when the call is dropped unanswered, Canceled, or DeadlineExceeded if the caller's deadline
//! had come (gRPC's definition: the caller's timer fires a moment before ours and resets the
//! stream).
//!
//! Each concern is its own observer, in a file of its own: the span ([`RpcSpan`]), the RED
//! metrics ([`RpcMetrics`]) and the access log ([`RpcAccessLog`]).
//! They share one layer as a pair (`(outer, inner)`, nested for three): one wrapper around the
//! call and its body, one reading of the status, where a layer each did all of that three
//! times. The deadline itself is answered by [`crate::deadline::DeadlineLayer`], inside them,
//! so all of them see the same status.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

mod access_log;
mod metrics;
mod span;

pub use self::{access_log::RpcAccessLog, metrics::RpcMetrics, span::RpcSpan};
use crate::{
    deadline::Deadline,
    metrics::{Side, grpc_status},
};

/// Something told about every gRPC call passing one [`Observe`] layer.
pub trait Observer: Clone {
    /// What the observer keeps while the call runs.
    type Call;
    /// A call starts (`/package.Service/Method` split in two); the observer may add headers.
    fn start<B>(&self, service: &str, method: &str, req: &mut http::Request<B>) -> Self::Call;
    /// Runs around every poll of the call and of its response body: a span enters itself here.
    fn enter(call: &Self::Call) -> Option<tracing::span::Entered<'_>> {
        let _ = call;
        None
    }
    /// The call ended with this status code; called exactly once per started call.
    fn end(&self, call: Self::Call, code: i32);
    /// Instead of [`Observer::end`], for a call the server's concurrency limit refused
    /// ([`crate::shed::ShedRefusal`]): by default its end with RESOURCE_EXHAUSTED.
    fn shed(&self, call: Self::Call) {
        self.end(call, RESOURCE_EXHAUSTED);
    }
    /// Whether this observer wants calls at all right now (a span or a log line nobody would
    /// see): when not, the call passes through untouched.
    fn active(&self) -> bool {
        true
    }
}

/// Two observers as one: `A` outside, `B` inside, in the order of `A`'s layer wrapping `B`'s:
/// `B` starts inside `A`'s span (when `A` enters one) and ends first; each only while
/// [`Observer::active`]. Only `A` enters around the polls (the observers here: the span first).
/// One difference from two layers: `B` ends outside `A`'s span, not inside it (the access log
/// names its span itself, and the metrics have none).
impl<A: Observer, B: Observer> Observer for (A, B) {
    type Call = (Option<A::Call>, Option<B::Call>);

    fn start<R>(&self, service: &str, method: &str, req: &mut http::Request<R>) -> Self::Call {
        let a = self.0.active().then(|| self.0.start(service, method, req));
        let b = self.1.active().then(|| {
            let _entered = a.as_ref().and_then(A::enter);
            self.1.start(service, method, req)
        });
        (a, b)
    }

    fn enter(call: &Self::Call) -> Option<tracing::span::Entered<'_>> {
        call.0.as_ref().and_then(A::enter)
    }

    fn end(&self, (a, b): Self::Call, code: i32) {
        if let Some(b) = b {
            self.1.end(b, code);
        }
        if let Some(a) = a {
            self.0.end(a, code);
        }
    }

    fn shed(&self, (a, b): Self::Call) {
        if let Some(b) = b {
            self.1.shed(b);
        }
        if let Some(a) = a {
            self.0.shed(a);
        }
    }

    fn active(&self) -> bool {
        self.0.active() || self.1.active()
    }
}

const RESOURCE_EXHAUSTED: i32 = 8;

/// The layer telling `O` about every call; `side` says whether a dropped call can have expired
/// (the server reads the caller's deadline from `grpc-timeout`).
#[derive(Clone)]
pub struct Observe<O> {
    observer: O,
    side: Side,
}

impl<O> Observe<O> {
    pub fn new(observer: O, side: Side) -> Self {
        Self { observer, side }
    }
}

impl<S, O: Clone> Layer<S> for Observe<O> {
    type Service = Observed<S, O>;
    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            observer: self.observer.clone(),
            side: self.side,
        }
    }
}

/// A client's observation of its calls: a span per call (outermost, carrying the trace to the
/// callee), then the `grpc_client_*` RED metrics.
#[derive(Clone)]
pub struct ClientObservation {
    metrics: RpcMetrics,
}

impl ClientObservation {
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        Self {
            metrics: RpcMetrics::new(metrics, Side::Client),
        }
    }
}

/// A client service under [`ClientObservation`].
pub type ClientObserved<S> = Observed<S, (RpcSpan, RpcMetrics)>;

impl<S> Layer<S> for ClientObservation {
    type Service = ClientObserved<S>;
    fn layer(&self, inner: S) -> Self::Service {
        let observer = (RpcSpan(Side::Client), self.metrics.clone());
        Observe::new(observer, Side::Client).layer(inner)
    }
}

/// See [`Observe`].
#[derive(Clone)]
pub struct Observed<S, O> {
    inner: S,
    observer: O,
    side: Side,
}

/// How close to the caller's deadline a dropped call counts as expired, not cancelled.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// What tonic's client says when a call's own deadline expires before an answer arrives.
const TONIC_TIMEOUT: &str = "Timeout expired";

impl<S, O, ReqB, ResB> Service<http::Request<ReqB>> for Observed<S, O>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: std::fmt::Display,
    O: Observer,
{
    type Response = http::Response<ObservedBody<ResB, O>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqB>) -> Self::Future {
        if !self.observer.active() {
            return ObservedFuture {
                inner: self.inner.call(req),
                watch: None,
            };
        }
        let deadline = match self.side {
            Side::Server => crate::deadline::call_budget(Deadline::of(&mut req), None)
                .and_then(|b| Instant::now().checked_add(b)),
            Side::Client => None,
        };
        // A cheap clone (shared bytes), so the observer can also change the request.
        let uri = req.uri().clone();
        let (service, method) = crate::grpc_path::split_grpc_path(uri.path());
        let call = self.observer.start(service, method, &mut req);
        let inner = {
            let _entered = O::enter(&call);
            self.inner.call(req)
        };
        ObservedFuture {
            inner,
            watch: Some(Watch {
                observer: self.observer.clone(),
                call: Some(call),
                deadline,
            }),
        }
    }
}

/// One call being watched: ends exactly once, on its status or, if dropped first, as
/// Canceled or DeadlineExceeded.
pub struct Watch<O: Observer> {
    observer: O,
    call: Option<O::Call>,
    deadline: Option<Instant>,
}

impl<O: Observer> Watch<O> {
    fn end(mut self, code: i32) {
        if let Some(call) = self.call.take() {
            self.observer.end(call, code);
        }
    }

    fn shed(mut self) {
        if let Some(call) = self.call.take() {
            self.observer.shed(call);
        }
    }

    fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        self.call.as_ref().and_then(O::enter)
    }
}

impl<O: Observer> Drop for Watch<O> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            let expired = self
                .deadline
                .is_some_and(|d| Instant::now() + DEADLINE_SLACK >= d);
            self.observer.end(call, if expired { 4 } else { 1 });
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Observed`].
    pub struct ObservedFuture<F, O: Observer> {
        #[pin]
        inner: F,
        watch: Option<Watch<O>>,
    }
}

impl<F, O, ResB, E> Future for ObservedFuture<F, O>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
    E: std::fmt::Display,
    O: Observer,
{
    type Output = Result<http::Response<ObservedBody<ResB, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.watch.as_ref().and_then(Watch::enter);
            ready!(this.inner.poll(cx))
        };
        let watch = this.watch.take();
        Poll::Ready(match result {
            Ok(resp) => {
                // A trailers-only response (errors) carries the status in its headers.
                let watch = match watch.map(|w| (grpc_status(resp.headers()), w)) {
                    Some((Some(_), w))
                        if resp
                            .extensions()
                            .get::<crate::shed::ShedRefusal>()
                            .is_some() =>
                    {
                        w.shed();
                        None
                    }
                    Some((Some(code), w)) => {
                        w.end(code);
                        None
                    }
                    other => other.map(|(_, w)| w),
                };
                Ok(resp.map(|inner| ObservedBody { inner, watch }))
            }
            Err(e) => {
                if let Some(w) = watch {
                    // The caller's own deadline (DEADLINE_EXCEEDED), else a transport failure
                    // (UNAVAILABLE).
                    w.end(if e.to_string() == TONIC_TIMEOUT {
                        4
                    } else {
                        14
                    });
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends the call's watch when its trailers pass by.
    pub struct ObservedBody<B, O: Observer> {
        #[pin]
        inner: B,
        watch: Option<Watch<O>>,
    }
}

impl<B: Body, O: Observer> Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if this.watch.is_none() {
            return this.inner.poll_frame(cx);
        }
        let frame = {
            let _entered = this.watch.as_ref().and_then(Watch::enter);
            ready!(this.inner.poll_frame(cx))
        };
        let code = match &frame {
            Some(Ok(f)) => f.trailers_ref().map(|t| grpc_status(t).unwrap_or(2)),
            Some(Err(_)) => Some(14),
            // The body ended without trailers: no status was sent.
            None => Some(2),
        };
        if let Some(code) = code
            && let Some(w) = this.watch.take()
        {
            w.end(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
