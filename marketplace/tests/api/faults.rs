//! Deadlines, shedding and injected faults, as a caller and the service's own metrics see them.

use std::time::{Duration, Instant};

use marketplace::SERVICE_NAME;
use protos::marketplace::v1::GetBookRequest;
use tonic::Code;
use tonic_health::ServingStatus;

use crate::helpers::{TestService, spawn_service, spawn_serving};

async fn admin(s: &TestService, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .request(method, format!("http://{}{path}", s.admin))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn metrics(s: &TestService) -> String {
    admin(s, reqwest::Method::GET, "/metrics", "").await.1
}

fn get_book(id: i64, timeout: Duration) -> tonic::Request<GetBookRequest> {
    let mut r = tonic::Request::new(GetBookRequest { id });
    r.set_timeout(timeout);
    r
}

fn handled(code: &str) -> String {
    format!(
        r#"grpc_server_handled_total{{grpc_code="{code}",grpc_method="GetBook",grpc_service="{SERVICE_NAME}"}}"#
    )
}

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded_on_the_wire_and_in_the_metrics() {
    let s = spawn_service().await;
    let (status, _) = admin(
        &s,
        reqwest::Method::PUT,
        "/faults",
        r#"{"rules":[{"method":"GetBook","latency_ms":2000}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let e = s
        .client()
        .get_book(get_book(1, Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    // The server's own request timeout, with no caller deadline at all.
    let short = spawn_serving(&["--request-timeout-ms", "150"]).await;
    admin(
        &short,
        reqwest::Method::PUT,
        "/faults",
        r#"{"rules":[{"latency_ms":1000}]}"#,
    )
    .await;
    let e = short
        .client()
        .get_book(GetBookRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    for svc in [&s, &short] {
        let text = metrics(svc).await;
        assert!(
            text.contains(&format!("{} 1", handled("DeadlineExceeded"))),
            "{text}"
        );
        assert!(!text.contains(&handled("Canceled")), "{text}");
        assert!(text.contains(&format!(
            r#"faults_injected_total{{fault="latency",grpc_method="GetBook",grpc_service="{SERVICE_NAME}"}} 1"#
        )));
    }
}

#[tokio::test]
async fn injected_errors_and_not_ready_switch_on_and_off_at_runtime() {
    let s = spawn_service().await;
    let (status, body) = admin(
        &s,
        reqwest::Method::PUT,
        "/faults",
        r#"{"rules":[{"error_rate":1.5}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("rules[0].error_rate"), "{body}");

    admin(
        &s,
        reqwest::Method::PUT,
        "/faults",
        r#"{"rules":[{"method":"GetBook","error_rate":1.0,"error_code":"INTERNAL"}],"not_ready":true}"#,
    )
    .await;
    let e = s
        .client()
        .get_book(GetBookRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(e.message(), "injected fault");
    let ready = reqwest::get(format!("http://{}/readyz", s.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    platform::health::wait_for_status(
        s.channel.clone(),
        SERVICE_NAME,
        ServingStatus::NotServing,
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    let (status, _) = admin(&s, reqwest::Method::DELETE, "/faults", "").await;
    assert_eq!(status, 204);
    s.client().get_book(GetBookRequest { id: 1 }).await.unwrap();
    platform::health::wait_for_status(
        s.channel.clone(),
        SERVICE_NAME,
        ServingStatus::Serving,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let text = metrics(&s).await;
    assert!(
        text.contains(&format!("{} 1", handled("Internal"))),
        "{text}"
    );
}

#[tokio::test]
async fn a_burst_beyond_the_limit_is_shed_at_once_with_a_pushback() {
    let s = spawn_serving(&["--concurrency-limit", "2"]).await;
    admin(
        &s,
        reqwest::Method::PUT,
        "/faults",
        r#"{"rules":[{"method":"GetBook","latency_ms":500}]}"#,
    )
    .await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let mut c = s.client();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = c.get_book(GetBookRequest { id: 1 }).await;
                (r.map(|_| ()), started.elapsed())
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for c in calls {
        let (r, took) = c.await.unwrap();
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert_eq!(e.metadata().get("grpc-retry-pushback-ms").unwrap(), "100");
                assert!(
                    took < Duration::from_millis(300),
                    "shed at once, not queued: {took:?}"
                );
                shed += 1;
            }
        }
    }
    println!("burst of 10 at limit 2: {ok} served, {shed} shed");
    assert_eq!((ok, shed), (2, 8));
}
