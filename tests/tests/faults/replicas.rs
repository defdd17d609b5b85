//! Marketplace replicas under load: one killed, one drained with SIGTERM.

use std::time::{Duration, Instant};

use reqwest::Client;
use tests::{Suite, SuiteOptions, metric, wait_until};

use crate::{
    GET_BOOK_OK, MapEq, book_urls,
    load::{Load, assert_clean},
    ready_replicas, skip_external,
};

#[tokio::test]
async fn two_replicas_share_the_load_and_a_killed_one_costs_no_failed_request() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        marketplace_replicas: 2,
        ..SuiteOptions::default()
    })
    .await;
    wait_until(
        "both replicas in the balancer",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let c = Client::new();
    let t = Load::start(c.clone(), book_urls(&s, 200), 8, 50)
        .await_all()
        .await;
    assert_clean("spread", &t);
    let mut shares = Vec::new();
    for name in ["marketplace", "marketplace-2"] {
        let n = metric(
            s.admin(name).unwrap(),
            "grpc_server_handled_total",
            &[GET_BOOK_OK, "grpc_code=\"OK\""],
        )
        .await;
        shares.push(n);
    }
    println!(
        "GetBook calls per replica over {} requests: {shares:?}",
        t.sent
    );
    assert!(
        shares.iter().all(|&n| n >= t.sent as f64 * 0.2),
        "both replicas get a fair share: {shares:?}"
    );

    // Kill one mid-load: in-flight calls on it are retried on the other.
    let load = Load::start(c.clone(), book_urls(&s, 500), 8, 5_000);
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.signal("marketplace-2", "KILL").await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let t = load.finish().await;
    let retries = metric(
        s.admin("gateway").unwrap(),
        "grpc_client_retries_total",
        &["outcome=\"retried\""],
    )
    .await;
    println!("retries after SIGKILL: {retries}");
    assert_clean("SIGKILL of one replica under load", &t);
    assert_eq!(ready_replicas(&s, "marketplace").await, 1.0);

    // It comes back and gets calls again by itself.
    s.restart("marketplace-2").await;
    wait_until(
        "the restarted replica rejoins",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let t = Load::start(c, book_urls(&s, 100), 4, 25).await_all().await;
    assert_clean("after restart", &t);
    let back = metric(
        s.admin("marketplace-2").unwrap(),
        "grpc_server_handled_total",
        &[GET_BOOK_OK],
    )
    .await;
    println!("the restarted replica served {back} of {} calls", t.sent);
    assert!(back > 0.0);
}

#[tokio::test]
async fn sigterm_to_a_replica_under_load_loses_nothing_and_health_turns_first() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start_options(SuiteOptions {
        marketplace_replicas: 2,
        env_for: vec![(
            "marketplace".into(),
            "SHUTDOWN_DELAY_MS".into(),
            "300".into(),
        )],
        ..SuiteOptions::default()
    })
    .await;
    wait_until(
        "both replicas in the balancer",
        Duration::from_secs(10),
        || ready_replicas(&s, "marketplace").map_eq(2.0),
    )
    .await;
    let addr = s.grpc_addr("marketplace-2").unwrap().to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let t0 = Instant::now();
    let not_serving = tokio::spawn(async move {
        platform::health::wait_for_status(
            channel,
            "bookstore.marketplace.v1.MarketplaceService",
            tonic_health::ServingStatus::NotServing,
            Duration::from_secs(20),
        )
        .await
        .map(|()| t0.elapsed())
    });
    let load = Load::start(Client::new(), book_urls(&s, 500), 8, 5_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.signal("marketplace-2", "TERM").await;
    // When does the listener close? Connect until refused (bounded).
    let mut closed = None;
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = s.wait_exit("marketplace-2", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = load.finish().await;
    let not_serving = not_serving
        .await
        .unwrap()
        .expect("NOT_SERVING seen on Watch");
    let closed = closed.expect("the listener closed");
    println!("NOT_SERVING at {not_serving:?}, listener closed at {closed:?}, exit {status:?}");
    assert!(
        not_serving < closed,
        "health turns before the listener closes"
    );
    assert!(status.is_some_and(|s| s.success()), "a clean exit");
    assert_clean("SIGTERM of one replica under load", &t);
}
