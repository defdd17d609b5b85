//! `spawn_service()`: the real users service on port 0 over a fresh SQLite file, SERVING.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use protos::users::v1::{
    CreateUserRequest, SignInRequest, User, users_service_client::UsersServiceClient,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};
use tonic_health::ServingStatus;
use users::{Config, SERVICE_NAME};

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

pub struct TestService {
    pub admin: SocketAddr,
    pub channel: Channel,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), users::Error>>,
}

impl TestService {
    pub fn client(&self) -> UsersServiceClient<Channel> {
        UsersServiceClient::new(self.channel.clone())
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Signs up and signs in; returns the user and a bearer token.
    pub async fn account(&self, email: &str, password: &str) -> (User, String) {
        let mut c = self.client();
        c.create_user(CreateUserRequest {
            email: email.into(),
            display_name: "Reader".into(),
            password: password.into(),
        })
        .await
        .unwrap();
        let r = c
            .sign_in(SignInRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner();
        (r.user.unwrap(), r.access_token)
    }
}

/// A request with `authorization: Bearer token`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub async fn spawn_with(database_url: &str, args: &[&str]) -> TestService {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut argv = vec![
        "users",
        "--token-secret",
        SECRET,
        "--database-url",
        database_url,
    ];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(users::run(grpc, admin, config, async move {
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
        database_url: database_url.to_owned(),
        stop: Some(tx),
        handle,
    }
}

pub async fn wait_serving(s: &TestService) {
    platform::health::wait_for_status(
        s.channel.clone(),
        SERVICE_NAME,
        ServingStatus::Serving,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

/// The users service on a fresh SQLite database, SERVING.
pub async fn spawn_service() -> TestService {
    let s = spawn_with(&platform::database::testing::sqlite_url("users"), &[]).await;
    wait_serving(&s).await;
    s
}
