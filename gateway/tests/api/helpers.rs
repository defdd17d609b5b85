//! `app()`: the real gateway router over upstream addresses the test chooses.

use axum::{Router, body::Body, http::Request};
use clap::Parser;
use gateway::{AppState, Config, routes, upstream::Upstreams, with_middleware};
use http_body_util::BodyExt;
use platform::metrics::Metrics;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The gateway's router with every upstream at `url` and a request budget of `timeout_ms`.
pub fn app(url: &str, timeout_ms: u64) -> Router {
    app_with(routes(), url, timeout_ms, &[])
}

/// `routes` behind the gateway's middleware, upstreams at `url`, with extra flags.
pub fn app_with(routes: Router<AppState>, url: &str, timeout_ms: u64, flags: &[&str]) -> Router {
    let timeout = timeout_ms.to_string();
    let mut args = vec![
        "gateway",
        "--marketplace-url",
        url,
        "--recommendations-url",
        url,
        "--users-url",
        url,
        "--request-timeout-ms",
        &timeout,
        "--optional-timeout-ms",
        &timeout,
    ];
    args.extend_from_slice(flags);
    let config = Config::try_parse_from(args).unwrap();
    let metrics = Metrics::new();
    let upstreams = Upstreams::new(&config.upstream_urls(), &metrics).unwrap();
    let (tx, shutdown) = tokio::sync::watch::channel(false);
    // Never told to stop; a dropped sender would read as "stop" and end live feeds at once.
    std::mem::forget(tx);
    let state = AppState::new(&config, upstreams, shutdown);
    with_middleware(routes, state, &metrics, &config)
}

/// A marketplace that reports SERVING and then never answers a call.
pub async fn never_answers() -> String {
    #[derive(Clone)]
    struct Hang;
    impl tonic::server::NamedService for Hang {
        const NAME: &'static str = "bookstore.marketplace.v1.MarketplaceService";
    }
    impl tower::Service<http::Request<tonic::body::Body>> for Hang {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Pending<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            std::future::pending()
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(
            <Hang as tonic::server::NamedService>::NAME,
            tonic_health::ServingStatus::Serving,
        )
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(Hang)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// An address where nothing listens.
pub async fn nobody() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Sends a GET and returns status, content type and body.
pub async fn get(app: &Router, uri: &str) -> (u16, String, String) {
    let (status, headers, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, body)
}

/// Sends `request` and returns status, headers and body.
pub async fn send(app: &Router, request: Request<Body>) -> (u16, http::HeaderMap, String) {
    let r = app.clone().oneshot(request).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, headers, body)
}

/// A problem document's fields, after checking it is served as `application/problem+json`.
pub fn problem(headers: &http::HeaderMap, body: &str) -> serde_json::Value {
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "not a problem document: {body}"
    );
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    for field in ["type", "title", "status", "detail"] {
        assert!(doc.get(field).is_some(), "{field} missing from {body}");
    }
    doc
}

/// The CSRF token a page's forms carry (empty when it has no form).
pub fn form_token(page: &str) -> String {
    page.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// What a browser holds after loading a page: the CSRF cookie and the token its forms carry.
pub struct FormSession {
    pub cookie: String,
    pub token: String,
}

impl FormSession {
    /// Loads the home page (its sign-in and sign-up forms show even with every upstream down)
    /// as a new visitor would.
    pub async fn open(app: &Router) -> FormSession {
        let (_, headers, page) = send(app, Request::get("/").body(Body::empty()).unwrap()).await;
        let cookie = headers["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let token = form_token(&page);
        FormSession { cookie, token }
    }

    /// A same-origin form POST of `body` (the token appended) as the browser sends it.
    pub fn post(&self, uri: &str, body: &str) -> Request<Body> {
        Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "bookstore.test")
            .header("origin", "http://bookstore.test")
            .header("sec-fetch-site", "same-origin")
            .header("cookie", &self.cookie)
            .body(Body::from(format!("{body}&csrf={}", self.token)))
            .unwrap()
    }
}
