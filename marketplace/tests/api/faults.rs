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

/// The sum of the samples of `name` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_burst_beyond_the_limit_is_shed_at_once_with_a_pushback() {
    const LIMIT: usize = 2;
    const BURST: usize = 8;
    // How long each admitted call holds its permit: long enough that the burst is answered
    // while they hold, however loaded the machine.
    const HOLD: Duration = Duration::from_millis(1000);
    let s = spawn_serving(&["--concurrency-limit", &LIMIT.to_string()]).await;
    let (status, _) = admin(
        &s,
        reqwest::Method::PUT,
        "/faults",
        &format!(
            r#"{{"rules":[{{"method":"GetBook","latency_ms":{}}}]}}"#,
            HOLD.as_millis()
        ),
    )
    .await;
    assert_eq!(status, 200, "the fault is set");
    let injected = r#"grpc_method="GetBook""#;
    let shed_total = "grpc_server_shed_total";
    let before = metrics(&s).await;
    let (held_before, shed_before) = (
        sample(&before, "faults_injected_total", &[injected]),
        sample(&before, shed_total, &[]),
    );

    // Each call answers its outcome, how long it took and when it ended.
    let call = || {
        let mut c = s.client();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = c.get_book(GetBookRequest { id: 1 }).await;
            let ended = Instant::now();
            (r.map(|_| ()), ended - started, ended)
        })
    };
    // The limit's worth of calls, each held by the injected latency: every permit is taken.
    let holders: Vec<_> = (0..LIMIT).map(|_| call()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&metrics(&s).await, "faults_injected_total", &[injected]) - held_before
        < LIMIT as f64
    {
        assert!(
            Instant::now() < deadline,
            "the admitted calls never reached the handler"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let burst: Vec<_> = (0..BURST).map(|_| call()).collect();
    let mut shed = Vec::new();
    for c in burst {
        let (r, took, ended) = c.await.unwrap();
        let e = r.expect_err("a call beyond the limit is shed");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert_eq!(e.metadata().get("grpc-retry-pushback-ms").unwrap(), "100");
        shed.push((took, ended));
    }
    let mut served = Vec::new();
    for c in holders {
        let (r, took, ended) = c.await.unwrap();
        r.expect("an admitted call is served");
        assert!(
            took >= HOLD,
            "served without the injected latency: {took:?}"
        );
        served.push(ended);
    }
    // Not queued: every refusal came back while the admitted calls still held every permit.
    let first_served = served.iter().min().unwrap();
    assert!(
        shed.iter().all(|(_, ended)| ended < first_served),
        "a refusal came back after a permit was given back: queued"
    );
    let shed_counted = sample(&metrics(&s).await, shed_total, &[]) - shed_before;
    assert_eq!(
        shed_counted, BURST as f64,
        "the server counted what it shed"
    );
    let slowest = shed.iter().map(|(took, _)| *took).max().unwrap();
    println!(
        "burst of {} at limit {LIMIT}: {} served in >= {HOLD:?}, {} shed, the slowest in {slowest:?}",
        LIMIT + BURST,
        served.len(),
        shed.len()
    );
}
