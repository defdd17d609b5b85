//! The gateway under stress: drained with SIGTERM under load, and a burst beyond its limit.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use tests::{Suite, SuiteOptions, metric, wait_until};

use crate::{
    book_urls,
    load::{Load, assert_clean},
    skip_external,
};

#[tokio::test]
async fn sigterm_to_the_gateway_answers_every_accepted_request_and_ends_open_streams() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        env_for: vec![("gateway".into(), "SHUTDOWN_DELAY_MS".into(), "500".into())],
        ..SuiteOptions::default()
    })
    .await;
    // A slow marketplace keeps requests in flight across the signal.
    let slow = reqwest::Client::new()
        .put(format!("{}/faults", s.admin("marketplace").unwrap()))
        .body(r#"{"rules":[{"method":"GetBook","latency_ms":150}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::OK, "the fault is set");
    let c = Client::new();
    let mut stream = c
        .get(format!("{}/api/v1/ratings/stream", s.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Stand in for the load balancer: stop sending once /readyz says so.
    let ready_url = format!("{}/readyz", s.admin("gateway").unwrap());
    let load = Load::start(c.clone(), book_urls(&s, 200), 8, 5_000);
    let lb = {
        let stop = load.stop.clone();
        let c = c.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                let ready = c
                    .get(&ready_url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ready {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let signalled = Instant::now();
    s.signal("gateway", "TERM").await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    let stream_ended = signalled.elapsed();
    let status = s.wait_exit("gateway", Duration::from_secs(10)).await;
    lb.await.unwrap();
    let t = load.finish().await;
    println!("SSE stream ended {stream_ended:?} after SIGTERM; gateway exit {status:?}");
    assert!(ended.is_ok(), "the open stream ends within the drain");
    assert!(status.is_some_and(|s| s.success()));
    assert_clean("SIGTERM of the gateway under load", &t);
}

#[tokio::test]
async fn a_burst_beyond_the_gateway_limit_is_shed_with_retry_after_not_queued() {
    if skip_external() {
        return;
    }
    const LIMIT: usize = 4;
    const BURST: usize = 16;
    // How long each admitted request holds its permit: long enough that the burst is answered
    // while they hold, however loaded the machine.
    const HOLD: Duration = Duration::from_millis(1500);
    let s = Suite::start_options(SuiteOptions {
        env_for: vec![(
            "gateway".into(),
            "CONCURRENCY_LIMIT".into(),
            LIMIT.to_string(),
        )],
        ..SuiteOptions::default()
    })
    .await;
    let (gateway, market) = (
        s.admin("gateway").unwrap().to_owned(),
        s.admin("marketplace").unwrap().to_owned(),
    );
    let slow = Client::new()
        .put(format!("{market}/faults"))
        .body(format!(
            r#"{{"rules":[{{"method":"GetBook","latency_ms":{}}}]}}"#,
            HOLD.as_millis()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::OK, "the fault is set");
    let held = || {
        metric(
            &market,
            "faults_injected_total",
            &["grpc_method=\"GetBook\""],
        )
    };
    let (held_before, shed_before) = (
        held().await,
        metric(&gateway, "http_requests_shed_total", &[]).await,
    );

    // Each request answers its status, Retry-After, how long it took and when it ended.
    let c = Client::new();
    let send = |book: usize| {
        let (c, url) = (c.clone(), format!("{}/api/v1/books/{book}", s.base_url));
        tokio::spawn(async move {
            let started = Instant::now();
            let r = c.get(url).send().await.unwrap();
            let ended = Instant::now();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status(), retry_after, ended - started, ended)
        })
    };
    // The limit's worth of requests, each held by the marketplace: every permit is taken.
    let holders: Vec<_> = (1..=LIMIT).map(&send).collect();
    wait_until(
        "every admitted request to reach the slow marketplace",
        Duration::from_secs(30),
        || async { held().await - held_before == LIMIT as f64 },
    )
    .await;
    let burst: Vec<_> = (0..BURST).map(|i| send(LIMIT + 1 + i)).collect();
    let mut shed = Vec::new();
    for b in burst {
        let (status, retry_after, took, ended) = b.await.unwrap();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "a request beyond the limit, after {took:?}"
        );
        assert_eq!(retry_after.as_deref(), Some("1"));
        shed.push((took, ended));
    }
    let mut served = Vec::new();
    for h in holders {
        let (status, _, took, ended) = h.await.unwrap();
        assert_eq!(status, StatusCode::OK, "an admitted request");
        assert!(
            took >= HOLD,
            "served without the injected latency: {took:?}"
        );
        served.push(ended);
    }
    // Not queued: every refusal came back while the admitted requests still held every permit,
    // so none of them waited for one.
    let first_served = served.iter().min().unwrap();
    let slowest_shed = shed.iter().map(|(took, _)| *took).max().unwrap();
    assert!(
        shed.iter().all(|(_, ended)| ended < first_served),
        "a refusal came back after a permit was given back: queued"
    );
    let counted = metric(&gateway, "http_requests_shed_total", &[]).await - shed_before;
    assert_eq!(counted, BURST as f64, "the gateway counted what it shed");
    println!(
        "burst of {} at a gateway limit of {LIMIT}: {} served in >= {HOLD:?}, {} shed, \
         the slowest refusal in {slowest_shed:?}",
        LIMIT + BURST,
        served.len(),
        shed.len()
    );

    // The permits came back: with the fault gone, the next request is served.
    let clear = Client::new()
        .delete(format!("{market}/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        clear.status(),
        StatusCode::NO_CONTENT,
        "the fault is cleared"
    );
    let (status, ..) = send(1).await.unwrap();
    assert_eq!(status, StatusCode::OK, "a request after the burst");
    s.stop().await;
}
