//! `spawn_service()`: the real marketplace on port 0, ready (SERVING) when it returns.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use marketplace::{Config, SERVICE_NAME};
use protos::marketplace::v1::marketplace_service_client::MarketplaceServiceClient;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;
use tonic_health::ServingStatus;

pub struct TestService {
    pub admin: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), marketplace::Error>>,
}

impl TestService {
    pub fn client(&self) -> MarketplaceServiceClient<Channel> {
        MarketplaceServiceClient::new(self.channel.clone())
    }

    /// Sends the shutdown signal (as SIGTERM would).
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn spawn_with(args: &[&str]) -> TestService {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut argv = vec!["marketplace"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(marketplace::run(grpc, admin, config, async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestService {
        admin: admin_addr,
        channel,
        stop: Some(tx),
        handle,
    }
}

/// The marketplace, SERVING.
pub async fn spawn_service() -> TestService {
    spawn_serving(&[]).await
}

/// The marketplace started with `args`, SERVING.
pub async fn spawn_serving(args: &[&str]) -> TestService {
    let s = spawn_with(args).await;
    platform::health::wait_for_status(
        s.channel.clone(),
        SERVICE_NAME,
        ServingStatus::Serving,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    s
}
