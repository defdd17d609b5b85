//! The live feed's events name their books with the title recommendations sends, and ask the
//! marketplace only for an event without one (from a replica older than that field). Feeds are
//! capped per client address (429) and per gateway (503), and a feed's slot comes back when it
//! ends or its client goes away.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response},
};
use gateway::routes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{
    fakes::{fake_services, fake_services_with_open_feeds},
    helpers::{app, app_with, get, problem},
};

#[tokio::test]
async fn feed_events_carry_the_title_recommendations_sends_and_ask_the_catalog_only_without() {
    let (url, calls) = fake_services(true).await;
    let app = app(&url, 2_000);
    let started = Instant::now();
    // The fake feed sends two events and ends, so the whole stream can be read.
    let body = loop {
        let (status, ct, body) = get(&app, "/api/v1/ratings/stream").await;
        if status == 200 {
            assert!(ct.starts_with("text/event-stream"), "{ct}");
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no feed after 10 s ({status}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let events: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{body:?}");
    assert_eq!(events[0]["book_id"], 11);
    assert_eq!(events[0]["title"], "Event title 11", "{body}");
    assert_eq!(events[1]["book_id"], 12);
    assert_eq!(events[1]["title"], "Catalog title 12", "{body}");
    assert_eq!(
        calls.lock().unwrap().get_ids,
        [12],
        "GetBook for book 12 only"
    );
}

/// A feed request from `client`, as the server tells it: the connection's peer address.
fn feed_from(client: &str) -> Request<Body> {
    let mut r = Request::get("/api/v1/ratings/stream")
        .body(Body::empty())
        .unwrap();
    let peer = SocketAddr::new(client.parse().unwrap(), 40_000);
    r.extensions_mut().insert(ConnectInfo(peer));
    r
}

/// Sends `request` and returns the answer with its body unread (an open feed stays open until
/// the body is dropped).
async fn open(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

/// The first feed of a test: 503 until the gateway has found the fake recommendations ready.
async fn first_feed(app: &Router, request: impl Fn() -> Request<Body>) -> Response<Body> {
    let started = Instant::now();
    loop {
        let r = open(app, request()).await;
        if r.status() != 503 {
            assert_eq!(r.status(), 200);
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no feed after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An answer's status, headers and body (read whole: for refusals).
async fn refusal(r: Response<Body>) -> (u16, http::HeaderMap, serde_json::Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let doc = problem(&headers, std::str::from_utf8(&body).unwrap());
    (status, headers, doc)
}

#[tokio::test]
async fn an_address_at_its_feed_cap_gets_429_while_others_get_feeds_up_to_the_total() {
    let url = fake_services_with_open_feeds().await;
    let flags = ["--feed-limit-per-client", "2", "--feed-limit", "3"];
    let app = app_with(routes(), &url, 2_000, &flags);
    let a1 = first_feed(&app, || feed_from("198.51.100.1")).await;
    let a2 = open(&app, feed_from("198.51.100.1")).await;
    assert_eq!(a2.status(), 200);

    let (status, headers, doc) = refusal(open(&app, feed_from("198.51.100.1")).await).await;
    assert_eq!(status, 429, "{doc}");
    assert_eq!(headers["retry-after"], "10");
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("FEED_LIMIT_PER_CLIENT"),
        "{doc}"
    );

    // Another address still gets a feed, up to the gateway's total.
    let b1 = open(&app, feed_from("198.51.100.2")).await;
    assert_eq!(b1.status(), 200, "another address has its own cap");
    let (status, headers, doc) = refusal(open(&app, feed_from("198.51.100.3")).await).await;
    assert_eq!(status, 503, "the total (FEED_LIMIT) is reached: {doc}");
    assert!(headers.contains_key("retry-after"));

    // The first client goes away: its slot comes back, to it or to anyone.
    drop(a1);
    let a3 = open(&app, feed_from("198.51.100.1")).await;
    assert_eq!(a3.status(), 200, "the slot came back");
    drop((a2, a3));
    let c1 = open(&app, feed_from("198.51.100.3")).await;
    assert_eq!(c1.status(), 200);
}

#[tokio::test]
async fn a_feed_that_ends_gives_its_slot_back_and_a_trusted_proxy_names_the_client() {
    // The fake feed sends two events and ends.
    let (url, _) = fake_services(true).await;
    let flags = ["--feed-limit-per-client", "1", "--trust-forwarded-for"];
    let app = app_with(routes(), &url, 2_000, &flags);
    let via_proxy = |client: &str| {
        Request::get("/api/v1/ratings/stream")
            // What the client claimed, then what the proxy appended: the client as it saw it.
            .header("x-forwarded-for", format!("10.9.9.9, {client}"))
            .body(Body::empty())
            .unwrap()
    };
    let first = first_feed(&app, || via_proxy("203.0.113.1")).await;
    let (status, _, doc) = refusal(open(&app, via_proxy("203.0.113.1")).await).await;
    assert_eq!(
        status, 429,
        "the proxy's entry is the client, not the claim: {doc}"
    );
    let other = open(&app, via_proxy("203.0.113.2")).await;
    assert_eq!(other.status(), 200);

    // Read to its end: the feed is over, and its slot with it.
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body)
            .matches("event: rating")
            .count(),
        2
    );
    let again = open(&app, via_proxy("203.0.113.1")).await;
    assert_eq!(again.status(), 200, "the ended feed's slot came back");
}
