//! A test OTLP receiver: a tonic server implementing the trace collector, keeping every span it
//! is sent, and the waits and readings the tests make on it.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value as Any},
    trace::v1::Span,
};
use tests::{Suite, SuiteOptions, unique};
use tonic::{Request, Response, Status, transport::Server};

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) service: String,
    pub(crate) span: Span,
}

#[derive(Clone, Default)]
pub(crate) struct Collector(Arc<Mutex<Vec<Received>>>);

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

pub(crate) fn text(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

pub(crate) fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
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

/// A suite made as `options` says, exporting its spans to a receiver of this test's (every
/// batch within 100 ms); `None` after saying why when the suite is not this test's to configure.
pub(crate) async fn traced_suite(mut options: SuiteOptions) -> Option<(Collector, Suite)> {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "tracing: needs to point the suite at its own OTLP receiver",
        );
        return None;
    }
    let (collector, endpoint) = start_collector().await;
    options.env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]);
    Some((collector, Suite::start_options(options).await))
}

/// Waits (bounded) until the trace holds spans from every named service, then a little longer
/// for stragglers of the same batch.
pub(crate) async fn wait_for_trace(
    c: &Collector,
    trace_id: &str,
    services: &[&str],
) -> Vec<Received> {
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

pub(crate) fn random_hex(n: usize) -> String {
    unique().repeat(n).chars().take(n * 2).collect::<String>()
}
