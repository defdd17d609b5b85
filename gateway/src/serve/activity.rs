//! What a connection is doing, as its idle and send timeouts see it: requests in flight (counted
//! until their answer's body is sent or dropped) and writes waiting for the client to read.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request, response::Response};
use bytes::Bytes;
use hyper::body::Incoming;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

use crate::middleware::BodyTurn;

/// What the idle timer of a connection needs to know.
pub(super) struct Activity {
    pub(super) in_flight: usize,
    /// When the last request in flight ended, or the last wait to send (or the accept).
    pub(super) idle_since: Instant,
    /// Whether any request has started.
    pub(super) served: bool,
    /// Whether a write waits for the client to take what was sent.
    pub(super) sending: bool,
}

impl Activity {
    pub(super) fn new() -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            in_flight: 0,
            idle_since: Instant::now(),
            served: false,
            sending: false,
        }))
    }
}

/// The router, for one connection: each request is given the peer's address (the sign-in
/// budget's key) and the connection's [`BodyTurn`], and is counted in flight until its
/// answer's body is sent or dropped.
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: Router,
    pub(super) peer: SocketAddr,
    pub(super) activity: Arc<Mutex<Activity>>,
    pub(super) body_turn: BodyTurn,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = http::Response<InFlightBody>;
    type Error = Infallible;
    type Future = InFlightFuture<axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.body_turn.clone());
        {
            let mut a = self.activity.lock().unwrap();
            a.in_flight += 1;
            a.served = true;
        }
        let guard = InFlight(self.activity.clone());
        // A router is always ready (axum documents it), so no `poll_ready` first.
        let future = tower::Service::call(&mut self.app.clone(), req);
        InFlightFuture {
            inner: future,
            guard: Some(guard),
        }
    }
}

/// One request in flight on a connection; dropped with its answer's body (or the answer never
/// given).
pub(super) struct InFlight(Arc<Mutex<Activity>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap();
        a.in_flight -= 1;
        a.idle_since = Instant::now();
    }
}

pin_project_lite::pin_project! {
    /// The router's answer, its body carrying the request's [`InFlight`].
    pub(super) struct InFlightFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F> Future for InFlightFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<http::Response<InFlightBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| InFlightBody {
            inner,
            _guard: guard,
        })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request in flight until it is sent.
    pub(super) struct InFlightBody {
        #[pin]
        inner: Body,
        _guard: Option<InFlight>,
    }
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A socket whose writes fail with `TimedOut` once they have waited `limit` for room: the
    /// client has stopped reading (or reads a byte now and then), and the answer would be held
    /// for as long as it pleases. While a write waits the connection is not idle: an answer
    /// can be all in hyper's buffer, its request over, and still be on its way.
    pub(super) struct SendTimeout<T> {
        #[pin]
        io: T,
        limit: Duration,
        // Allocated on the first wait only; `waiting` says whether it runs.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        waiting: bool,
        activity: Arc<Mutex<Activity>>,
    }
}

impl<T> SendTimeout<T> {
    pub(super) fn new(io: T, limit: Duration, activity: Arc<Mutex<Activity>>) -> Self {
        Self {
            io,
            limit,
            timer: None,
            waiting: false,
            activity,
        }
    }
}

impl<T: AsyncWrite> SendTimeout<T> {
    fn track<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        let this = self.project();
        let result = op(this.io, cx);
        // Both changes are rare: only a full socket starts a wait.
        match (&result, *this.waiting) {
            (Poll::Pending, false) => {
                let deadline = Instant::now() + *this.limit;
                match this.timer {
                    Some(t) => t.as_mut().reset(deadline),
                    None => *this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                *this.waiting = true;
                this.activity.lock().unwrap().sending = true;
            }
            (Poll::Ready(_), true) => {
                *this.waiting = false;
                let mut a = this.activity.lock().unwrap();
                a.sending = false;
                a.idle_since = Instant::now();
            }
            _ => {}
        }
        if result.is_pending()
            && let Some(timer) = this.timer
        {
            ready!(timer.as_mut().poll(cx));
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took none of the answer in time",
            )));
        }
        result
    }
}

impl<T: AsyncRead> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.track(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.track(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.track(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_the_client_stops_reading_fails_its_writes_after_the_send_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = SendTimeout::new(server, Duration::from_millis(200), Activity::new());
        let started = std::time::Instant::now();
        let err = tokio::io::AsyncWriteExt::write_all(&mut server, &[0u8; 4096])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(client);
    }

    #[tokio::test]
    async fn a_client_that_keeps_reading_is_never_timed_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = SendTimeout::new(server, Duration::from_millis(100), Activity::new());
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            // Slower than the timeout in all, but never stalled for the timeout's length.
            while got < 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                got += tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                    .await
                    .unwrap();
            }
        });
        tokio::io::AsyncWriteExt::write_all(&mut server, &[0u8; 1024])
            .await
            .unwrap();
        reader.await.unwrap();
    }
}
