//! The per-client budget of sign-in and sign-up: 429 with Retry-After beyond it, counted by
//! client address, X-Forwarded-For believed only when the gateway is told to trust it.

use axum::{body::Body, http::Request};
use gateway::routes;

use crate::helpers::{app_with, nobody, problem, send};

fn sign_in(xff: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/api/v1/sessions").header("content-type", "application/json");
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    r.body(Body::from(
        r#"{"email":"ada@example.org","password":"wrong horse"}"#,
    ))
    .unwrap()
}

#[tokio::test]
async fn a_client_past_its_sign_in_budget_gets_429_with_retry_after() {
    let flags = ["--auth-rate-per-minute", "2", "--auth-rate-burst", "2"];
    let app = app_with(routes(), &nobody().await, 2_000, &flags);
    for _ in 0..2 {
        let (status, _, body) = send(&app, sign_in(None)).await;
        assert_eq!(
            status, 503,
            "within budget, on to the (absent) users service: {body}"
        );
    }
    let (status, headers, body) = send(&app, sign_in(None)).await;
    assert_eq!(status, 429, "{body}");
    problem(&headers, &body);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // Sign-up draws on the same budget.
    let (status, _, _) = send(
        &app,
        Request::post("/api/v1/users")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"email":"ada@example.org","display_name":"Ada","password":"long enough"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429);
    // An invalid body costs nothing: it is refused before the budget is asked.
    let (status, _, _) = send(
        &app,
        Request::post("/api/v1/sessions")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"email":"nope"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    // Not believed by default: another X-Forwarded-For is still the same client.
    let (status, _, _) = send(&app, sign_in(Some("203.0.113.9"))).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for() {
    let flags = [
        "--auth-rate-per-minute",
        "1",
        "--auth-rate-burst",
        "1",
        "--trust-forwarded-for",
    ];
    let app = app_with(routes(), &nobody().await, 2_000, &flags);
    let (status, _, _) = send(&app, sign_in(Some("198.51.100.1, 203.0.113.1"))).await;
    assert_eq!(status, 503);
    let (status, _, _) = send(&app, sign_in(Some("198.51.100.2, 203.0.113.1"))).await;
    assert_eq!(
        status, 429,
        "the proxy's entry (the last one) is the client"
    );
    let (status, _, _) = send(&app, sign_in(Some("203.0.113.2"))).await;
    assert_eq!(status, 503, "another client has its own budget");
}

#[tokio::test]
async fn the_sign_in_form_is_limited_too_and_says_so() {
    let flags = ["--auth-rate-per-minute", "1", "--auth-rate-burst", "1"];
    let app = app_with(routes(), &nobody().await, 2_000, &flags);
    let browser = crate::helpers::FormSession::open(&app).await;
    let form = || browser.post("/signin", "email=ada%40example.org&password=wrong+horse");
    let (_, first, _) = send(&app, form()).await;
    assert!(!first["location"].to_str().unwrap().contains("too-many"));
    let (status, second, _) = send(&app, form()).await;
    assert_eq!(status, 303);
    assert_eq!(second["location"], "/?notice=too-many-attempts#account");
}

#[tokio::test]
async fn signing_out_needs_a_token_and_is_documented() {
    let app = app_with(routes(), &nobody().await, 2_000, &[]);
    let (status, headers, body) = send(
        &app,
        Request::delete("/api/v1/sessions/current")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    // No token: the users service says who may sign out; it is down here, so 503 — but a
    // malformed header is refused by the gateway itself.
    assert_eq!(status, 503, "{body}");
    problem(&headers, &body);
    let (status, _, _) = send(
        &app,
        Request::delete("/api/v1/sessions/current")
            .header("authorization", "Basic abc")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (_, _, doc) = send(
        &app,
        Request::get("/api/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let op = &doc["paths"]["/api/v1/sessions/current"]["delete"];
    assert_eq!(op["security"][0]["bearer"], serde_json::json!([]));
    assert!(op["responses"]["204"].is_object() && op["responses"]["401"].is_object());
}
