//! Runs with no fault: no unexpected error, and a warm-up that is sent but left out of the summary.

use std::time::Duration;

use tests::{Suite, metric, unique, wait_until};

use crate::run::loadgen;

#[tokio::test]
async fn no_fault_a_bounded_run_sees_no_unexpected_error() {
    let s = Suite::start().await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "50",
            "--requests",
            "200",
            "--accounts",
            "4",
            "--account-prefix",
            &format!("drill-{}", unique()),
            "--feed-time",
            "1s",
            // The suite's gateway allows sign-ins in bulk; the default budget is for one
            // gateway's default AUTH_RATE_PER_MINUTE.
            "--auth-per-minute",
            "0",
            "--seed",
            "1",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["passed"], true);
    assert_eq!(run.summary["requests"], 200);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    assert_eq!(run.summary["mode"], "open");
    // The mix is the shoppers' one: pages, the API, accounts.
    for step in ["home", "book_page", "book_api", "browse", "signup"] {
        assert!(
            run.count(step, "requests") > 0,
            "no {step} in {:#}",
            run.summary
        );
    }
    for q in ["p50", "p90", "p99", "p999"] {
        assert!(run.summary["latency_ms"][q].as_f64().unwrap() > 0.0);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_warmup_ramps_up_and_is_sent_but_left_out_of_the_summary() {
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let api = "route=\"/api/v1/books/{id}\"";
    let count = "http_request_duration_seconds_count";
    let before = metric(&gateway, count, &[api]).await;
    let started = std::time::Instant::now();
    let run = loadgen(
        &s,
        &[
            "--rate",
            "200",
            "--warmup",
            "1s",
            "--requests",
            "100",
            "--duration",
            "0",
            "--weights",
            "home=0,browse=0,search=0,book_page=0,similar=0,popular=0,signup=0,signin=0,rate=0,for_you=0,feed=0,book_api=1",
            "--seed",
            "3",
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    // The summary holds the measured steps only, and their own time.
    assert_eq!(run.summary["requests"], 100, "{:#}", run.summary);
    assert_eq!(run.summary["warmup_s"], 1.0);
    // loadgen's own lateness is reported beside the latency.
    let lag = &run.summary["schedule_lag"];
    let (max_ms, late) = (
        lag["max_ms"].as_f64().unwrap(),
        lag["late_over_1ms"].as_u64().unwrap(),
    );
    // The two figures agree: some step was more than 1 ms late exactly when the worst one was.
    assert!(max_ms.is_finite() && max_ms > 0.0, "{lag}");
    assert_eq!(late > 0, max_ms > 1.0, "{lag}");
    // The measured time is the measured steps' own: at least their schedule (the 100th starts
    // 99 intervals after the first, at 200/s), and the warm-up before it is not in it (the run
    // as seen from outside held both). A loaded machine only makes both longer.
    let elapsed = run.summary["elapsed_s"].as_f64().unwrap();
    let warmup = run.summary["warmup_s"].as_f64().unwrap();
    let schedule = 99.0 / 200.0;
    // (To the millisecond: the figures are rounded floats.)
    assert!(elapsed >= schedule - 1e-3, "measured for {elapsed} s");
    assert!(
        took.as_secs_f64() >= warmup + elapsed,
        "the summary's {elapsed} s include the {warmup} s warm-up: the run took {took:?}"
    );
    // The ramp (200/s reached linearly over 1 s: 100 steps) went to the gateway too.
    wait_until(
        "the gateway to count the 200 book requests",
        Duration::from_secs(30),
        || async { metric(&gateway, count, &[api]).await - before == 200.0 },
    )
    .await;
    s.stop().await;
}
