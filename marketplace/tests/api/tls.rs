//! TLS and mutual TLS: the marketplace started with --tls-cert, --tls-key and --tls-client-ca
//! answers only clients that trust its CA and present a certificate signed by the client CA.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use marketplace::{Config, SERVICE_NAME};
use protos::marketplace::v1::{
    GetBookRequest, marketplace_service_client::MarketplaceServiceClient,
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::ServingStatus;

use crate::pki::Ca;

/// The marketplace serving TLS with `flags`; its address, and the sender that stops it.
async fn spawn_tls(flags: &[&str]) -> (SocketAddr, oneshot::Sender<()>) {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let mut argv = vec!["marketplace"];
    argv.extend_from_slice(flags);
    let config = Config::try_parse_from(argv).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(marketplace::run(grpc, admin, config, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn connect(
    addr: SocketAddr,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls.domain_name("localhost"))
        .unwrap()
        .connect()
        .await
}

async fn get_book(channel: Channel) -> Result<String, tonic::Status> {
    let book = MarketplaceServiceClient::new(channel)
        .get_book(GetBookRequest { id: 1 })
        .await?
        .into_inner();
    Ok(book.book.map(|b| b.title).unwrap_or_default())
}

/// Refused, at the handshake or on the first call.
async fn refused(addr: SocketAddr, tls: ClientTlsConfig) -> String {
    match connect(addr, tls).await {
        Err(e) => format!("connect: {e:?}"),
        Ok(channel) => match get_book(channel).await {
            Ok(title) => panic!("a client the server must refuse got a book: {title}"),
            Err(status) => format!("call: {status:?}"),
        },
    }
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_client_ca() {
    let ca = Ca::new("services-ca");
    let server = ca.server();
    let client = ca.client("gateway");
    let (cert, key, client_ca) = (
        server.cert.to_str().unwrap(),
        server.key.to_str().unwrap(),
        ca.cert(),
    );
    let (addr, _stop) = spawn_tls(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--tls-client-ca",
        client_ca.to_str().unwrap(),
    ])
    .await;

    // (1) The CA trusted and a valid client certificate: served.
    let trusted = ClientTlsConfig::new().ca_certificate(ca.certificate());
    let channel = connect(addr, trusted.clone().identity(client.identity()))
        .await
        .unwrap();
    platform::health::wait_for_status(
        channel.clone(),
        SERVICE_NAME,
        ServingStatus::Serving,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let title = get_book(channel).await.unwrap();
    assert!(!title.is_empty());

    // (2) No client certificate: refused.
    let why = refused(addr, trusted.clone()).await;
    eprintln!("without a client certificate: {why}");
    assert!(why.contains("CertificateRequired"), "{why}");

    // (3) A client certificate from another CA: refused.
    let other = Ca::new("other-ca");
    let why = refused(addr, trusted.identity(other.client("intruder").identity())).await;
    eprintln!("with a certificate from another CA: {why}");
    assert!(why.contains("UnknownCA"), "{why}");

    // (4) Trusting another CA (with a valid client certificate): the server is not believed.
    let why = refused(
        addr,
        ClientTlsConfig::new()
            .ca_certificate(other.certificate())
            .identity(client.identity()),
    )
    .await;
    eprintln!("trusting another CA: {why}");
    assert!(why.contains("UnknownIssuer"), "{why}");

    // A plaintext client gets nothing either.
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    assert!(get_book(plain).await.is_err());
}

#[tokio::test]
async fn an_unusable_tls_file_stops_start_up_naming_its_flag() {
    let ca = Ca::new("ca");
    let server = ca.server();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The certificate where the key should be.
    let config = Config::try_parse_from([
        "marketplace",
        "--tls-cert",
        server.cert.to_str().unwrap(),
        "--tls-key",
        server.cert.to_str().unwrap(),
    ])
    .unwrap();
    let err = marketplace::run(grpc, admin, config, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tls-key"), "{err}");

    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config::try_parse_from([
        "marketplace",
        "--tls-cert",
        "/no/such/cert.pem",
        "--tls-key",
        server.key.to_str().unwrap(),
    ])
    .unwrap();
    let err = marketplace::run(grpc, admin, config, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--tls-cert") && err.contains("/no/such/cert.pem"),
        "{err}"
    );

    // A key without its certificate is refused by the command line.
    assert!(
        Config::try_parse_from(["marketplace", "--tls-key", server.key.to_str().unwrap()]).is_err()
    );
}
