//! An expired deadline, seen as DEADLINE_EXCEEDED on both sides of the call.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use tests::SuiteOptions;

use crate::collector::{attr, random_hex, traced_suite, wait_for_trace};

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded_on_both_sides() {
    let Some((collector, s)) = traced_suite(SuiteOptions {
        env_for: vec![("gateway".into(), "REQUEST_TIMEOUT_MS".into(), "800".into())],
        ..SuiteOptions::default()
    })
    .await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let market = s.admin("marketplace").unwrap().to_owned();
    let r = client
        .put(format!("{market}/faults"))
        .body(r#"{"rules":[{"method":"GetBook","latency_ms":3000}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let trace_id = random_hex(16);
    let parent = random_hex(8);
    let started = Instant::now();
    let r = client
        .get(format!("{}/api/v1/books/7", s.base_url))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["grpc_code"], "DeadlineExceeded", "{problem}");
    assert!(took < Duration::from_millis(2_000), "{took:?}");

    // Spans: the gateway's client span and the marketplace's server span both say 4.
    let spans = wait_for_trace(&collector, &trace_id, &["gateway", "marketplace"]).await;
    let get_book = |service: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|r| {
                r.service == service
                    && r.span.kind == kind as i32
                    && attr(&r.span, "rpc.method").as_deref() == Some("GetBook")
            })
            .unwrap_or_else(|| panic!("{service} {kind:?} span of GetBook: {spans:#?}"))
    };
    for (service, kind) in [
        ("gateway", SpanKind::Client),
        ("marketplace", SpanKind::Server),
    ] {
        let span = get_book(service, kind);
        assert_eq!(
            attr(&span.span, "rpc.grpc.status_code").as_deref(),
            Some("4"),
            "{service}"
        );
        assert_eq!(
            span.span.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32),
            "{service}"
        );
    }
    assert_eq!(
        attr(
            &get_book("marketplace", SpanKind::Server).span,
            "fault.injected"
        )
        .as_deref(),
        Some("latency 3000ms")
    );

    // Metrics on both sides, and no Canceled anywhere.
    let metrics = |url: String| async move {
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let gateway = metrics(s.admin("gateway").unwrap().to_owned()).await;
    let marketplace = metrics(market.clone()).await;
    for (name, text, family) in [
        ("gateway", &gateway, "grpc_client_handled_total"),
        ("marketplace", &marketplace, "grpc_server_handled_total"),
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(family) && l.contains("grpc_method=\"GetBook\""))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("grpc_code=\"DeadlineExceeded\"")),
            "{name}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("grpc_code=\"Canceled\"")),
            "{name}: {lines:?}"
        );
    }

    // The marketplace's access-log line for the call carries the trace and the code.
    let log = s.log("marketplace");
    let line = log
        .lines()
        .filter(|l| l.contains(&trace_id) && l.contains("rpc handled"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .next()
        .unwrap_or_else(|| panic!("no access-log line for trace {trace_id}:\n{log}"));
    assert_eq!(line["grpc.code"], "DeadlineExceeded", "{line}");
}
