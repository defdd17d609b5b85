//! What callers see when upstreams are slow, absent or the input is bad before any call.

use crate::helpers::{app, get, never_answers, nobody};

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_gateway_timeout_within_the_budget() {
    let app = app(&never_answers().await, 300);
    let started = std::time::Instant::now();
    let (status, ct, body) = get(&app, "/api/v1/books/1").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(ct, "application/problem+json");
    assert!(body.contains("did not answer in time"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the deadline bounds the wait"
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_is_service_unavailable_without_leaking_addresses() {
    let url = nobody().await;
    let app = app(&url, 2_000);
    let started = std::time::Instant::now();
    let (status, _, body) = get(&app, "/api/v1/books/1").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the marketplace service is unavailable"));
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1_500),
        "no replica ready is a fast 503, not a wait for the deadline"
    );
    assert!(!body.contains(url.trim_start_matches("http://")), "{body}");
    let (status, ct, page) = get(&app, "/").await;
    assert_eq!(status, 503);
    assert!(ct.starts_with("text/html"));
    assert!(page.contains("The catalog is unavailable"));
}

#[tokio::test]
async fn bad_ids_and_queries_are_refused_before_any_upstream_call() {
    let app = app(&nobody().await, 2_000);
    for uri in [
        "/api/v1/books/abc",
        "/api/v1/books?page_size=ten",
        "/api/v1/books?unknown=1",
    ] {
        let (status, ct, body) = get(&app, uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert_eq!(ct, "application/problem+json");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = app(&nobody().await, 2_000);
    let (status, _, body) = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/books",
        "/api/v1/books/search",
        "/api/v1/books/{id}",
        "/api/v1/books/{id}/similar",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/sessions",
        "/api/v1/me/ratings",
        "/api/v1/me/ratings/{book_id}",
        "/api/v1/me/recommendations",
        "/api/v1/recommendations/popular",
        "/api/v1/ratings/stream",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
