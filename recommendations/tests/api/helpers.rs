//! `spawn_service()`: the real recommendations service on port 0 over a fresh SQLite file.

use std::{net::SocketAddr, sync::LazyLock, time::Duration};

use clap::Parser;
use platform::auth::{GeneratedKeys, TokenSigner, generate_keys};
use protos::recommendations::v1::{
    RateBookRequest, recommendations_service_client::RecommendationsServiceClient,
};
use recommendations::{Config, SERVICE_NAME};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};
use tonic_health::ServingStatus;

/// The key pair of this test run: the users service would sign with its private half; the
/// service under test is given only the public key.
pub static KEYS: LazyLock<GeneratedKeys> = LazyLock::new(generate_keys);

/// What the users service would sign tokens with.
pub fn signer() -> TokenSigner {
    TokenSigner::from_secret(&KEYS.signing_key).unwrap()
}

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

    /// The ids "readers who liked `book` also liked" (at most 10), best first.
    pub async fn similar_ids(&self, book: i64) -> Vec<i64> {
        self.client()
            .list_similar_books(protos::recommendations::v1::ListSimilarBooksRequest {
                book_id: book,
                page_size: 10,
            })
            .await
            .unwrap()
            .into_inner()
            .recommendations
            .iter()
            .map(|r| r.book_id)
            .collect()
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
    let (token, _) = signer().issue(user, Duration::from_secs(600));
    with_token(message, &token)
}

/// A request with `authorization: Bearer token`.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub async fn spawn_with(database_url: &str) -> TestService {
    spawn_args(database_url, &[]).await
}

/// The service on `database_url` with extra command-line flags, SERVING; it verifies tokens
/// with [`KEYS`] unless `flags` give `--token-public-keys`.
pub async fn spawn_args(database_url: &str, flags: &[&str]) -> TestService {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut args = vec!["recommendations", "--database-url", database_url];
    if !flags.contains(&"--token-public-keys") {
        args.extend(["--token-public-keys", KEYS.public_key.as_str()]);
    }
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
