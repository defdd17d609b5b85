//! Traces that connect and logs that carry them: the real suite exports to a test OTLP receiver
//! (a tonic server implementing the OTLP trace collector), one page view is one trace.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value as Any},
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use serde_json::json;
use tests::{Suite, SuiteOptions, unique, wait_until};
use tonic::{Request, Response, Status, transport::Server};

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn text(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn start_collector() -> (Collector, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let svc = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (collector, format!("http://{addr}"))
}

/// Waits (bounded) until the trace holds spans from every named service, then a little longer
/// for stragglers of the same batch.
async fn wait_for_trace(c: &Collector, trace_id: &str, services: &[&str]) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<Received> =
            c.0.lock()
                .unwrap()
                .iter()
                .filter(|r| hex(&r.span.trace_id) == trace_id)
                .cloned()
                .collect();
        let have: HashSet<&str> = spans.iter().map(|r| r.service.as_str()).collect();
        if services.iter().all(|s| have.contains(s)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return c
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|r| hex(&r.span.trace_id) == trace_id)
                .cloned()
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} incomplete: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn random_hex(n: usize) -> String {
    unique().repeat(n).chars().take(n * 2).collect::<String>()
}

#[tokio::test]
async fn one_page_view_is_one_trace_across_gateway_marketplace_and_recommendations() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "tracing: needs to point the suite at its own OTLP receiver",
        );
        return;
    }
    let (collector, endpoint) = start_collector().await;
    let s = Suite::start_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // Every page view asks for the popular panel (it is otherwise kept a second).
        ("POPULAR_CACHE_MS", "0"),
    ])
    .await;
    let client = reqwest::Client::new();
    let trace_id = random_hex(16);
    let parent = random_hex(8);
    let page = client
        .get(format!("{}/", s.base_url))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    let spans = wait_for_trace(
        &collector,
        &trace_id,
        &["gateway", "marketplace", "recommendations"],
    )
    .await;
    let ids: HashMap<String, &Received> = spans.iter().map(|r| (hex(&r.span.span_id), r)).collect();

    // One tree: the gateway's server span continues the caller's span; every other span's
    // parent is a span of this trace.
    let roots: Vec<_> = spans
        .iter()
        .filter(|r| hex(&r.span.parent_span_id) == parent)
        .collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let root = roots[0];
    assert_eq!(root.service, "gateway");
    assert_eq!(root.span.kind, SpanKind::Server as i32);
    assert_eq!(root.span.name, "GET /");
    assert_eq!(attr(&root.span, "http.route").as_deref(), Some("/"));
    assert_eq!(
        attr(&root.span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr(&root.span, "http.response.status_code").as_deref(),
        Some("200")
    );
    for r in &spans {
        if r.span.span_id != root.span.span_id {
            assert!(
                ids.contains_key(&hex(&r.span.parent_span_id)),
                "orphan span {} from {}",
                r.span.name,
                r.service
            );
        }
    }

    // The gateway's concurrent calls are children of its server span, and each service's
    // server span hangs under the gateway's client span for that call.
    let clients: Vec<_> = spans
        .iter()
        .filter(|r| r.service == "gateway" && r.span.kind == SpanKind::Client as i32)
        .collect();
    let methods: HashSet<String> = clients
        .iter()
        .filter_map(|r| attr(&r.span, "rpc.method"))
        .collect();
    for m in ["ListBooks", "ListPopularBooks"] {
        assert!(methods.contains(m), "{methods:?}");
    }
    // The panel's picks carry their titles and authors: no join with the marketplace.
    assert!(!methods.contains("BatchGetBooks"), "{methods:?}");
    for c in &clients {
        assert_eq!(c.span.parent_span_id, root.span.span_id, "{}", c.span.name);
        assert_eq!(attr(&c.span, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(attr(&c.span, "rpc.grpc.status_code").as_deref(), Some("0"));
    }
    for service in ["marketplace", "recommendations"] {
        let servers: Vec<_> = spans
            .iter()
            .filter(|r| r.service == service && r.span.kind == SpanKind::Server as i32)
            .collect();
        assert!(!servers.is_empty(), "{service}");
        for srv in servers {
            let parent = ids[&hex(&srv.span.parent_span_id)];
            assert_eq!(parent.service, "gateway");
            assert_eq!(parent.span.kind, SpanKind::Client as i32);
            assert_eq!(
                attr(&srv.span, "rpc.method"),
                attr(&parent.span, "rpc.method")
            );
            assert!(
                attr(&srv.span, "rpc.service")
                    .unwrap()
                    .starts_with("bookstore.")
            );
        }
    }

    // A failing call's span carries the error status.
    let failing = random_hex(16);
    let r = client
        .get(format!("{}/api/v1/books/99999", s.base_url))
        .header("traceparent", format!("00-{failing}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let spans = wait_for_trace(&collector, &failing, &["gateway", "marketplace"]).await;
    let get = spans
        .iter()
        .find(|r| {
            r.service == "gateway" && attr(&r.span, "rpc.method").as_deref() == Some("GetBook")
        })
        .expect("client span of GetBook");
    assert_eq!(
        get.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        attr(&get.span, "rpc.grpc.status_code").as_deref(),
        Some("5")
    );

    // Logs: the request's lines carry its trace id, in the gateway and in the services.
    for name in ["gateway", "marketplace"] {
        let lines = trace_lines(&s, name, &trace_id);
        assert!(
            !lines.is_empty(),
            "{name} logged nothing with trace {trace_id}:\n{}",
            s.log(name)
        );
        assert!(
            lines.iter().all(|l| l["trace_id"] == trace_id
                && l["span_id"].as_str().is_some_and(|s| s.len() == 16))
        );
    }
}

/// The JSON log lines of `name` that carry `trace_id`.
fn trace_lines(s: &Suite, name: &str, trace_id: &str) -> Vec<serde_json::Value> {
    s.log(name)
        .lines()
        .filter(|l| l.contains(trace_id))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect()
}

/// Without an exporter no OpenTelemetry span is built, but the trace still travels: every
/// process's log lines for one page view carry the caller's trace id, each with a span id of
/// its own, and the services' calls continue the gateway's trace rather than starting new ones.
#[tokio::test]
async fn without_an_exporter_logs_still_carry_one_trace_across_processes() {
    if Suite::is_external() {
        platform::database::testing::note_skip("tracing: reads the logs of a suite it started");
        return;
    }
    // Every page view asks for the popular panel (it is otherwise kept a second).
    let s = Suite::start_with(&[("POPULAR_CACHE_MS", "0")]).await;
    let trace_id = random_hex(16);
    let parent = random_hex(8);
    let page = reqwest::Client::new()
        .get(format!("{}/", s.base_url))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let mut span_ids = HashSet::new();
    for name in ["gateway", "marketplace", "recommendations"] {
        wait_until(
            &format!("{name} logs a line with trace {trace_id}"),
            Duration::from_secs(5),
            || async { !trace_lines(&s, name, &trace_id).is_empty() },
        )
        .await;
        for l in &trace_lines(&s, name, &trace_id) {
            assert_eq!(l["trace_id"], trace_id.as_str(), "{l}");
            let span = l["span_id"].as_str().unwrap_or_default();
            assert!(span.len() == 16 && span != parent, "{l}");
            span_ids.insert(span.to_owned());
        }
    }
    assert!(
        span_ids.len() >= 3,
        "one span per process at least: {span_ids:?}"
    );
}

#[tokio::test]
async fn no_password_or_token_reaches_a_log() {
    if Suite::is_external() {
        platform::database::testing::note_skip("tracing: reads the logs of a suite it started");
        return;
    }
    let s = Suite::start().await;
    let c = reqwest::Client::new();
    let email = format!("quiet-{}@example.org", unique());
    let password = format!("Pa55-{}", unique());
    let signed_up = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "display_name": "Q", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_up.status(),
        201,
        "{}",
        signed_up.text().await.unwrap()
    );
    let session: serde_json::Value = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {session}"));
    c.get(format!("{}/api/v1/me/ratings", s.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    c.post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    for name in ["gateway", "users", "recommendations"] {
        let log = s.log(name);
        assert!(
            log.contains("request answered") || log.contains("rpc handled"),
            "{name} logs requests"
        );
        assert!(!log.contains(&password), "{name} logged a password");
        assert!(!log.contains("wrong-password"), "{name} logged a password");
        assert!(!log.contains(token), "{name} logged a token");
    }
}

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded_on_both_sides() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "tracing: needs to point the suite at its own OTLP receiver",
        );
        return;
    }
    let (collector, endpoint) = start_collector().await;
    let s = Suite::start_options(SuiteOptions {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        env_for: vec![("gateway".into(), "REQUEST_TIMEOUT_MS".into(), "800".into())],
        ..SuiteOptions::default()
    })
    .await;
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

#[tokio::test]
async fn a_grpc_web_call_is_one_trace_from_the_caller_to_the_service() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "tracing: needs to point the suite at its own OTLP receiver",
        );
        return;
    }
    let (collector, endpoint) = start_collector().await;
    let s = Suite::start_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let (trace_id, parent) = (random_hex(16), random_hex(8));
    // GetBook { id: 1 } in one gRPC-Web frame, as a browser's generated client sends it.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/bookstore.marketplace.v1.MarketplaceService/GetBook",
            s.base_url
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .body(vec![0u8, 0, 0, 0, 2, 0x08, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = wait_for_trace(&collector, &trace_id, &["gateway", "marketplace"]).await;
    let by_id: HashMap<String, &Received> =
        spans.iter().map(|r| (hex(&r.span.span_id), r)).collect();
    let parent_of = |r: &Received| by_id.get(&hex(&r.span.parent_span_id)).copied();

    // caller → gateway HTTP span → gateway gRPC-Web call span → client span → marketplace.
    let http = spans
        .iter()
        .find(|r| hex(&r.span.parent_span_id) == parent)
        .expect("a span continuing the caller's");
    assert_eq!(http.service, "gateway");
    assert_eq!(
        http.span.name,
        "POST /bookstore.marketplace.v1.MarketplaceService/GetBook"
    );
    let call = spans
        .iter()
        .find(|r| {
            r.service == "gateway"
                && r.span.kind == SpanKind::Server as i32
                && r.span.span_id != http.span.span_id
        })
        .expect("the gateway's span of the call");
    assert_eq!(
        parent_of(call).map(|p| &p.span.span_id),
        Some(&http.span.span_id)
    );
    assert_eq!(attr(&call.span, "rpc.method").as_deref(), Some("GetBook"));
    assert_eq!(
        attr(&call.span, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    let client = spans
        .iter()
        .find(|r| r.service == "gateway" && r.span.kind == SpanKind::Client as i32)
        .expect("the gateway's client span");
    assert_eq!(
        parent_of(client).map(|p| &p.span.span_id),
        Some(&call.span.span_id)
    );
    let served = spans
        .iter()
        .find(|r| r.service == "marketplace" && r.span.kind == SpanKind::Server as i32)
        .expect("the marketplace's span");
    assert_eq!(
        parent_of(served).map(|p| &p.span.span_id),
        Some(&client.span.span_id)
    );
}
