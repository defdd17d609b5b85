//! One call forwarded: the public method found, the gateway's budgets and caps applied, the
//! caller's deadline and token sent on, the service's answer passed back byte for byte.

use std::{
    net::IpAddr,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::BodyExt;
use platform::{
    deadline::{Deadline, client::restate},
    metrics::grpc_status,
};
use prost::Message;
use protos::users::v1::{SignInRequest, UpdateUserRequest};
use tonic::{Code, Status, body::Body};
use tower::ServiceExt;

use super::methods::{Guard, public_at};
use crate::{AppState, client_addr, feeds::FeedSlot, upstream::Bearer, upstream::Upstream};

/// What a forwarded call needs.
pub(super) struct Forward {
    pub(super) state: AppState,
    pub(super) upstreams: [Upstream; 3],
}

impl Forward {
    pub(super) async fn call(
        &self,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<Body>, Status> {
        let caller = Deadline::of(&mut req);
        let path = req.uri().path();
        let method = public_at(path).ok_or_else(|| {
            Status::unimplemented(format!("{path} is not offered through the gateway"))
        })?;
        let client = self.client(&req);
        let (parts, body) = req.into_parts();
        let deadline = self.deadline(caller, method.guard);
        let headers = self.upstream_headers(&parts.headers, deadline)?;
        let slot = match method.guard {
            Guard::Feed => Some(
                self.state
                    .feeds
                    .admit(client)
                    .map_err(|r| refused_status(crate::error::ApiError::from(r)))?,
            ),
            _ => None,
        };
        let (body, attempt) = match method.guard {
            Guard::SignUp | Guard::SignIn | Guard::PasswordCheck => {
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| Status::invalid_argument(format!("reading the request: {e}")))?
                    .to_bytes();
                let account = account_of(method.guard, &bytes)?;
                let attempt = self
                    .state
                    .auth_attempt(client, account.as_deref())
                    .map_err(refused_status)?;
                (Body::new(http_body_util::Full::new(bytes)), Some(attempt))
            }
            _ => (body, None),
        };
        let mut upstream_req = http::Request::new(body);
        *upstream_req.method_mut() = Method::POST;
        *upstream_req.uri_mut() = parts.uri;
        *upstream_req.version_mut() = http::Version::HTTP_2;
        *upstream_req.headers_mut() = headers;
        if let Some(d) = deadline {
            upstream_req.extensions_mut().insert(d);
        }
        let channel = self.upstreams[method.upstream as usize].clone();
        let response = channel
            .oneshot(upstream_req)
            .await
            .map_err(|e| Status::unavailable(format!("the service is unavailable: {e}")))?;
        if let Some(attempt) = attempt {
            let wrong = match method.guard {
                Guard::PasswordCheck => Code::PermissionDenied,
                _ => Code::Unauthenticated,
            };
            if grpc_status(response.headers()) == Some(wrong as i32) {
                attempt.failed();
            }
        }
        Ok(match slot {
            Some(slot) => response.map(|body| Body::new(Holding { body, _slot: slot })),
            None => response.map(Body::new),
        })
    }

    /// The call's deadline by its guard: the caller's (`grpc-timeout`, read once per call), and
    /// for anything but a feed, which lasts as long as its caller wants, never beyond the
    /// gateway's request budget.
    fn deadline(&self, caller: Option<Deadline>, guard: Guard) -> Option<Deadline> {
        let budget = Deadline::after(self.state.request_timeout);
        match (guard, caller) {
            (Guard::Feed, caller) => caller,
            (_, Some(caller)) if caller.left() < budget.left() => Some(caller),
            _ => Some(budget),
        }
    }

    /// The client's address, as the REST API's budgets take it.
    fn client(&self, req: &http::Request<Body>) -> IpAddr {
        client_addr::of_request(
            req.headers(),
            req.extensions(),
            self.state.trust_forwarded_for,
        )
    }

    /// What the service is sent: the gRPC headers, the time left and the caller's token; nothing
    /// else of the browser's request (cookies stay at the gateway).
    fn upstream_headers(
        &self,
        from: &HeaderMap,
        deadline: Option<Deadline>,
    ) -> Result<HeaderMap, Status> {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if let Some(d) = deadline {
            restate(&mut headers, d.left());
        }
        if let Some(auth) = from.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(Bearer::from_authorization)
                .ok_or_else(|| {
                    Status::unauthenticated("the authorization header is not `Bearer <token>`")
                })?;
            headers.insert(header::AUTHORIZATION, token.header_value());
        }
        Ok(headers)
    }
}

/// The account whose failed-password budget a call spends: the email of a sign-in, the id of an
/// account change that checks the current password; none for a sign-up.
fn account_of(guard: Guard, framed: &Bytes) -> Result<Option<String>, Status> {
    let bad =
        |why: &str| Status::invalid_argument(format!("the request is not a gRPC message: {why}"));
    if framed.len() < 5 {
        return Err(bad("shorter than its frame header"));
    }
    if framed[0] != 0 {
        return Err(bad("compressed messages are not accepted"));
    }
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    let message = framed
        .get(5..5 + len)
        .ok_or_else(|| bad("shorter than its length"))?;
    Ok(match guard {
        Guard::SignIn => Some(
            SignInRequest::decode(message)
                .map_err(|e| bad(&e.to_string()))?
                .email,
        ),
        Guard::PasswordCheck => {
            let change = UpdateUserRequest::decode(message).map_err(|e| bad(&e.to_string()))?;
            change.current_password.is_some().then_some(change.id)
        }
        _ => None,
    })
}

/// A refusal of the gateway's own (a budget, a cap) as the gRPC status a client expects.
fn refused_status(e: crate::error::ApiError) -> Status {
    let code = match e.status.as_u16() {
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        400 => Code::InvalidArgument,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, e.detail);
    if let Some(secs) = e.retry_after_secs
        && let Ok(v) = secs.saturating_mul(1000).to_string().parse()
    {
        status.metadata_mut().insert("grpc-retry-pushback-ms", v);
    }
    status
}

/// A status answered by the gateway itself (trailers-only).
pub(super) fn refusal(status: Status) -> http::Response<Body> {
    status.into_http()
}

pin_project_lite::pin_project! {
    /// A feed's response body, holding its place under the feed caps until it ends.
    struct Holding<B> {
        #[pin]
        body: B,
        _slot: FeedSlot,
    }
}

impl<B: http_body::Body> http_body::Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_of_a_sign_in_is_its_email() {
        let message = SignInRequest {
            email: "ada@example.com".into(),
            password: "pw".into(),
        }
        .encode_to_vec();
        let mut framed = vec![0, 0, 0, 0, message.len() as u8];
        framed.extend(message);
        assert_eq!(
            account_of(Guard::SignIn, &Bytes::from(framed))
                .unwrap()
                .as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(
            account_of(Guard::SignIn, &Bytes::from_static(&[0, 0, 0, 0, 9]))
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }
}
