//! `spawn_service()`: the real users service on port 0 over a fresh SQLite file, SERVING.

use std::{net::SocketAddr, sync::LazyLock, time::Duration};

use clap::Parser;
use platform::auth::{GeneratedKeys, TokenSigner, generate_keys};
use protos::users::v1::{
    CreateUserRequest, SignInRequest, User, users_service_client::UsersServiceClient,
};
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};
use tonic_health::ServingStatus;
use users::{Config, SERVICE_NAME};

/// The token key pair of this test run: users signs with the private half; it and the
/// recommendations services the tests start verify with the public key.
pub static KEYS: LazyLock<GeneratedKeys> = LazyLock::new(generate_keys);

/// What the users service under test signs tokens with.
pub fn signer() -> TokenSigner {
    TokenSigner::from_secret(&KEYS.signing_key).unwrap()
}

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

/// The users service on `database_url` with extra command-line flags, signing with [`KEYS`].
pub async fn spawn_with(database_url: &str, args: &[&str]) -> TestService {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let config = config(database_url, args);
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

/// The configuration of a users service on `database_url` with [`KEYS`] and extra flags.
pub fn config(database_url: &str, args: &[&str]) -> Config {
    let mut argv = vec!["users", "--database-url", database_url];
    if !args.contains(&"--token-signing-key") {
        argv.extend(["--token-signing-key", KEYS.signing_key.expose_secret()]);
    }
    if !args.contains(&"--token-public-keys") {
        argv.extend(["--token-public-keys", KEYS.public_key.as_str()]);
    }
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).unwrap()
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
