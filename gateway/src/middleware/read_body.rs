//! Request bodies read whole, within BODY_READ_TIMEOUT_MS, before the concurrency permit is
//! taken, and one at a time per connection (the serve loop gives each request its
//! connection's [`BodyTurn`]).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Reads a request's body whole (at most `limit` bytes, and a byte more to tell a body too
/// large) within `timeout` of its head, before the layers inside it run: the concurrency
/// permit ([`crate::shed`]) is taken only by a request that has arrived. Too slow: 408. Too
/// large: the first `limit + 1` bytes are passed on and the extractors' limit answers 413 as
/// without this layer. One connection's bodies are read one at a time (HTTP/2 streams wait
/// their turn, within their own timeout), so bodies being read hold at most one
/// BODY_LIMIT_BYTES per connection, whatever the protocol.
#[derive(Clone)]
pub struct ReadBodyLayer {
    timeout: Duration,
    limit: usize,
}

impl ReadBodyLayer {
    /// Bodies of at most `limit` bytes, each read within `timeout` of its head.
    pub fn new(timeout: Duration, limit: usize) -> Self {
        Self { timeout, limit }
    }
}

/// A connection's turn to have a body read, in each of its requests' extensions.
#[derive(Clone)]
pub(crate) struct BodyTurn(Arc<Semaphore>);

impl BodyTurn {
    /// A connection's turn, for its first body.
    pub(crate) fn new() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

impl<S> tower::Layer<S> for ReadBodyLayer {
    type Service = ReadBody<S>;
    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ReadBodyLayer`].
#[derive(Clone)]
pub struct ReadBody<S> {
    inner: S,
    layer: ReadBodyLayer,
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request<Body>> for ReadBody<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ReadBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        use http_body::Body as _;
        // Most requests (GET) have no body: straight through, nothing boxed.
        if req.body().is_end_stream() {
            return ReadBodyFuture::Direct {
                inner: self.inner.call(req),
            };
        }
        // The clone waits for the body; the service made ready answers it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        ReadBodyFuture::Reading {
            answer: Box::pin(async move {
                let (parts, body) = req.into_parts();
                let expected = body
                    .size_hint()
                    .upper()
                    .map_or(layer.limit + 1, |n| n.min(layer.limit as u64 + 1) as usize);
                let turn = parts.extensions.get::<BodyTurn>().cloned();
                let http1 = parts.version < http::Version::HTTP_2;
                let read = async {
                    let _turn = match turn {
                        Some(BodyTurn(t)) => Some(t.acquire_owned().await),
                        None => None,
                    };
                    read_at_most(body, layer.limit, expected).await
                };
                match tokio::time::timeout(layer.timeout, read).await {
                    Ok(Ok(bytes)) => {
                        inner
                            .call(Request::from_parts(parts, Body::from(bytes)))
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "request body not read");
                        Ok(ApiError::bad_request("the request body could not be read")
                            .into_response())
                    }
                    Err(_) => {
                        let mut answer = ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the request body did not arrive within {} ms",
                                layer.timeout.as_millis()
                            ),
                        )
                        .into_response();
                        // The rest of the body is never read: the connection cannot be reused.
                        if http1 {
                            answer
                                .headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok(answer)
                    }
                }
            }),
        }
    }
}

/// At most `limit + 1` bytes of `body` (`capacity` expected), in one piece.
async fn read_at_most(mut body: Body, limit: usize, capacity: usize) -> Result<Bytes, axum::Error> {
    // The usual case, a body that comes in one frame, is kept as it came: no copy.
    let mut single: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers: none of the gateway's routes reads them
        };
        let held = single.as_ref().map_or(0, Bytes::len) + joined.as_ref().map_or(0, BytesMut::len);
        data.truncate(limit + 1 - held);
        if let Some(whole) = joined.as_mut() {
            whole.extend_from_slice(&data);
        } else if let Some(first) = single.take() {
            let mut whole = BytesMut::with_capacity(capacity.max(held + data.len()));
            whole.extend_from_slice(&first);
            whole.extend_from_slice(&data);
            joined = Some(whole);
        } else {
            single = Some(data);
        }
        if single.as_ref().map_or(0, Bytes::len) + joined.as_ref().map_or(0, BytesMut::len) > limit
        {
            break;
        }
    }
    Ok(joined.map_or_else(|| single.unwrap_or_default(), BytesMut::freeze))
}

pin_project_lite::pin_project! {
    /// A request without a body, passed straight on; or one whose body is being read first.
    #[project = ReadBodyProj]
    pub enum ReadBodyFuture<F> {
        Direct { #[pin] inner: F },
        Reading { answer: BoxedAnswer },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ReadBodyFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ReadBodyProj::Direct { inner } => inner.poll(cx),
            ReadBodyProj::Reading { answer } => answer.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer, ServiceExt};

    use super::*;

    /// A service that answers with the length of the body it got, or 413 past `limit` (as the
    /// extractors do), counting the requests that reached it.
    fn echo_len(
        limit: usize,
        reached: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |req: Request<Body>| {
            let reached = reached.clone();
            async move {
                reached.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = http_body_util::Limited::new(req.into_body(), limit)
                    .collect()
                    .await;
                Ok::<_, Infallible>(match body {
                    Ok(b) => b.to_bytes().len().to_string().into_response(),
                    Err(_) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                })
            }
        })
    }

    async fn text(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_body_that_trickles_past_the_timeout_is_408_and_never_reaches_the_service() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc = ReadBodyLayer::new(Duration::from_millis(200), 100)
            .layer(echo_len(100, reached.clone()));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        // Sent on, never finished: the sender is held.
        let body = Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let started = std::time::Instant::now();
        let answer = svc
            .oneshot(Request::post("/").body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        assert_eq!(answer.headers()["connection"], "close");
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_in_pieces_arrives_whole_and_one_too_large_still_meets_the_limit() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc =
            ReadBodyLayer::new(Duration::from_secs(5), 10).layer(echo_len(10, reached.clone()));
        let pieces = |parts: &'static [&'static [u8]]| {
            Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
                parts
                    .iter()
                    .map(|p| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(p)))),
            )))
        };
        let whole = svc
            .clone()
            .oneshot(
                Request::post("/")
                    .body(pieces(&[b"abc", b"def", b"ghij"]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(text(whole).await, "10");
        let large = svc
            .clone()
            .oneshot(
                Request::post("/")
                    .body(pieces(&[b"abcdef", b"ghijkl", b"mnop"]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let empty = svc
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(text(empty).await, "0");
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn one_connections_bodies_are_read_one_at_a_time() {
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc =
            ReadBodyLayer::new(Duration::from_millis(300), 10).layer(echo_len(10, reached.clone()));
        let turn = BodyTurn(Arc::new(Semaphore::new(1)));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(1);
        let mut slow = Request::post("/")
            .body(Body::new(http_body_util::StreamBody::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )))
            .unwrap();
        slow.extensions_mut().insert(turn.clone());
        let started = std::time::Instant::now();
        let slow = tokio::spawn(svc.clone().oneshot(slow));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Another stream of the same connection, its body all there: it waits for the turn.
        let mut quick = Request::post("/").body(Body::from("x")).unwrap();
        quick.extensions_mut().insert(turn);
        let quick = svc.oneshot(quick).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(text(quick).await, "1");
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(tx);
    }
}
