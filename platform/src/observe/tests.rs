//! The observation layer's own tests: statuses read from every place a call can end.

use std::sync::{Arc, Mutex};

use super::*;

/// Records what it is told.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Observer for Log {
    type Call = String;
    fn start<B>(&self, service: &str, method: &str, _: &mut http::Request<B>) -> String {
        format!("{service}/{method}")
    }
    fn end(&self, call: String, code: i32) {
        self.0.lock().unwrap().push(format!("{call} {code}"));
    }
}

fn request(timeout: Option<&str>) -> http::Request<String> {
    let mut b = http::Request::builder().uri("/pkg.Svc/Get");
    if let Some(t) = timeout {
        b = b.header("grpc-timeout", t);
    }
    b.body(String::new()).unwrap()
}

async fn call(
    answer: http::Response<http_body_util::Full<bytes::Bytes>>,
    timeout: Option<&str>,
) -> Vec<String> {
    let log = Log::default();
    let svc = tower::service_fn(move |_req: http::Request<String>| {
        let answer = answer.clone();
        async move { Ok::<_, std::convert::Infallible>(answer) }
    });
    let mut svc = Observe::new(log.clone(), Side::Server).layer(svc);
    let resp = tower::ServiceExt::oneshot(&mut svc, request(timeout)).await;
    drop(resp);
    log.0.lock().unwrap().clone()
}

#[tokio::test]
async fn a_trailers_only_answer_ends_the_call_with_its_status() {
    let answer = http::Response::builder()
        .header("grpc-status", "5")
        .body(http_body_util::Full::default())
        .unwrap();
    assert_eq!(call(answer, None).await, ["pkg.Svc/Get 5"]);
}

#[tokio::test]
async fn a_body_dropped_unread_is_cancelled_unless_the_deadline_came() {
    let answer = http::Response::new(http_body_util::Full::default());
    assert_eq!(call(answer.clone(), Some("10S")).await, ["pkg.Svc/Get 1"]);
    // A 1 ms budget is within the slack: the caller's deadline had come.
    assert_eq!(call(answer, Some("1m")).await, ["pkg.Svc/Get 4"]);
}

#[tokio::test]
async fn trailers_end_the_call_once() {
    use http_body_util::BodyExt;
    let log = Log::default();
    let svc = tower::service_fn(|_req: http::Request<String>| async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ]));
        Ok::<_, std::convert::Infallible>(http::Response::new(body))
    });
    let svc = Observe::new(log.clone(), Side::Server).layer(svc);
    let resp = tower::ServiceExt::oneshot(svc, request(None))
        .await
        .unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_some());
    assert_eq!(*log.0.lock().unwrap(), ["pkg.Svc/Get 0"]);
}

/// Tells shed calls apart (as the access log does, to leave them out).
#[derive(Clone, Default)]
struct ShedAware(Log);

impl Observer for ShedAware {
    type Call = String;
    fn start<B>(&self, service: &str, method: &str, req: &mut http::Request<B>) -> String {
        self.0.start(service, method, req)
    }
    fn end(&self, call: String, code: i32) {
        self.0.end(call, code)
    }
    fn shed(&self, call: String) {
        self.0.0.lock().unwrap().push(format!("{call} shed"));
    }
}

#[tokio::test]
async fn a_shed_refusal_is_told_as_shed_and_is_resource_exhausted_to_the_others() {
    let mut answer = http::Response::builder()
        .header("grpc-status", "8")
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    answer.extensions_mut().insert(crate::shed::ShedRefusal);
    let (log, aware) = (Log::default(), ShedAware::default());
    let svc = tower::service_fn(move |_req: http::Request<String>| {
        let answer = answer.clone();
        async move { Ok::<_, std::convert::Infallible>(answer) }
    });
    let svc = Observe::new((log.clone(), aware.clone()), Side::Server).layer(svc);
    drop(tower::ServiceExt::oneshot(svc, request(None)).await);
    assert_eq!(*log.0.lock().unwrap(), ["pkg.Svc/Get 8"]);
    assert_eq!(*aware.0.0.lock().unwrap(), ["pkg.Svc/Get shed"]);
    // The same status from a handler is an ordinary end.
    let aware = ShedAware::default();
    let svc = tower::service_fn(|_req: http::Request<String>| async {
        let plain = http::Response::builder()
            .header("grpc-status", "8")
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .unwrap();
        Ok::<_, std::convert::Infallible>(plain)
    });
    let svc = Observe::new(aware.clone(), Side::Server).layer(svc);
    drop(tower::ServiceExt::oneshot(svc, request(None)).await);
    assert_eq!(*aware.0.0.lock().unwrap(), ["pkg.Svc/Get 8"]);
}

/// An observer nobody listens to (its spans or lines filtered out).
#[derive(Clone, Default)]
struct Idle(Log);

impl Observer for Idle {
    type Call = String;
    fn start<B>(&self, service: &str, method: &str, req: &mut http::Request<B>) -> String {
        self.0.start(service, method, req)
    }
    fn end(&self, call: String, code: i32) {
        self.0.end(call, code)
    }
    fn active(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn an_inactive_observer_is_passed_by() {
    use http_body_util::BodyExt;
    let idle = Idle::default();
    let svc = tower::service_fn(|_req: http::Request<String>| async {
        let answer = http::Response::builder()
            .header("grpc-status", "5")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
            .unwrap();
        Ok::<_, std::convert::Infallible>(answer)
    });
    let svc = Observe::new(idle.clone(), Side::Server).layer(svc);
    let resp = tower::ServiceExt::oneshot(svc, request(Some("1m")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["grpc-status"], "5");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"x");
    assert!(idle.0.0.lock().unwrap().is_empty());
}

/// Tells a shared log when it starts (and inside which span) and ends; `span` makes it
/// enter a span of that name, as the span observer does.
#[derive(Clone)]
struct Named {
    name: &'static str,
    span: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Observer for Named {
    type Call = Option<tracing::Span>;
    fn start<B>(&self, _: &str, _: &str, _: &mut http::Request<B>) -> Self::Call {
        let inside = tracing::Span::current()
            .metadata()
            .map_or("no span", |m| m.name());
        self.log
            .lock()
            .unwrap()
            .push(format!("start {} in {inside}", self.name));
        self.span.then(|| tracing::info_span!("outer span"))
    }
    fn enter(call: &Self::Call) -> Option<tracing::span::Entered<'_>> {
        call.as_ref().map(tracing::Span::enter)
    }
    fn end(&self, _: Self::Call, code: i32) {
        self.log
            .lock()
            .unwrap()
            .push(format!("end {} {code}", self.name));
    }
}

#[tokio::test]
async fn paired_observers_nest_as_layers_would() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let log = Arc::new(Mutex::new(Vec::new()));
    let named = |name, span| Named {
        name,
        span,
        log: log.clone(),
    };
    let idle = Idle::default();
    let observers = (
        named("span", true),
        (named("metrics", false), (idle.clone(), named("log", false))),
    );
    let svc = tower::service_fn(|_req: http::Request<String>| async {
        let answer = http::Response::builder()
            .header("grpc-status", "5")
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .unwrap();
        Ok::<_, std::convert::Infallible>(answer)
    });
    let svc = Observe::new(observers, Side::Server).layer(svc);
    let resp = tower::ServiceExt::oneshot(svc, request(None)).await;
    drop(resp);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start span in no span",
            "start metrics in outer span",
            "start log in outer span",
            "end log 5",
            "end metrics 5",
            "end span 5",
        ]
    );
    assert!(
        idle.0.0.lock().unwrap().is_empty(),
        "an idle part is skipped"
    );
}
