//! gRPC-Web on the public port: browsers (and any gRPC-Web client generated from `protos/`) call
//! the services' public methods through the gateway, over the same balanced, health-watched
//! channels as the REST API. tonic-web turns each call into plain gRPC, which is observed as a
//! server call (span continuing the caller's `traceparent`, `grpc_server_*` metrics, access log),
//! bounded by the caller's deadline and the gateway's own, and forwarded byte for byte: the
//! messages are decoded only where the gateway must read them (sign-in budgets).
//!
//! Methods meant for services only (`DeleteUserRatings`, `RevokeSession`, health, reflection)
//! are not on the list and answer UNIMPLEMENTED. CORS is answered for the configured origins only.

use std::{
    convert::Infallible,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use http_body_util::BodyExt;
use platform::{
    deadline::{Deadline, DeadlineLayer, client::restate},
    metrics::{Metrics, Side, grpc_status},
    observe::{Observe, RpcAccessLog, RpcMetrics, RpcSpan},
};
use prost::Message;
use protos::users::v1::{SignInRequest, UpdateUserRequest};
use tonic::{Code, Status, body::Body};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{AppState, client_addr, feeds::FeedSlot, upstream::Bearer, upstream::Upstream};

/// The upstream a public method is forwarded to (its index in [`Upstreams::channels`]).
///
/// [`Upstreams::channels`]: crate::upstream::Upstreams::channels
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstreamed {
    Marketplace = 0,
    Recommendations = 1,
    Users = 2,
}

/// What the gateway does besides forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// Nothing: reads and writes of the caller's own data (the service checks the token).
    None,
    /// A live feed: counted under `FEED_LIMIT` and `FEED_LIMIT_PER_CLIENT`, no default deadline.
    Feed,
    /// Sign-up: the client address's sign-in budget.
    SignUp,
    /// Sign-in: the address's budget and the account's budget of failed attempts.
    SignIn,
    /// An account change that may check the current password: as sign-in, by account id.
    PasswordCheck,
}

/// A method offered to browsers.
struct Public {
    path: &'static str,
    upstream: Upstreamed,
    guard: Guard,
}

const MARKETPLACE: &str = "bookstore.marketplace.v1.MarketplaceService";
const RECOMMENDATIONS: &str = "bookstore.recommendations.v1.RecommendationsService";
const USERS: &str = "bookstore.users.v1.UsersService";

/// Every method reachable from outside; anything else under a service's path is UNIMPLEMENTED.
const PUBLIC: &[Public] = &[
    public(
        "/bookstore.marketplace.v1.MarketplaceService/ListBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/SearchBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/GetBook",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.marketplace.v1.MarketplaceService/BatchGetBooks",
        Upstreamed::Marketplace,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/RateBook",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/DeleteRating",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListMyRatings",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListPopularBooks",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListSimilarBooks",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/ListRecommendationsForMe",
        Upstreamed::Recommendations,
        Guard::None,
    ),
    public(
        "/bookstore.recommendations.v1.RecommendationsService/WatchRatings",
        Upstreamed::Recommendations,
        Guard::Feed,
    ),
    public(
        "/bookstore.users.v1.UsersService/CreateUser",
        Upstreamed::Users,
        Guard::SignUp,
    ),
    public(
        "/bookstore.users.v1.UsersService/SignIn",
        Upstreamed::Users,
        Guard::SignIn,
    ),
    public(
        "/bookstore.users.v1.UsersService/GetUser",
        Upstreamed::Users,
        Guard::None,
    ),
    public(
        "/bookstore.users.v1.UsersService/UpdateUser",
        Upstreamed::Users,
        Guard::PasswordCheck,
    ),
    public(
        "/bookstore.users.v1.UsersService/DeleteUser",
        Upstreamed::Users,
        Guard::None,
    ),
    public(
        "/bookstore.users.v1.UsersService/SignOut",
        Upstreamed::Users,
        Guard::None,
    ),
];

const fn public(path: &'static str, upstream: Upstreamed, guard: Guard) -> Public {
    Public {
        path,
        upstream,
        guard,
    }
}

/// Services whose other methods (and the gRPC health and reflection services) are answered
/// UNIMPLEMENTED rather than with the site's 404 page.
const REFUSED_SERVICES: &[&str] = &[
    MARKETPLACE,
    RECOMMENDATIONS,
    USERS,
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The request headers a browser may send on a gRPC-Web call.
const ALLOWED_HEADERS: [&str; 7] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "traceparent",
    "tracestate",
];

/// The response headers a browser's script may read.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The CORS answer for gRPC-Web: the given origins only (none: no cross-origin caller at all).
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600))
}

/// What a forwarded call needs.
struct Forward {
    state: AppState,
    upstreams: [Upstream; 3],
}

/// The gRPC-Web routes: one per public method (so metrics and spans are labelled by method),
/// and an UNIMPLEMENTED answer for every other method of the services, health and reflection.
pub fn router(state: &AppState, metrics: &Metrics, origins: &[HeaderValue]) -> Router<AppState> {
    let forward = Arc::new(Forward {
        state: state.clone(),
        upstreams: state.upstreams.channels.clone(),
    });
    let inner = service_fn(move |req: http::Request<Body>| {
        let forward = forward.clone();
        async move { Ok::<_, Infallible>(forward.call(req).await.unwrap_or_else(refusal)) }
    });
    // Inside tonic-web, a gRPC call like any other: one span (continuing the caller's trace),
    // RED metrics and an access-log line, then the deadline answered DEADLINE_EXCEEDED.
    let grpc = ServiceBuilder::new()
        // The HTTP span has continued the caller's trace already: the call's span is its child.
        .map_request(|mut req: http::Request<Body>| {
            req.headers_mut().remove("traceparent");
            req.headers_mut().remove("tracestate");
            req
        })
        .layer(Observe::new(
            (
                RpcSpan(Side::Server),
                (RpcMetrics::new(metrics, Side::Server), RpcAccessLog),
            ),
            Side::Server,
        ))
        .layer(DeadlineLayer::new(None))
        .service(inner);
    let web = ServiceBuilder::new()
        .layer(cors(origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .service(grpc);
    let mut router = Router::new();
    for method in PUBLIC {
        router = router.route_service(method.path, web.clone());
    }
    for service in REFUSED_SERVICES {
        router = router.route_service(&format!("/{service}/{{method}}"), web.clone());
    }
    router
}

/// Whether `path` is a gRPC-Web route (so the pages' CSRF guard leaves it to CORS and tokens).
pub fn is_grpc_web_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, _)| REFUSED_SERVICES.contains(&service))
}

impl Forward {
    async fn call(&self, mut req: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        let caller = Deadline::of(&mut req);
        let path = req.uri().path();
        let method = PUBLIC.iter().find(|m| m.path == path).ok_or_else(|| {
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
fn refusal(status: Status) -> http::Response<Body> {
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
    fn methods_for_services_only_are_not_public() {
        for internal in [
            "/bookstore.recommendations.v1.RecommendationsService/DeleteUserRatings",
            "/bookstore.recommendations.v1.RecommendationsService/RevokeSession",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(PUBLIC.iter().all(|m| m.path != internal), "{internal}");
            assert!(
                is_grpc_web_path(internal),
                "{internal} is answered UNIMPLEMENTED"
            );
        }
        assert!(!is_grpc_web_path("/books/12"));
        assert!(!is_grpc_web_path("/api/v1/books"));
    }

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
