//! The recommendations service: ratings (stored in SQLite by default or PostgreSQL) and what to
//! read next (popular, similar, personal), plus a live feed of ratings, over gRPC. Replicas on
//! one database agree: each follows the ratings' change log ([`changelog`]).
#![forbid(unsafe_code)]

pub mod cli;

pub mod changelog;
pub mod grpc;
pub mod popularity;
pub mod recommender;
pub mod similarity;
pub mod store;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use catalog::Digest;
use platform::{
    auth::{AuthInterceptor, Revocations, TokenVerifier},
    config::{ServeArgs, TelemetryArgs},
    database::LazyPool,
    grpc::{Kit, ServeError},
    page_token::PageTokens,
};
use protos::recommendations::v1::recommendations_service_server::RecommendationsServiceServer;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::{
    changelog::Follower,
    recommender::Engine,
    similarity::Limits,
    store::{Backend, RatingStore, SqlRatingStore},
};

/// The full gRPC name of the service, also its health service name.
pub const SERVICE_NAME: &str = "bookstore.recommendations.v1.RecommendationsService";

/// Configuration of the recommendations binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "recommendations",
    version,
    about = "The bookstore's ratings and recommendations service (gRPC)."
)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc_addr: SocketAddr,
    /// Address of the admin HTTP server (/metrics, /livez, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9092")]
    pub admin_addr: SocketAddr,
    /// Database URL: `sqlite://FILE?mode=rwc` (embedded) or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://recommendations.db?mode=rwc"
    )]
    pub database_url: String,
    /// Most database connections held open.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// The public keys bearer tokens are checked with, `KID=BASE64,...` (32-byte Ed25519 keys):
    /// the users service signs, this service only verifies and holds no private key.
    #[arg(long, env = "TOKEN_PUBLIC_KEYS", value_parser = TokenVerifier::parse)]
    pub token_public_keys: TokenVerifier,
    /// A goodbooks-10k style books.csv for the popularity prior instead of the built-in copy.
    #[arg(long, env = "CATALOG_PATH")]
    pub catalog_path: Option<PathBuf>,
    /// Secret that signs page tokens; replicas must share it. Random per process when unset.
    #[arg(long, env = "PAGE_TOKEN_SECRET", hide_env_values = true, value_parser = platform::config::secret)]
    pub page_token_secret: Option<SecretString>,
    /// C: a reader's most recent ratings that count towards "readers who liked this also liked"
    /// (bounds one reader's share of the similarity index; see `similarity`).
    #[arg(long, env = "SIMILARITY_WINDOW", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub similarity_window: u32,
    /// M: neighbours kept per book (a book's list may hold 2M before it is cut back to M).
    #[arg(long, env = "SIMILARITY_NEIGHBOURS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub similarity_neighbours: u32,
    /// L: a reader's most recent liked books (4-5 stars) that seed their personal picks.
    #[arg(long, env = "PERSONAL_SEEDS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub personal_seeds: u32,
    /// Longest wait in milliseconds between two reads of the ratings change log [default: 100
    /// on SQLite, which is polled; 1000 on PostgreSQL, whose commits wake every replica at once].
    #[arg(long, env = "LOG_POLL_MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub log_poll_ms: Option<u64>,
    /// Seconds a change stays in the log: a replica cut off from the database for longer
    /// reloads its index from the ratings table when it comes back.
    #[arg(long, env = "LOG_RETENTION_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..))]
    pub log_retention_secs: u64,
    /// Milliseconds a skipped log position (a write not yet committed) is awaited before it is
    /// taken as rolled back.
    #[arg(long, env = "LOG_GAP_WAIT_MS", default_value_t = 30_000)]
    pub log_gap_wait_ms: u64,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Why the recommendations service stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl Config {
    /// How the change log is followed.
    pub fn log_settings(&self) -> changelog::Settings {
        let backend = Backend::of_url(&self.database_url);
        let poll = self.log_poll_ms.unwrap_or(match backend {
            Backend::Sqlite => 100,
            Backend::Postgres => 1_000,
        });
        changelog::Settings {
            poll_every: Duration::from_millis(poll),
            gap_wait: Duration::from_millis(self.log_gap_wait_ms),
            retention: Duration::from_secs(self.log_retention_secs),
            ..changelog::Settings::default()
        }
    }
}

/// The PostgreSQL `application_name` of a replica's listening session (find it in
/// `pg_stat_activity`).
pub const LISTENER_NAME: &str = "recommendations-log";

/// Serves ratings and recommendations until `shutdown` resolves. Health turns SERVING once the
/// catalog is loaded, the database is reachable and every stored rating is indexed.
pub async fn run(
    grpc: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let verifier = config.token_public_keys.clone();
    let mut kit = Kit::new(SERVICE_NAME).await;
    let pool = LazyPool::default();
    let backend = Backend::of_url(&config.database_url);
    let store: Arc<dyn RatingStore> = Arc::new(SqlRatingStore::new(pool.clone(), backend));
    let revocations_pool = pool.clone();
    let engine = Engine::default();
    let tokens = PageTokens::from_secret(config.page_token_secret.as_ref());
    let limits = Limits {
        window: config.similarity_window as usize,
        neighbours: config.similarity_neighbours as usize,
        seeds: config.personal_seeds as usize,
    };
    let follower = Arc::new(Follower::new(
        store.clone(),
        engine.clone(),
        config.log_settings(),
        &kit.metrics,
    ));
    kit.admin_routes(index_routes(follower.clone()));

    let health = kit.health.clone();
    let (url, max, catalog_path) = (
        config.database_url.clone(),
        config.database_max_connections,
        config.catalog_path.clone(),
    );
    let log = follower.clone();
    tokio::spawn(async move {
        let catalog =
            tokio::task::spawn_blocking(move || Digest::load(catalog_path.as_deref())).await;
        let catalog = match catalog {
            Ok(Ok(c)) => c,
            Ok(Err(error)) => {
                tracing::error!(%error, "catalog could not be loaded; staying NOT_SERVING");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "catalog loader panicked; staying NOT_SERVING");
                return;
            }
        };
        let db = platform::database::connect_with_retry(&url, max, &store::migrator(backend)).await;
        pool.set(db.clone());
        if backend == Backend::Postgres {
            tokio::spawn(changelog::listen(url, LISTENER_NAME, log.clone()));
        }
        // SERVING once every stored rating is indexed; then the log and the database's health
        // are followed side by side.
        log.start(catalog, limits).await;
        health.set_serving(true).await;
        tokio::join!(
            log.follow(),
            platform::database::watch_health(db, health, Duration::from_secs(5))
        );
    });

    // Ended tokens: recorded by DeleteUserRatings/RevokeSession, polled from the database so
    // every replica refuses them.
    let revocations = Revocations::default();
    tokio::spawn(platform::revocation::sync(
        revocations_pool,
        revocations.clone(),
        Duration::from_secs(1),
    ));
    let service = grpc::Recommendations::new(
        store,
        engine,
        follower,
        tokens,
        kit.draining(),
        &kit.metrics,
    )
    .with_revocations(revocations.clone());
    let service = RecommendationsServiceServer::with_interceptor(
        service,
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

/// The admin port's `/index`: this replica's log position and index digest (503 while loading).
fn index_routes(follower: Arc<Follower>) -> axum::Router {
    axum::Router::new().route(
        "/index",
        axum::routing::get(move || {
            let follower = follower.clone();
            async move {
                use axum::response::IntoResponse;
                match tokio::task::spawn_blocking(move || follower.state()).await {
                    Ok(Some(state)) => axum::Json(state).into_response(),
                    _ => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "the index is loading\n",
                    )
                        .into_response(),
                }
            }
        }),
    )
}
