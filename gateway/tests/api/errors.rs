//! Every error of the API is a problem document (RFC 9457): the router's own 404 and 405 and a
//! caught panic included, not only the handlers' errors.

use axum::{Router, body::Body, http::Request, routing::get};
use gateway::{AppState, routes};

use crate::helpers::{app, app_with, nobody, problem, send};

#[tokio::test]
async fn an_unknown_api_path_is_a_404_problem() {
    let app = app(&nobody().await, 2_000);
    for uri in ["/api/v1/nope", "/api/v2/books", "/api", "/api/", "/api/v1"] {
        let (status, headers, body) =
            send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, 404, "{uri}: {body}");
        assert_eq!(problem(&headers, &body)["status"], 404, "{uri}");
    }
    // A page path is still a page.
    let (status, headers, _) = send(&app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 404);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem_with_allow() {
    let app = app(&nobody().await, 2_000);
    for (method, uri, allow) in [
        ("DELETE", "/api/v1/books", "GET,HEAD"),
        ("POST", "/api/v1/books/1", "GET,HEAD"),
        ("PUT", "/api/v1/users", "POST"),
        ("GET", "/api/v1/sessions", "POST"),
    ] {
        let (status, headers, body) = send(
            &app,
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 405, "{method} {uri}: {body}");
        let doc = problem(&headers, &body);
        assert_eq!(doc["status"], 405);
        assert!(doc["detail"].as_str().unwrap().contains(method), "{body}");
        assert_eq!(headers["allow"], allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_that_hides_the_panic() {
    let routes = routes().merge(Router::<AppState>::new().route(
        "/api/v1/boom",
        get(|| async {
            if true {
                panic!("secret detail at 10.0.0.7");
            }
            ""
        }),
    ));
    let app = app_with(routes, &nobody().await, 2_000, &[]);
    let (status, headers, body) = send(
        &app,
        Request::get("/api/v1/boom").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    let doc = problem(&headers, &body);
    assert_eq!(doc["detail"], "internal error");
    assert!(!body.contains("10.0.0.7"), "{body}");
    assert!(
        headers.contains_key("x-request-id"),
        "the request id survives the panic"
    );
}
