//! Load shedding for HTTP and gRPC, one layer: a request beyond its pool's limit is refused at
//! once instead of queued behind the others. What differs by protocol (which pool a request
//! draws from, how long it holds its permit, the refusal, the log line) is a [`Protocol`]:
//! [`Grpc`] (RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`) and [`Http`] (the 503 problem
//! document its server gives it).
//!
//! A shed request is counted and gets no access-log line of its own: each pool writes one WARN
//! line per [`SHED_LOG_EVERY`] at most, saying how many it shed since the last, so a flood
//! cannot flood the logs.

mod grpc;
mod http;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use prometheus::IntCounter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

pub use self::{
    grpc::{Grpc, HEALTH_WATCHES, PermitBody, SHED_PUSHBACK_MS},
    http::Http,
};
use crate::telemetry::LogThrottle;

/// At most one shed line per pool per this interval.
pub const SHED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks the refusal of a shed request (a response extension), so the access log leaves it to
/// the throttled shed line.
#[derive(Debug, Clone, Copy)]
pub struct ShedRefusal;

/// One pool of permits, and its throttled shed log.
#[derive(Clone)]
pub struct Pool {
    /// The pool's name in its log line.
    pub name: &'static str,
    /// Requests admitted at once.
    pub limit: usize,
    permits: Arc<Semaphore>,
    log: Arc<LogThrottle>,
}

impl Pool {
    pub fn new(name: &'static str, limit: usize) -> Self {
        Self {
            name,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            log: Arc::new(LogThrottle::new(SHED_LOG_EVERY)),
        }
    }

    /// The interval of the pool's shed line.
    pub fn log_every(&self) -> std::time::Duration {
        self.log.every()
    }
}

/// What a [`ShedLayer`] does differently per protocol, for requests `Req` whose inner service
/// answers `::http::Response<B>`.
pub trait Protocol<Req, B>: Clone {
    /// What the layer answers.
    type Response;
    /// The pool `req` draws a permit from.
    fn pool(&self, req: &Req) -> &Pool;
    /// An admitted request's answer; `permit` is held as long as the protocol counts it busy.
    fn admitted(resp: ::http::Response<B>, permit: OwnedSemaphorePermit) -> Self::Response;
    /// The answer to a request refused from `pool`, marked with [`ShedRefusal`].
    fn refusal(&self, pool: &Pool) -> Self::Response;
    /// The throttled WARN line: `shed` requests refused from `pool` since the last.
    fn log_shed(&self, pool: &Pool, shed: u64);
}

/// See the module docs.
#[derive(Clone)]
pub struct ShedLayer<P> {
    protocol: P,
    shed: IntCounter,
}

impl<P> ShedLayer<P> {
    /// Sheds by `protocol`'s pools; each request refused counts in `shed`.
    pub fn new(protocol: P, shed: IntCounter) -> Self {
        Self { protocol, shed }
    }
}

impl<S, P: Clone> Layer<S> for ShedLayer<P> {
    type Service = ShedService<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        ShedService {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone)]
pub struct ShedService<S, P> {
    inner: S,
    layer: ShedLayer<P>,
}

impl<S, P, Req, B> Service<Req> for ShedService<S, P>
where
    S: Service<Req, Response = ::http::Response<B>>,
    P: Protocol<Req, B>,
{
    type Response = P::Response;
    type Error = S::Error;
    type Future = ShedFuture<S::Future, B, P::Response>;

    // Readiness is the inner service's; the limit is applied in `call`, so a request beyond it
    // is answered, not held back.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let protocol = &self.layer.protocol;
        let pool = protocol.pool(&req);
        match pool.permits.clone().try_acquire_owned() {
            Ok(permit) => ShedFuture::Admitted {
                inner: self.inner.call(req),
                permit: Some(permit),
                admitted: P::admitted,
            },
            Err(_) => {
                self.layer.shed.inc();
                if let Some(shed) = pool.log.hit() {
                    protocol.log_shed(pool, shed);
                }
                ShedFuture::Shed {
                    refusal: Some(protocol.refusal(pool)),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`ShedService`]: an admitted call holding its permit, or the refusal.
    #[project = ShedProjection]
    pub enum ShedFuture<F, B, R> {
        Admitted {
            #[pin]
            inner: F,
            permit: Option<OwnedSemaphorePermit>,
            admitted: fn(::http::Response<B>, OwnedSemaphorePermit) -> R,
        },
        Shed {
            refusal: Option<R>,
        },
    }
}

impl<F, B, R, E> Future for ShedFuture<F, B, R>
where
    F: Future<Output = Result<::http::Response<B>, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedProjection::Admitted {
                inner,
                permit,
                admitted,
            } => {
                let resp = std::task::ready!(inner.poll(cx))?;
                let permit = permit.take().expect("ShedFuture polled after completion");
                Poll::Ready(Ok(admitted(resp, permit)))
            }
            ShedProjection::Shed { refusal } => Poll::Ready(Ok(refusal
                .take()
                .expect("ShedFuture polled after completion"))),
        }
    }
}
