//! gRPC-Web through the gateway's public port, against the four real binaries: the client
//! generated from `protos/` (protoc-gen-es, Connect's gRPC-Web transport) run from Node, raw
//! calls over HTTP/1.1 and HTTP/2, CORS for configured origins only, the per-client feed cap,
//! and the gateway's metrics for the calls. The same client in Chromium is in
//! `tests/tests/browser/grpc_web.rs`.
//!
//! The Node checks need Node.js and `npm ci --prefix tests/browser`; without them they say
//! `SKIPPED` and pass, unless `BOOKSTORE_REQUIRE_BROWSER=1` (CI sets it).

use std::{process::Stdio, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prost::Message;
use protos::{
    marketplace::v1::{GetBookRequest, GetBookResponse},
    recommendations::v1::WatchRatingsRequest,
};
use tests::{Suite, metric};

const GET_BOOK: &str = "/bookstore.marketplace.v1.MarketplaceService/GetBook";
const WATCH: &str = "/bookstore.recommendations.v1.RecommendationsService/WatchRatings";

/// Says why the Node checks are skipped, or fails when `BOOKSTORE_REQUIRE_BROWSER` is set.
fn skip(why: &str) {
    assert!(
        std::env::var("BOOKSTORE_REQUIRE_BROWSER").is_err(),
        "BOOKSTORE_REQUIRE_BROWSER is set but {why}"
    );
    platform::database::testing::note_skip(&format!("gRPC-Web from Node: {why}"));
}

/// A gRPC-Web frame holding `message`.
fn frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed.into()
}

/// The frames of a gRPC-Web response body: (flag, payload); flag 0x80 is the trailers.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() < 5 + len {
            break; // not gRPC-Web frames (a plain HTTP answer)
        }
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

/// The `grpc-status` of a response: in its headers (trailers-only) or its trailer frame.
fn grpc_status(headers: &http::HeaderMap, frames: &[(u8, Vec<u8>)]) -> Option<String> {
    if let Some(v) = headers.get("grpc-status") {
        return v.to_str().ok().map(str::to_owned);
    }
    let trailers = frames.iter().find(|(flag, _)| *flag == 0x80)?;
    String::from_utf8_lossy(&trailers.1)
        .lines()
        .find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_owned()))
}

/// A gRPC-Web call's answer with its body unread, over HTTP/1.1 or (prior knowledge) HTTP/2.
async fn send(
    base: &str,
    path: &str,
    body: Bytes,
    h2: bool,
    headers: &[(&str, &str)],
) -> http::Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::post(format!("{base}{path}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        client.request(req.body(Full::new(body)).unwrap()),
    )
    .await
    .expect("answered within 10 s")
    .expect("a response")
}

/// One gRPC-Web call, its answer read whole.
async fn call(
    base: &str,
    path: &str,
    body: Bytes,
    h2: bool,
    headers: &[(&str, &str)],
) -> (http::StatusCode, http::HeaderMap, Vec<(u8, Vec<u8>)>) {
    let (parts, body) = send(base, path, body, h2, headers).await.into_parts();
    let body = body.collect().await.expect("the whole body").to_bytes();
    (parts.status, parts.headers, frames(&body))
}

#[tokio::test]
async fn the_generated_client_from_node_meets_every_status() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "gRPC-Web from Node: sets faults on a suite it starts",
        );
        return;
    }
    let dir = match tests::web_client::generated() {
        Ok(dir) => dir,
        Err(why) => return skip(&why),
    };
    let s = Suite::start().await;
    let faults = format!(
        "{}/faults",
        s.admin("marketplace").expect("marketplace admin")
    );
    let child = tokio::process::Command::new("node")
        .arg("grpc-web/node-check.mjs")
        .current_dir(dir)
        .env("GATEWAY_URL", &s.base_url)
        .env("FAULTS_URL", &faults)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the Node checks end within 90 s")
        .expect("their output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all gRPC-Web checks passed"),
        "node-check.mjs failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log("gateway")
    );
}

#[tokio::test]
async fn unary_calls_answer_over_http1_and_http2_and_are_counted() {
    let s = Suite::start().await;
    for h2 in [false, true] {
        let (status, headers, frames) = call(
            &s.base_url,
            GET_BOOK,
            frame(&GetBookRequest { id: 1 }),
            h2,
            &[],
        )
        .await;
        assert_eq!(status, 200, "h2: {h2}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/grpc-web"),
            "{headers:?}"
        );
        assert_eq!(grpc_status(&headers, &frames).as_deref(), Some("0"));
        let book = GetBookResponse::decode(&frames[0].1[..])
            .unwrap()
            .book
            .unwrap();
        assert_eq!(book.id, 1);

        let (_, headers, frames) = call(
            &s.base_url,
            GET_BOOK,
            frame(&GetBookRequest { id: 987_654_321 }),
            h2,
            &[],
        )
        .await;
        assert_eq!(
            grpc_status(&headers, &frames).as_deref(),
            Some("5"),
            "NOT_FOUND"
        );
    }
    // A token that cannot be one is refused at the gateway, a malformed header too.
    let (_, headers, frames) = call(
        &s.base_url,
        "/bookstore.recommendations.v1.RecommendationsService/ListMyRatings",
        frame(&GetBookRequest { id: 0 }),
        false,
        &[("authorization", "Basic dXNlcjpwdw==")],
    )
    .await;
    assert_eq!(grpc_status(&headers, &frames).as_deref(), Some("16"));

    if let Some(admin) = s.admin("gateway") {
        let handled = metric(
            admin,
            "grpc_server_handled_total",
            &["grpc_method=\"GetBook\"", "grpc_code=\"OK\""],
        )
        .await;
        assert_eq!(handled, 2.0, "two GetBook calls answered OK");
        let not_found = metric(
            admin,
            "grpc_server_handled_total",
            &["grpc_method=\"GetBook\"", "grpc_code=\"NotFound\""],
        )
        .await;
        assert_eq!(not_found, 2.0);
        let route = metric(
            admin,
            "http_requests_total",
            &[&format!("route=\"{GET_BOOK}\"")],
        )
        .await;
        assert_eq!(
            route, 4.0,
            "the HTTP metrics label gRPC-Web calls by method"
        );
    }
}

#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    if Suite::is_external() {
        platform::database::testing::note_skip("gRPC-Web CORS: configures a suite it starts");
        return;
    }
    let allowed = "http://app.example";
    for (env, origin, expect_allowed) in [
        (None, allowed, false),
        (Some(allowed), allowed, true),
        (Some(allowed), "http://evil.example", false),
    ] {
        let s = match env {
            Some(o) => Suite::start_with(&[("GRPC_WEB_ALLOWED_ORIGINS", o)]).await,
            None => Suite::start().await,
        };
        let c = reqwest::Client::new();
        let preflight = c
            .request(
                reqwest::Method::OPTIONS,
                format!("{}{GET_BOOK}", s.base_url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization,traceparent",
            )
            .send()
            .await
            .unwrap();
        let allow = preflight.headers().get("access-control-allow-origin");
        assert_eq!(
            allow.is_some(),
            expect_allowed,
            "{env:?} {origin}: {:?}",
            preflight.headers()
        );
        if expect_allowed {
            assert_eq!(allow.unwrap(), origin);
            let headers = preflight.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .to_owned();
            for h in ["grpc-timeout", "authorization", "x-grpc-web", "traceparent"] {
                assert!(headers.contains(h), "{h} not in {headers}");
            }
        }
        let (_, headers, frames) = call(
            &s.base_url,
            GET_BOOK,
            frame(&GetBookRequest { id: 1 }),
            false,
            &[("origin", origin)],
        )
        .await;
        assert_eq!(grpc_status(&headers, &frames).as_deref(), Some("0"));
        assert_eq!(
            headers.get("access-control-allow-origin").is_some(),
            expect_allowed
        );
        if expect_allowed {
            let exposed = headers["access-control-expose-headers"].to_str().unwrap();
            assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"));
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn a_client_holds_at_most_its_share_of_live_feeds() {
    if Suite::is_external() {
        platform::database::testing::note_skip("gRPC-Web feeds: configures a suite it starts");
        return;
    }
    let s = Suite::start_with(&[("FEED_LIMIT_PER_CLIENT", "1")]).await;
    let feed = || frame(&WatchRatingsRequest { book_id: 0 });
    // The first feed stays open: its body never ends while the test holds it.
    let first = send(&s.base_url, WATCH, feed(), false, &[]).await;
    assert_eq!(first.status(), 200);
    assert!(
        first.headers().get("grpc-status").is_none(),
        "the first feed is open"
    );
    let (_, headers, frames) = call(&s.base_url, WATCH, feed(), false, &[]).await;
    assert_eq!(
        grpc_status(&headers, &frames).as_deref(),
        Some("8"),
        "RESOURCE_EXHAUSTED"
    );
    assert!(
        headers.contains_key("grpc-retry-pushback-ms"),
        "{headers:?}"
    );
    drop(first);
    // Once the first feed is gone, its place is free again.
    tests::wait_until(
        "the feed's place given back",
        Duration::from_secs(10),
        || async {
            let res = send(&s.base_url, WATCH, feed(), false, &[]).await;
            res.headers().get("grpc-status").is_none()
        },
    )
    .await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_any_service_sees_it() {
    let s = Suite::start().await;
    // A search of 64 KiB, four times the gateway's default BODY_LIMIT_BYTES (16 KiB).
    let query = "a".repeat(64 * 1024);
    let big = frame(&protos::marketplace::v1::SearchBooksRequest {
        query,
        ..Default::default()
    });
    let (status, _, _) = call(
        &s.base_url,
        "/bookstore.marketplace.v1.MarketplaceService/SearchBooks",
        big,
        false,
        &[],
    )
    .await;
    assert_eq!(
        status, 413,
        "the REST API's body limit holds for gRPC-Web too"
    );
    if let Some(admin) = s.admin("marketplace") {
        let searched = metric(
            admin,
            "grpc_server_handled_total",
            &["grpc_method=\"SearchBooks\""],
        )
        .await;
        assert_eq!(searched, 0.0, "the marketplace was never asked");
    }
}
