//! The users service: accounts (sign-up, sign-in with argon2id hashes, bearer tokens, the
//! owner's profile) over gRPC, stored in SQLite by default or PostgreSQL.
#![forbid(unsafe_code)]

pub mod cli;

pub mod account;
pub mod grpc;
pub mod keygen;
pub mod outbox;
pub mod store;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use platform::{
    auth::{AuthInterceptor, KeyError, Revocations, TokenSigner, TokenVerifier},
    config::{ServeArgs, TelemetryArgs},
    grpc::{Kit, ServeError},
};
use protos::users::v1::users_service_server::UsersServiceServer;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::store::SqlUserStore;

/// The full gRPC name of the service, also its health service name.
pub const SERVICE_NAME: &str = "bookstore.users.v1.UsersService";

/// Configuration of the users binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "users",
    version,
    about = "The bookstore's accounts service (gRPC).",
    after_help = "`users keygen` prints a new token key pair: TOKEN_SIGNING_KEY for this service \
                  alone, and the entry every service adds to TOKEN_PUBLIC_KEYS."
)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50053")]
    pub grpc_addr: SocketAddr,
    /// Address of the admin HTTP server (/metrics, /livez, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9093")]
    pub admin_addr: SocketAddr,
    /// Database URL: `sqlite://FILE?mode=rwc` (embedded) or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://users.db?mode=rwc"
    )]
    pub database_url: String,
    /// Most database connections held open.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// The Ed25519 key that signs bearer tokens, `KID=BASE64` (PKCS#8, as `users keygen` prints
    /// it). Only this service holds it; the others verify with its public key.
    #[arg(long, env = "TOKEN_SIGNING_KEY", value_parser = platform::config::secret, hide_env_values = true)]
    pub token_signing_key: SecretString,
    /// The public keys bearer tokens are checked with, `KID=BASE64,...` (32-byte Ed25519 keys);
    /// must hold the signing key's. Several during a rotation.
    #[arg(long, env = "TOKEN_PUBLIC_KEYS", value_parser = TokenVerifier::parse)]
    pub token_public_keys: TokenVerifier,
    /// Password hashes computed at once (19 MiB and one core each); more wait their turn.
    /// Defaults to the number of CPUs.
    #[arg(long, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// How long a token stays valid, in seconds.
    #[arg(long, env = "TOKEN_TTL_SECS", default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// The recommendations service, told (through the outbox, retried until it confirms) to
    /// delete a deleted account's ratings and to refuse ended sessions.
    #[arg(
        long,
        env = "RECOMMENDATIONS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub recommendations_url: String,
    /// How often the outbox and the list of ended tokens are polled, in milliseconds.
    #[arg(long, env = "OUTBOX_POLL_MS", default_value_t = 1_000)]
    pub outbox_poll_ms: u64,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Why the users service stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    TokenKeys(#[from] KeyError),
    #[error("recommendations address {url:?} is not valid: {source}")]
    RecommendationsUrl {
        url: String,
        source: tonic::transport::Error,
    },
}

/// Serves accounts until `shutdown` resolves. Health turns SERVING once the database is
/// reachable and migrated, and follows it afterwards.
pub async fn run(
    grpc: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let key = TokenSigner::from_secret(&config.token_signing_key)?;
    let verifier = config.token_public_keys.clone();
    verifier.check_holds(&key)?;
    tracing::info!(
        signing_kid = key.kid(),
        verifying_kids = ?verifier.kids().collect::<Vec<_>>(),
        "token keys"
    );
    let kit = Kit::new(SERVICE_NAME).await;
    let pool = platform::database::LazyPool::default();

    let health = kit.health.clone();
    let slot = pool.clone();
    let url = config.database_url.clone();
    let max = config.database_max_connections;
    tokio::spawn(async move {
        let pool = platform::database::connect_with_retry(&url, max, &store::MIGRATOR).await;
        slot.set(pool.clone());
        health.set_serving(true).await;
        platform::database::watch_health(pool, health, Duration::from_secs(5)).await;
    });

    let store: Arc<dyn store::UserStore> = Arc::new(SqlUserStore::new(pool.clone()));
    let poll = Duration::from_millis(config.outbox_poll_ms.max(10));
    let revocations = Revocations::default();
    tokio::spawn(platform::revocation::sync(
        pool.clone(),
        revocations.clone(),
        poll,
    ));
    let wake = Arc::new(tokio::sync::Notify::new());
    let channel = tonic::transport::Endpoint::from_shared(config.recommendations_url.clone())
        .map_err(|source| Error::RecommendationsUrl {
            url: config.recommendations_url.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    tokio::spawn(
        outbox::Outbox {
            store: store.clone(),
            client: protos::recommendations::v1::recommendations_service_client::RecommendationsServiceClient::new(channel),
            key: key.clone(),
            wake: wake.clone(),
            delivered: kit.metrics.counter_vec(
                "users_outbox_deliveries_total",
                "Outbox entries sent to recommendations, by kind and outcome (delivered, retried).",
                &["kind", "outcome"],
            ),
        }
        .run(poll),
    );

    let users = grpc::Users::new(
        store,
        key.clone(),
        Duration::from_secs(config.token_ttl_secs),
        config.hash_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }),
        &kit.metrics,
    );
    let users = users.with_revocations(revocations.clone(), wake);
    let service = UsersServiceServer::with_interceptor(
        users,
        AuthInterceptor::with_revocations(verifier, revocations),
    );
    kit.serve(
        grpc,
        admin,
        &config.serve,
        protos::FILE_DESCRIPTOR_SET,
        service,
        shutdown,
    )
    .await?;
    Ok(())
}
