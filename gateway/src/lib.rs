//! The gateway: the bookstore's only public door. A REST JSON API under `/api/v1`, the
//! server-rendered marketplace pages and an SSE feed, each request fanned out to the gRPC
//! services over one long-lived channel per service. `build_router` is tested with `oneshot`;
//! `run` serves it on a given listener.
#![forbid(unsafe_code)]

pub mod api;
pub mod contract;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod serve;
pub mod shed;
pub mod upstream;

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::{
    config::{ServeArgs, TelemetryArgs},
    http_metrics::HttpMetrics,
    metrics::Metrics,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    error::ApiError,
    upstream::{Deadline, Marketplace, Recommendations, Upstreams, Users},
};

/// Configuration of the gateway binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "gateway",
    version,
    about = "The bookstore's public door: REST API, marketplace pages and SSE over the gRPC services."
)]
pub struct Config {
    /// Address the public HTTP server listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Address of the admin HTTP server (/metrics, /livez, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// The marketplace service: `http://host:port` (`https://` for TLS, see
    /// --upstream-tls-ca), or several separated by commas. A host name
    /// is resolved again every UPSTREAM_RESOLVE_INTERVAL_MS (a headless Service names every ready
    /// pod) and calls are balanced over every replica whose health reports SERVING.
    #[arg(
        long,
        env = "MARKETPLACE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub marketplace_url: String,
    /// The recommendations service (same forms as --marketplace-url).
    #[arg(
        long,
        env = "RECOMMENDATIONS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub recommendations_url: String,
    /// The users service (same forms as --marketplace-url).
    #[arg(long, env = "USERS_URL", default_value = "http://127.0.0.1:50053")]
    pub users_url: String,
    /// How often upstream host names are resolved again, in milliseconds.
    #[arg(long, env = "UPSTREAM_RESOLVE_INTERVAL_MS", default_value_t = 5_000)]
    pub upstream_resolve_interval_ms: u64,
    /// The CA (PEM) that signed the services' certificates: upstreams given as https:// are
    /// reached over TLS and must present a certificate it signed (http:// stay plaintext).
    #[arg(long, env = "UPSTREAM_TLS_CA_FILE")]
    pub upstream_tls_ca: Option<PathBuf>,
    /// Mutual TLS: the gateway's client certificate (PEM); needs --upstream-tls-key and
    /// --upstream-tls-ca.
    #[arg(long, env = "UPSTREAM_TLS_CERT_FILE", requires_all = ["upstream_tls_key", "upstream_tls_ca"])]
    pub upstream_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --upstream-tls-cert.
    #[arg(long, env = "UPSTREAM_TLS_KEY_FILE", requires = "upstream_tls_cert")]
    pub upstream_tls_key: Option<PathBuf>,
    /// The name the services' certificates must carry (upstream addresses are resolved to IPs);
    /// default: the host of each upstream URL.
    #[arg(long, env = "UPSTREAM_TLS_DOMAIN", requires = "upstream_tls_ca")]
    pub upstream_tls_domain: Option<String>,
    /// Longest wait for an optional page section (recommendations), in milliseconds.
    #[arg(long, env = "OPTIONAL_TIMEOUT_MS", default_value_t = 800)]
    pub optional_timeout_ms: u64,
    /// How long the home page's "Popular now" panel (the same for every visitor) is kept before
    /// recommendations is asked again, in milliseconds; 0: asked on every page view.
    #[arg(long, env = "POPULAR_CACHE_MS", default_value_t = 1000)]
    pub popular_cache_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub body_limit_bytes: usize,
    /// Mark the pages' cookies `Secure` and `__Host-` prefixed: set it when the pages are
    /// served over HTTPS. Behind a TLS proxy that sends `X-Forwarded-Proto: https` with
    /// TRUST_FORWARDED_FOR set, they are marked so for those requests without it.
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Secret (32+ bytes) that signs the pages' form tokens (CSRF); gateway replicas must share
    /// it. Random per process when unset.
    #[arg(long, env = "CSRF_SECRET", hide_env_values = true, value_parser = platform::config::secret)]
    pub csrf_secret: Option<secrecy::SecretString>,
    /// Sign-in, sign-up and password-check attempts per client address per minute (API and
    /// pages together; an IPv6 client is its /64); beyond it, 429 with Retry-After.
    #[arg(long, env = "AUTH_RATE_PER_MINUTE", default_value_t = 10)]
    pub auth_rate_per_minute: u32,
    /// Attempts a client may make at once before the per-minute rate applies.
    #[arg(long, env = "AUTH_RATE_BURST", default_value_t = 10)]
    pub auth_rate_burst: u32,
    /// Failed sign-ins per account per minute, from any number of addresses (the account is the
    /// email, trimmed and lower-cased; for a password change, the account's id). A successful
    /// sign-in costs nothing; once the budget is spent every sign-in to that account is 429
    /// with Retry-After, a right password included, until it refills.
    #[arg(long, env = "AUTH_ACCOUNT_RATE_PER_MINUTE", default_value_t = 5)]
    pub auth_account_rate_per_minute: u32,
    /// Failed sign-ins an account may take at once before its per-minute rate applies.
    #[arg(long, env = "AUTH_ACCOUNT_RATE_BURST", default_value_t = 10)]
    pub auth_account_rate_burst: u32,
    /// Take the client's address from the last entry of X-Forwarded-For. Set it behind an
    /// ingress or proxy that appends the address it was reached from, and only when clients
    /// cannot reach the gateway except through it (else they could choose their own address).
    /// Behind a NodePort or LoadBalancer Service leave it off and give the Service
    /// `externalTrafficPolicy: Local`: the peer address is then the client's own (with the
    /// default `Cluster` it is a node's, and every client shares one budget).
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Live feeds (`GET /api/v1/ratings/stream`) this replica holds at once; beyond, 503 with
    /// Retry-After. Each holds a stream of recommendations, which keeps STREAM_LIMIT (1,024) per
    /// replica for all its streams: at the HPA's 4 gateway replicas (k8s/base/gateway.yaml),
    /// 4 x 192 = 768 < 1,024 even with every feed on one recommendations replica, leaving 256
    /// for other callers (health watches have their own pool). Raise maxReplicas, lower this.
    /// (STREAM_LIMIT itself does not apply to the gateway.)
    #[arg(long, env = "FEED_LIMIT", default_value_t = 192)]
    pub feed_limit: usize,
    /// Live feeds one client address (an IPv6 client: its /64) may hold at once; beyond, 429
    /// with Retry-After. A browser holds one per open book page.
    #[arg(long, env = "FEED_LIMIT_PER_CLIENT", default_value_t = 8)]
    pub feed_limit_per_client: usize,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Header, body, idle and send timeouts; connection caps in total and per client.
    #[command(flatten)]
    pub connections: serve::ConnectionArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// The upstream addresses and how they are discovered.
    pub fn upstream_urls(&self) -> upstream::UpstreamUrls<'_> {
        upstream::UpstreamUrls {
            marketplace: &self.marketplace_url,
            recommendations: &self.recommendations_url,
            users: &self.users_url,
            resolve_every: Duration::from_millis(self.upstream_resolve_interval_ms.max(100)),
            tls: upstream::UpstreamTls {
                ca: self.upstream_tls_ca.as_deref(),
                cert: self.upstream_tls_cert.as_deref(),
                key: self.upstream_tls_key.as_deref(),
                domain: self.upstream_tls_domain.as_deref(),
            },
        }
    }
}

/// What every handler shares: one reference count per request (axum clones the state for each),
/// and only the client of a call a request makes is cloned.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// See [`AppState`].
pub struct Shared {
    pub upstreams: Upstreams,
    /// Budget of one incoming request; each upstream call gets what remains of it.
    pub request_timeout: Duration,
    pub optional_timeout: Duration,
    /// The home page's "Popular now" panel, kept a moment.
    pub popular_panel: pages::PopularPanel,
    pub cookie_secure: bool,
    /// Signs the pages' form tokens (see `pages::csrf`).
    pub csrf: pages::csrf::CsrfKey,
    /// Largest request body, as the extractors read it.
    pub body_limit: usize,
    /// Flips to true when draining begins; long-lived SSE responses end on it.
    pub shutdown: watch::Receiver<bool>,
    /// Live feeds open at once, in total and per client (`FEED_LIMIT`,
    /// `FEED_LIMIT_PER_CLIENT`): each holds an upstream stream, and they are counted apart from
    /// the request concurrency limit, which they would otherwise escape.
    pub feeds: std::sync::Arc<feeds::FeedLimits>,
    /// Sign-in and sign-up budget per client.
    pub auth_limit: std::sync::Arc<rate_limit::AuthLimiter>,
    /// Whether the client's address comes from X-Forwarded-For.
    pub trust_forwarded_for: bool,
}

impl AppState {
    /// The state `config` describes, over `upstreams`; long-lived responses end when `shutdown`
    /// turns true.
    pub fn new(config: &Config, upstreams: Upstreams, shutdown: watch::Receiver<bool>) -> Self {
        Self(std::sync::Arc::new(Shared {
            upstreams,
            request_timeout: config.serve.request_timeout(),
            optional_timeout: Duration::from_millis(config.optional_timeout_ms),
            popular_panel: pages::PopularPanel::new(Duration::from_millis(config.popular_cache_ms)),
            cookie_secure: config.cookie_secure,
            csrf: match &config.csrf_secret {
                Some(secret) => pages::csrf::CsrfKey::new(
                    secrecy::ExposeSecret::expose_secret(secret).as_bytes(),
                ),
                None => pages::csrf::CsrfKey::random(),
            },
            body_limit: config.body_limit_bytes,
            shutdown,
            feeds: feeds::FeedLimits::new(config.feed_limit, config.feed_limit_per_client),
            auth_limit: std::sync::Arc::new(rate_limit::AuthLimiter::new(
                rate_limit::Rate {
                    per_minute: config.auth_rate_per_minute,
                    burst: config.auth_rate_burst,
                },
                rate_limit::Rate {
                    per_minute: config.auth_account_rate_per_minute,
                    burst: config.auth_account_rate_burst,
                },
            )),
            trust_forwarded_for: config.trust_forwarded_for,
        }))
    }

    /// Whether the pages' cookies are `Secure` for a request with `headers`: always with
    /// COOKIE_SECURE, else when a trusted proxy says the client spoke HTTPS.
    pub fn secure_cookies(&self, headers: &http::HeaderMap) -> bool {
        self.cookie_secure
            || (self.trust_forwarded_for
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
    }

    /// The deadline of one incoming request: each upstream call gets what remains of it.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.request_timeout)
    }

    /// The catalog, for a request starting now (`.within(d)` to share another's deadline).
    pub fn marketplace(&self) -> Marketplace {
        Marketplace::new(self.upstreams.marketplace.clone(), self.deadline())
    }

    /// Ratings and recommendations, for a request starting now.
    pub fn recommendations(&self) -> Recommendations {
        Recommendations::new(self.upstreams.recommendations.clone(), self.deadline())
    }

    /// Accounts and sessions, for a request starting now.
    pub fn users(&self) -> Users {
        Users::new(self.upstreams.users.clone(), self.deadline())
    }

    /// Takes one sign-in/sign-up attempt from `client`'s budget (API and forms) and, when a
    /// password of `account` is to be checked, holds one of the account's until the returned
    /// attempt is settled (see `rate_limit`).
    pub fn auth_attempt(
        &self,
        client: std::net::IpAddr,
        account: Option<&str>,
    ) -> Result<rate_limit::Attempt, ApiError> {
        self.auth_limit
            .attempt(client, account)
            .map_err(ApiError::from)
    }
}

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] upstream::BadUpstream),
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Request ids: a random per-process prefix and a counter (`3f9a1c0e2b7d4a55-42`), unique without
/// a system call for randomness on every request (as a v4 UUID per request would need).
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: format!("{:016x}", platform::random_below(u64::MAX)).into(),
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        use std::fmt::Write;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Sized exactly, so the header value takes the string's buffer as it is: no second
        // allocation or copy.
        let digits = n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let mut id = String::with_capacity(self.prefix.len() + 1 + digits);
        let _ = write!(id, "{}-{n}", self.prefix);
        http::HeaderValue::try_from(id).ok().map(RequestId::new)
    }
}

/// 405 for a route that exists with other methods (the router adds `Allow`).
async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    let detail = format!("{method} is not allowed on {}", uri.path());
    if api::is_api_path(uri.path()) {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    }
}

fn http_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{} {}", req.method(), route),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = %route,
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = ?req.headers().get("x-request-id"),
    );
    // A browser's or curl's `traceparent` is continued; otherwise this starts a new trace.
    platform::telemetry::continue_trace(&span, req.headers());
    span
}

/// The access-log line of a request: every error and slow request, a sample of the others
/// (`ACCESS_LOG_SAMPLE`), none for a shed one (see [`shed`]); nothing at all when info lines are
/// filtered out. A tower layer rather
/// than `from_fn`: no boxed future and no clone of the inner service per request.
#[derive(Clone, Copy)]
struct AccessLogLayer;

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog(inner)
    }
}

#[derive(Clone)]
struct AccessLog<S>(S);

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
    struct AccessLogFuture<F> {
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

/// The whole public router: API, pages, and the middleware stack.
pub fn build_router(state: AppState, metrics: &Metrics, config: &Config) -> Router {
    with_middleware(routes(), state, metrics, config)
}

/// Every route of the gateway, API and pages, without the middleware.
pub fn routes() -> Router<AppState> {
    Router::new().merge(api::router()).merge(pages::router())
}

/// `routes` (the gateway's own, or a test's) behind the gateway's middleware stack: a method a
/// route does not accept is a 405 problem (with `Allow`) under `/api/`, a page otherwise.
pub fn with_middleware(
    routes: Router<AppState>,
    state: AppState,
    metrics: &Metrics,
    config: &Config,
) -> Router {
    let http_metrics = HttpMetrics::new(metrics);
    let shed = metrics
        .counter_vec(
            "http_requests_shed_total",
            "HTTP requests refused with 503 because the gateway was at its concurrency limit.",
            &[],
        )
        .with_label_values(&[] as &[&str]);
    metrics
        .gauge(
            "http_concurrency_limit",
            "Requests the gateway handles at once before shedding (saturation = in_flight / limit).",
        )
        .set(config.serve.concurrency_limit as i64);
    let stack = ServiceBuilder::new()
        // Outermost: every request gets an id, echoed back in the response.
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .layer(PropagateRequestIdLayer::x_request_id())
        // `nosniff` on every API answer, `no-store` on personal ones (shed ones included).
        .layer(api::headers::ApiHeadersLayer)
        // A span per request, named by route template, with its status. No line per failure:
        // the access log has every error (tower-http's ERROR line per 5xx would make a flood of
        // shed requests a flood of ERROR lines).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(http_span)
                .on_failure(())
                .on_response(
                    |res: &http::Response<_>, _: Duration, span: &tracing::Span| {
                        span.record("http.response.status_code", res.status().as_u16());
                        if res.status().is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                    },
                ),
        )
        // The access log, inside the span (its lines carry the trace id).
        .layer(AccessLogLayer)
        // RED metrics by route template.
        .layer(platform::http_metrics::TrackLayer::new(http_metrics))
        // A panic becomes a 500 problem document, not a dropped connection or plain text.
        .layer(CatchPanicLayer::custom(error::panic_response))
        // The body is read whole (BODY_READ_TIMEOUT_MS, else 408) before a permit is taken.
        .layer(serve::ReadBodyLayer::new(
            config.connections.body_read_timeout(),
            config.body_limit_bytes,
        ))
        // Load shedding: beyond the concurrency limit, answer 503 at once instead of queueing.
        .layer(shed::layer(config.serve.concurrency_limit, shed))
        // Innermost: the body limit the extractors read.
        .layer(DefaultBodyLimit::max(config.body_limit_bytes));
    routes
        .method_not_allowed_fallback(method_not_allowed)
        // The pages' forms: cross-site posts refused, tokens given (API paths pass untouched).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::csrf::guard,
        ))
        .layer(stack)
        .with_state(state)
}

/// Serves the gateway on `listener` (and the admin routes on `admin`) until `shutdown`
/// resolves; then not ready, a pause, and a bounded drain.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Metrics::new();
    let upstreams = Upstreams::new(&config.upstream_urls(), &metrics)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(&config, upstreams, stop_rx);
    let app = build_router(state, &metrics, &config);

    // The gateway can serve as soon as it listens: upstream trouble degrades pages, it does not
    // make the gateway unready (that would take the whole site down with one service).
    let (ready_tx, ready_rx) = watch::channel(true);
    let admin = platform::admin::AdminTask::spawn(
        admin,
        platform::admin::router(metrics.clone(), ready_rx, None),
    );
    let drain = platform::shutdown::Drain {
        delay: config.serve.shutdown_delay(),
        timeout: config.serve.drain_timeout(),
    };
    tracing::info!(addr = %listener.local_addr()?, "gateway started");
    // `/readyz` answers 503 first; after the pause the SSE streams end (stop_tx) and the
    // listener closes.
    let not_ready = async move {
        ready_tx.send_replace(false);
    };
    drain
        .run("gateway", shutdown, not_ready, stop_tx, admin, |stop| {
            serve::serve(listener, app, &config.connections, &metrics, stop)
        })
        .await
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_count_up_after_the_process_prefix() {
        let mut ids = RequestIds::new();
        let req = http::Request::new(());
        let prefix = ids.prefix.clone();
        let mut seen = Vec::new();
        for _ in 0..12 {
            let id = ids.make_request_id(&req).unwrap();
            seen.push(id.header_value().to_str().unwrap().to_owned());
        }
        assert_eq!(prefix.len(), 16);
        assert_eq!(seen[0], format!("{prefix}-0"));
        assert_eq!(seen[9], format!("{prefix}-9"));
        assert_eq!(seen[10], format!("{prefix}-10"));
        // A clone (one per connection) draws from the same counter.
        let mut other = ids.clone();
        let next = other.make_request_id(&req).unwrap();
        assert_eq!(next.header_value(), &format!("{prefix}-12"));
    }
}
