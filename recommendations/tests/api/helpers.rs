//! `spawn_service()`: the real recommendations service on port 0 over a fresh SQLite file.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use platform::auth::TokenKey;
use protos::recommendations::v1::{
    RateBookRequest, recommendations_service_client::RecommendationsServiceClient,
};
use recommendations::{Config, SERVICE_NAME};
use secrecy::SecretString;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};
use tonic_health::ServingStatus;

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

pub struct TestService {
    pub admin: SocketAddr,
    pub channel: Channel,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), recommendations::Error>>,
}

impl TestService {
    pub fn client(&self) -> RecommendationsServiceClient<Channel> {
        RecommendationsServiceClient::new(self.channel.clone())
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// `user` rates `book` with `stars`.
    pub async fn rate(&self, user: &str, book: i64, stars: i32) {
        self.client()
            .rate_book(as_user(
                RateBookRequest {
                    book_id: book,
                    stars,
                },
                user,
            ))
            .await
            .unwrap();
    }
}

/// A request signed in as `user`.
pub fn as_user<T>(message: T, user: &str) -> Request<T> {
    let key = TokenKey::new(&SecretString::from(SECRET.to_owned())).unwrap();
    let (token, _) = key.issue(user, Duration::from_secs(600));
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub async fn spawn_with(database_url: &str) -> TestService {
    spawn_args(database_url, &[]).await
}

/// The service on `database_url` with extra command-line flags, SERVING.
pub async fn spawn_args(database_url: &str, flags: &[&str]) -> TestService {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let args = [
        "recommendations",
        "--token-secret",
        SECRET,
        "--database-url",
        database_url,
    ];
    let config = Config::try_parse_from(args.iter().chain(flags)).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(recommendations::run(grpc, admin, config, async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let s = TestService {
        admin: admin_addr,
        channel,
        database_url: database_url.to_owned(),
        stop: Some(tx),
        handle,
    };
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

/// The service on a fresh SQLite database, SERVING.
pub async fn spawn_service() -> TestService {
    spawn_with(&platform::database::testing::sqlite_url("recs")).await
}
