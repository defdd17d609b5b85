//! The server half: deadlines answered as gRPC defines them: a call still running when the
//! caller's `grpc-timeout` or the server's own request timeout expires is answered
//! DEADLINE_EXCEEDED by this layer, inside the metrics/tracing layer, so the status on the wire,
//! in `grpc_server_handled_total`, on the span and in the access log is the same.
//!
//! tonic's own timeout (`Server::timeout`) sits outside every user layer and answers CANCELLED;
//! the server therefore does not configure it. tonic still honours `grpc-timeout` outside, but its
//! deadline is fixed after this layer's (whose timer is made only for a call that does not answer
//! at once), for the same duration, so this layer always answers first.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Sleep;
use tower::{Layer, Service};

use super::Deadline;

/// The time a call may take: the shorter of the caller's deadline and the server's limit.
pub fn call_budget(caller: Option<Deadline>, server_limit: Option<Duration>) -> Option<Duration> {
    let caller = caller
        .map(|d| d.budget())
        // Answer a little before the caller's own timer fires (it started before the request
        // left), so the caller reads DEADLINE_EXCEEDED from the wire rather than giving up.
        .map(|t| t.saturating_sub((t / 20).min(Duration::from_millis(5))));
    match (caller, server_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Answers DEADLINE_EXCEEDED when a call outlives its budget (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    server_limit: Option<Duration>,
}

impl DeadlineLayer {
    /// `server_limit`: the longest any call may take whatever the caller asks (None: no limit).
    pub fn new(server_limit: Option<Duration>) -> Self {
        Self { server_limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            server_limit: self.server_limit,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    server_limit: Option<Duration>,
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for DeadlineService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    ResB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqB>) -> Self::Future {
        let budget = call_budget(Deadline::of(&mut req), self.server_limit);
        // The deadline is fixed before the inner call starts (see the module docs); its timer is
        // only made if the call does not answer at once.
        let deadline = budget.and_then(|b| tokio::time::Instant::now().checked_add(b));
        DeadlineFuture {
            inner: self.inner.call(req),
            deadline,
            sleep: None,
            budget,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`DeadlineService`].
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        deadline: Option<tokio::time::Instant>,
        sleep: Option<Pin<Box<Sleep>>>,
        budget: Option<Duration>,
    }
}

impl<F, ResB: Default, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            let ms = this.budget.unwrap_or_default().as_millis();
            return Poll::Ready(Ok(tonic::Status::deadline_exceeded(format!(
                "deadline exceeded: no answer within {ms} ms"
            ))
            .into_http()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_shorter_of_caller_and_server() {
        let mut h = http::HeaderMap::new();
        let caller = |h: &http::HeaderMap| Deadline::from_headers(h);
        assert_eq!(call_budget(caller(&h), None), None);
        assert_eq!(
            call_budget(caller(&h), Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
        h.insert("grpc-timeout", http::HeaderValue::from_static("100m"));
        assert_eq!(
            call_budget(caller(&h), Some(Duration::from_secs(5))),
            Some(Duration::from_millis(95)),
            "answered 5 ms before the caller's timer"
        );
        assert_eq!(
            call_budget(caller(&h), Some(Duration::from_millis(50))),
            Some(Duration::from_millis(50))
        );
    }
}
