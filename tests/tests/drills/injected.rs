//! Runs with a fault injected through a service's admin port: a slow marketplace, recommendations
//! failing, users not ready. Each must degrade only what depends on the faulty service.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{Suite, metric, wait_until};

use crate::{RECOMMENDATIONS, run::loadgen, skip_external};

pub(crate) async fn put_faults(s: &Suite, service: &str, faults: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/faults", s.admin(service).unwrap()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

pub(crate) async fn clear_faults(s: &Suite, service: &str) {
    let r = reqwest::Client::new()
        .delete(format!("{}/faults", s.admin(service).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn slow_marketplace_pages_still_answer_and_book_latency_shows_it() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let market = s.admin("marketplace").unwrap().to_owned();
    let route = |r: &str| format!("route=\"{r}\"");
    let api = route("/api/v1/books/{id}");
    let page = route("/books/{id}");
    let before = (
        metric(&gateway, "http_request_duration_seconds_count", &[&api]).await,
        metric(&gateway, "http_request_duration_seconds_sum", &[&api]).await,
        metric(
            &gateway,
            "http_request_duration_seconds_bucket",
            &[&api, "le=\"0.25\""],
        )
        .await,
        metric(&gateway, "http_request_duration_seconds_count", &[&page]).await,
    );

    put_faults(
        &s,
        "marketplace",
        json!({"rules":[{"method":"GetBook","latency_ms":300}]}),
    )
    .await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "30",
            "--requests",
            "120",
            "--weights",
            "book_page=20,book_api=20,feed=0,signup=0,signin=0,rate=0,for_you=0",
            "--seed",
            "2",
        ],
    )
    .await;
    clear_faults(&s, "marketplace").await;

    // Every page and API call still answered 200, only slower.
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["total"], 0, "{:#}", run.summary);
    for step in ["book_page", "book_api"] {
        assert_eq!(run.statuses(step), vec![200], "{step}");
        let p99 = run.step(step)["latency_ms"]["p99"].as_f64().unwrap();
        let p50 = run.step(step)["latency_ms"]["p50"].as_f64().unwrap();
        println!("{step}: p50 {p50} ms, p99 {p99} ms with 300 ms on GetBook");
        assert!(p50 >= 300.0 && p99 >= 300.0, "{step}: p50 {p50}, p99 {p99}");
    }
    // Steps that do not call GetBook stay fast.
    let browse = run.step("browse")["latency_ms"]["p50"].as_f64().unwrap();
    assert!(browse < 300.0, "browse p50 {browse} ms");

    // The marketplace counted what it injected; the gateway's latency histogram moved, all of
    // it above 250 ms for the book routes.
    let book_api = run.count("book_api", "requests") as f64;
    let injected = metric(
        &market,
        "faults_injected_total",
        &["fault=\"latency\"", "grpc_method=\"GetBook\""],
    )
    .await;
    assert!(
        injected >= book_api,
        "faults_injected_total {injected} < {book_api}"
    );
    let after = (
        metric(&gateway, "http_request_duration_seconds_count", &[&api]).await,
        metric(&gateway, "http_request_duration_seconds_sum", &[&api]).await,
        metric(
            &gateway,
            "http_request_duration_seconds_bucket",
            &[&api, "le=\"0.25\""],
        )
        .await,
        metric(&gateway, "http_request_duration_seconds_count", &[&page]).await,
    );
    let (count, sum) = (after.0 - before.0, after.1 - before.1);
    println!(
        "gateway http_request_duration_seconds{{route=/api/v1/books/{{id}}}}: +{count} requests, +{sum:.2} s, le=0.25 +{}",
        after.2 - before.2
    );
    assert!(
        count >= book_api,
        "count moved by {count}, loadgen sent {book_api}"
    );
    assert!(
        sum >= 0.3 * count,
        "sum moved by {sum} s over {count} requests"
    );
    assert_eq!(
        after.2 - before.2,
        0.0,
        "no book API request was under 250 ms"
    );
    assert!(after.3 - before.3 >= run.count("book_page", "requests") as f64);
    s.stop().await;
}

#[tokio::test]
async fn recommendations_failing_degrade_pages_and_fail_only_their_routes() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let recs = s.admin("recommendations").unwrap().to_owned();
    let calls = |code: &'static str| {
        let gateway = gateway.clone();
        async move {
            let code_label = format!("grpc_code=\"{code}\"");
            let mut labels = vec![RECOMMENDATIONS];
            if !code.is_empty() {
                labels.push(&code_label);
            }
            metric(&gateway, "grpc_client_handled_total", &labels).await
        }
    };
    let before = (calls("Unavailable").await, calls("").await);

    put_faults(
        &s,
        "recommendations",
        json!({"rules":[{"error_rate":1.0,"error_code":"UNAVAILABLE"}]}),
    )
    .await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "40",
            "--requests",
            "200",
            "--accounts",
            "3",
            "--feed-time",
            "1s",
            "--weights",
            "feed=3",
            "--expect-status",
            "recommendations:503",
            "--seed",
            "3",
        ],
    )
    .await;
    clear_faults(&s, "recommendations").await;

    // Expected errors, and only those: the run passes with --max-error-rate 0.
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    assert!(run.summary["errors"]["expected"].as_u64().unwrap() > 0);
    // Pages leave the section out and answer 200; catalog routes are untouched.
    for step in ["home", "book_page", "book_api", "browse", "search"] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(
            run.statuses(step),
            vec![200],
            "{step}: {:#}",
            run.step(step)
        );
    }
    // The API's recommendation routes answer 503, every time.
    for step in ["similar", "popular"] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(
            run.statuses(step),
            vec![503],
            "{step}: {:#}",
            run.step(step)
        );
    }
    for step in ["rate", "for_you", "feed"] {
        let st = run.statuses(step);
        assert!(
            !st.is_empty() && st.iter().all(|&c| c == 503),
            "{step}: {st:?}"
        );
    }

    // loadgen's traceparent was continued by the gateway: an error's trace id is in its log.
    let samples = run.summary["error_samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|e| e["expected"] == true));
    let trace = samples[0]["trace_id"].as_str().unwrap();
    wait_until(
        "the gateway logged the trace id loadgen sent",
        Duration::from_secs(5),
        || async { s.log("gateway").contains(trace) },
    )
    .await;

    // What the dashboards and the alert see: faults counted by recommendations, and the
    // gateway's client calls failing Unavailable, the series under BookstoreUpstreamErrors
    // (service_grpc_service:grpc_client_errors:ratio_rate5m > 0.05).
    let injected = metric(&recs, "faults_injected_total", &["fault=\"error\""]).await;
    let after = (calls("Unavailable").await, calls("").await);
    let (unavailable, all) = (after.0 - before.0, after.1 - before.1);
    println!(
        "faults_injected_total{{fault=error}} {injected}; gateway grpc_client_handled_total to recommendations: +{all}, Unavailable +{unavailable} ({:.0}%)",
        100.0 * unavailable / all.max(1.0)
    );
    assert!(injected > 0.0);
    assert!(unavailable > 0.0);
    assert!(
        unavailable / all > 0.05,
        "the alert's ratio: {unavailable}/{all}"
    );
    s.stop().await;
}

#[tokio::test]
async fn users_not_ready_leave_the_balancer_sign_in_503_and_catalog_answers() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let users = s.admin("users").unwrap().to_owned();
    let ready_users = || {
        let gateway = gateway.clone();
        async move {
            metric(
                &gateway,
                "gateway_upstream_ready_replicas",
                &["upstream=\"users\""],
            )
            .await
        }
    };
    assert_eq!(ready_users().await, 1.0);

    put_faults(&s, "users", json!({"not_ready": true})).await;
    let readyz = reqwest::get(format!("{users}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    wait_until(
        "the gateway took users out of its balancer",
        Duration::from_secs(10),
        || async { ready_users().await == 0.0 },
    )
    .await;
    let signin = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": "nobody@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(signin.headers().contains_key("retry-after"));

    let run = loadgen(
        &s,
        &[
            "--rate",
            "40",
            "--requests",
            "160",
            "--accounts",
            "3",
            "--weights",
            "feed=0",
            "--expect-status",
            "signup+signin:503",
            "--seed",
            "4",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    for step in ["signup", "signin"] {
        let st = run.statuses(step);
        assert!(st.iter().all(|&c| c == 503), "{step}: {st:?}");
    }
    assert!(run.count("signup", "requests") + run.count("signin", "requests") > 0);
    for step in [
        "home",
        "book_page",
        "book_api",
        "browse",
        "search",
        "popular",
        "similar",
    ] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(run.statuses(step), vec![200], "{step}");
    }

    clear_faults(&s, "users").await;
    wait_until(
        "users back in the balancer",
        Duration::from_secs(10),
        || async { ready_users().await == 1.0 },
    )
    .await;
    s.stop().await;
}
