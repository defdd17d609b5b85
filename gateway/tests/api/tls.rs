//! The gateway reaching a marketplace that serves mutual TLS (--upstream-tls-*), end to end.

use std::time::{Duration, Instant};

use axum::Router;
use clap::Parser;
use gateway::routes;
use tokio::{net::TcpListener, sync::oneshot};

use crate::{
    helpers::{app_with, get},
    pki::Ca,
};

/// The real marketplace serving TLS that requires a client certificate from `ca`; its URL.
async fn tls_marketplace(ca: &Ca) -> (String, oneshot::Sender<()>) {
    let server = ca.server();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let config = marketplace::Config::try_parse_from([
        "marketplace",
        "--tls-cert",
        server.cert.to_str().unwrap(),
        "--tls-key",
        server.key.to_str().unwrap(),
        "--tls-client-ca",
        ca.cert().to_str().unwrap(),
    ])
    .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(marketplace::run(grpc, admin, config, async move {
        let _ = rx.await;
    }));
    (format!("https://{addr}"), tx)
}

/// GET `uri` until it answers 200 or `within` has passed; the last status and body.
async fn get_until_ok(app: &Router, uri: &str, within: Duration) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, _, body) = get(app, uri).await;
        if status == 200 || start.elapsed() > within {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_gateway_serves_books_from_a_marketplace_over_mutual_tls() {
    let ca = Ca::new("services-ca");
    let (url, _stop) = tls_marketplace(&ca).await;
    let gateway = ca.client("gateway");
    let (ca_file, cert, key) = (
        ca.cert(),
        gateway.cert.to_str().unwrap().to_owned(),
        gateway.key.to_str().unwrap().to_owned(),
    );
    let app = app_with(
        routes(),
        &url,
        5_000,
        &[
            "--upstream-tls-ca",
            ca_file.to_str().unwrap(),
            "--upstream-tls-cert",
            &cert,
            "--upstream-tls-key",
            &key,
            "--upstream-tls-domain",
            "localhost",
        ],
    );
    let (status, body) = get_until_ok(&app, "/api/v1/books/1", Duration::from_secs(60)).await;
    assert_eq!(status, 200, "{body}");
    let book: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(book["id"], 1, "{body}");
}

#[tokio::test]
async fn without_its_client_certificate_the_gateway_gets_no_replica() {
    let ca = Ca::new("services-ca");
    let (url, _stop) = tls_marketplace(&ca).await;
    // Wait until the marketplace serves (through a gateway that has its certificate) ...
    let gateway = ca.client("gateway");
    let ca_file = ca.cert();
    let ca_file = ca_file.to_str().unwrap();
    let with_cert = app_with(
        routes(),
        &url,
        5_000,
        &[
            "--upstream-tls-ca",
            ca_file,
            "--upstream-tls-cert",
            gateway.cert.to_str().unwrap(),
            "--upstream-tls-key",
            gateway.key.to_str().unwrap(),
            "--upstream-tls-domain",
            "localhost",
        ],
    );
    let (status, body) = get_until_ok(&with_cert, "/api/v1/books/1", Duration::from_secs(60)).await;
    assert_eq!(status, 200, "{body}");
    // ... then one that trusts the CA but presents no certificate is refused: 503.
    let without = app_with(
        routes(),
        &url,
        2_000,
        &[
            "--upstream-tls-ca",
            ca_file,
            "--upstream-tls-domain",
            "localhost",
        ],
    );
    let (status, _, body) = get(&without, "/api/v1/books/1").await;
    assert_eq!(status, 503, "{body}");
    // And a plaintext gateway gets nothing either.
    let plain = app_with(routes(), &url.replace("https://", "http://"), 2_000, &[]);
    let (status, _, body) = get(&plain, "/api/v1/books/1").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn upstream_tls_flags_that_need_each_other_are_refused() {
    assert!(gateway::Config::try_parse_from(["gateway", "--upstream-tls-cert", "c.pem"]).is_err());
    assert!(gateway::Config::try_parse_from(["gateway", "--upstream-tls-domain", "x"]).is_err());
    let c = gateway::Config::try_parse_from(["gateway", "--upstream-tls-ca", "/no/such/ca.pem"])
        .unwrap();
    let err =
        gateway::upstream::Upstreams::new(&c.upstream_urls(), &platform::metrics::Metrics::new())
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("--upstream-tls-ca"), "{err}");

    let upstreams = |args: &[&str]| {
        let c = gateway::Config::try_parse_from(args).unwrap();
        gateway::upstream::Upstreams::new(&c.upstream_urls(), &platform::metrics::Metrics::new())
            .err()
            .map(|e| e.to_string())
    };
    let err = upstreams(&["gateway", "--users-url", "https://users:50053"]).unwrap();
    assert!(err.contains("https:// needs --upstream-tls-ca"), "{err}");
    let err = upstreams(&["gateway", "--users-url", "https://a:1,http://b:1"]).unwrap();
    assert!(err.contains("mixes"), "{err}");
}
