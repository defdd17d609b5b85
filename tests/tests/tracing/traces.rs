//! One call is one trace: a page view across gateway, marketplace and recommendations, and a
//! gRPC-Web call from the caller to the service.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use tests::SuiteOptions;

use crate::{
    collector::{Received, attr, hex, random_hex, traced_suite, wait_for_trace},
    logs::trace_lines,
};

#[tokio::test]
async fn one_page_view_is_one_trace_across_gateway_marketplace_and_recommendations() {
    // Every page view asks for the popular panel and the grid (each otherwise kept a second).
    let Some((collector, s)) = traced_suite(SuiteOptions {
        env: vec![
            ("POPULAR_CACHE_MS".into(), "0".into()),
            ("GRID_CACHE_MS".into(), "0".into()),
        ],
        ..SuiteOptions::default()
    })
    .await
    else {
        return;
    };
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

#[tokio::test]
async fn a_grpc_web_call_is_one_trace_from_the_caller_to_the_service() {
    let Some((collector, s)) = traced_suite(SuiteOptions::default()).await else {
        return;
    };
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
