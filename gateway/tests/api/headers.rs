//! Every API answer carries `nosniff`; those with personal data also `Cache-Control: no-store`
//! (errors included), while the catalogue stays cacheable and the pages keep their own headers.

use std::time::{Duration, Instant};

use axum::{Router, body::Body, http::Request};

use crate::{
    fakes::fake_services,
    helpers::{app, nobody, send},
};

/// Sends `request()` until the gateway has found the fakes ready (not 503), then its answer.
async fn answered(
    app: &Router,
    request: impl Fn() -> Request<Body>,
) -> (u16, http::HeaderMap, String) {
    let started = Instant::now();
    loop {
        let answer = send(app, request()).await;
        if answer.0 != 503 || started.elapsed() > Duration::from_secs(10) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn personal_answers_are_no_store_and_nosniff_public_ones_only_nosniff() {
    let (url, _) = fake_services(true).await;
    let app = app(&url, 2_000);
    let (status, headers, body) = answered(&app, || {
        Request::get("/api/v1/me/recommendations")
            .header("authorization", "Bearer some.token")
            .body(Body::empty())
            .unwrap()
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");

    let (status, headers, body) = answered(&app, || {
        Request::get("/api/v1/books/7").body(Body::empty()).unwrap()
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers.get("cache-control").is_none(),
        "the catalogue stays cacheable: {headers:?}"
    );

    // A page's asset keeps its own caching, untouched by the API's headers.
    let (_, headers, _) = send(
        &app,
        Request::get("/static/site.css")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(headers["cache-control"], "public, max-age=3600");
}

#[tokio::test]
async fn errors_under_the_api_carry_the_headers_too() {
    let app = app(&nobody().await, 2_000);
    let personal = [
        ("POST", "/api/v1/sessions"),
        ("GET", "/api/v1/users/0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61"),
        ("DELETE", "/api/v1/sessions/current"),
        ("GET", "/api/v1/me/ratings"),
    ];
    for (method, uri) in personal {
        let (status, headers, body) = send(
            &app,
            Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", "Bearer some.token")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"email":"ada@example.org","password":"x"}"#))
                .unwrap(),
        )
        .await;
        assert!(status >= 400, "{method} {uri}: {status} {body}");
        assert_eq!(
            headers["x-content-type-options"], "nosniff",
            "{method} {uri}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{method} {uri}");
    }
    for uri in ["/api/v1/books/1", "/api/v1/nope", "/api"] {
        let (status, headers, _) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert!(status >= 400, "{uri}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
        assert!(headers.get("cache-control").is_none(), "{uri}");
    }
}
