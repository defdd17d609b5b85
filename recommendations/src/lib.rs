//! The recommendations service: ratings (stored in SQLite by default or PostgreSQL) and what to
//! read next (popular, similar, personal), plus a live feed of ratings, over gRPC.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod popularity;
pub mod recommender;
pub mod similarity;
pub mod store;
pub mod synthetic;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use catalog::Digest;
use platform::{
    auth::{AuthInterceptor, Revocations, TokenKey, WeakSecret},
    config::{ServeArgs, TelemetryArgs},
    database::LazyPool,
    grpc::{Kit, ServeError},
    page_token::PageTokens,
};
use protos::recommendations::v1::recommendations_service_server::RecommendationsServiceServer;
use secrecy::SecretString;
use tokio::net::TcpListener;

use futures_util::StreamExt;

use crate::{
    recommender::{LoadSummary, Recommender},
    similarity::Limits,
    store::{RatingStore, SqlRatingStore, StoreError},
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
        default_value = "sqlite://recommendations.db?mode=rwc"
    )]
    pub database_url: String,
    /// Most database connections held open.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// Secret (32+ bytes) that bearer tokens are signed with (the users service's TOKEN_SECRET).
    #[arg(long, env = "TOKEN_SECRET", value_parser = platform::config::secret)]
    pub token_secret: SecretString,
    /// A goodbooks-10k style books.csv for the popularity prior instead of the built-in copy.
    #[arg(long, env = "CATALOG_PATH")]
    pub catalog_path: Option<PathBuf>,
    /// Secret that signs page tokens; replicas must share it. Random per process when unset.
    #[arg(long, env = "PAGE_TOKEN_SECRET", value_parser = platform::config::secret)]
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
    #[error(transparent)]
    Secret(#[from] WeakSecret),
}

/// Serves ratings and recommendations until `shutdown` resolves. Health turns SERVING once the
/// catalog is loaded, the database is reachable and every stored rating is indexed.
pub async fn run(
    grpc: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let key = TokenKey::new(&config.token_secret)?;
    let kit = Kit::new(SERVICE_NAME).await;
    let pool = LazyPool::default();
    let store: Arc<dyn RatingStore> = Arc::new(SqlRatingStore::new(pool.clone()));
    let revocations_pool = pool.clone();
    let engine = Arc::new(OnceLock::new());
    let tokens = PageTokens::from_secret(config.page_token_secret.as_ref());

    let health = kit.health.clone();
    let (slot, loader_store) = (engine.clone(), store.clone());
    let (url, max, catalog_path) = (
        config.database_url.clone(),
        config.database_max_connections,
        config.catalog_path.clone(),
    );
    let limits = Limits {
        window: config.similarity_window as usize,
        neighbours: config.similarity_neighbours as usize,
        seeds: config.personal_seeds as usize,
    };
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
        let db = platform::database::connect_with_retry(&url, max, &store::MIGRATOR).await;
        pool.set(db.clone());
        let recommender = Recommender::with_limits(catalog, limits);
        let mut delay = Duration::from_millis(100);
        let started = std::time::Instant::now();
        let summary = loop {
            match load(&*loader_store, &recommender).await {
                Ok(s) => break s,
                Err(error) => {
                    tracing::warn!(%error, "loading ratings failed; retrying");
                    recommender.clear();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let stats = recommender.stats();
        let _ = slot.set(recommender);
        tracing::info!(
            rows = summary.rows,
            skipped = summary.skipped,
            ratings = stats.ratings,
            users = stats.users,
            books = stats.books,
            neighbour_entries = stats.neighbour_entries,
            index_bytes = stats.approx_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recommender ready"
        );
        health.set_serving(true).await;
        platform::database::watch_health(db, health, Duration::from_secs(5)).await;
    });

    // Ended tokens: recorded by DeleteUserRatings/RevokeSession, polled from the database so
    // every replica refuses them.
    let revocations = Revocations::default();
    tokio::spawn(platform::revocation::sync(
        revocations_pool,
        revocations.clone(),
        Duration::from_secs(1),
    ));
    let service = grpc::Recommendations::new(store, engine, tokens, kit.draining(), &kit.metrics)
        .with_revocations(revocations.clone());
    let service = RecommendationsServiceServer::with_interceptor(
        service,
        AuthInterceptor::with_revocations(key, revocations),
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

/// Streams every stored rating into `recommender`, one row at a time.
async fn load(
    store: &dyn RatingStore,
    recommender: &Recommender,
) -> Result<LoadSummary, StoreError> {
    let mut rows = store.stream_all();
    let mut loader = recommender.loader();
    while let Some(row) = rows.next().await {
        loader.push(row?);
    }
    Ok(loader.finish())
}
