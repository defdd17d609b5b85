//! The marketplace service: the goodbooks-10k catalog over gRPC (list, search, get, batch-get).
//! `run` serves it on given listeners so tests start the real thing on port 0.
#![forbid(unsafe_code)]

pub mod cli;

pub mod catalog;
pub mod grpc;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use platform::{
    config::{ServeArgs, TelemetryArgs},
    grpc::{Kit, ServeError},
    page_token::PageTokens,
};
use protos::marketplace::v1::marketplace_service_server::MarketplaceServiceServer;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::catalog::Catalog;

/// The full gRPC name of the service, also its health service name.
pub const SERVICE_NAME: &str = "bookstore.marketplace.v1.MarketplaceService";

/// Configuration of the marketplace binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "marketplace",
    version,
    about = "The bookstore's catalog service (gRPC)."
)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Address of the admin HTTP server (/metrics, /livez, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9091")]
    pub admin_addr: SocketAddr,
    /// A goodbooks-10k style books.csv to serve instead of the built-in copy.
    #[arg(long, env = "CATALOG_PATH")]
    pub catalog_path: Option<PathBuf>,
    /// Secret that signs page tokens; replicas must share it. Random per process when unset.
    #[arg(long, env = "PAGE_TOKEN_SECRET", hide_env_values = true, value_parser = platform::config::secret)]
    pub page_token_secret: Option<SecretString>,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Why the marketplace stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Serves the catalog until `shutdown` resolves. Health turns SERVING once the catalog is loaded.
pub async fn run(
    grpc: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let kit = Kit::new(SERVICE_NAME).await;
    let books_gauge = kit
        .metrics
        .gauge("marketplace_catalog_books", "Books in the loaded catalog.");
    let catalog = Arc::new(OnceLock::new());
    let tokens = PageTokens::from_secret(config.page_token_secret.as_ref());

    let health = kit.health.clone();
    let slot = catalog.clone();
    let path = config.catalog_path.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let loaded = tokio::task::spawn_blocking(move || Catalog::load(path.as_deref())).await;
        match loaded {
            Ok(Ok(c)) => {
                tracing::info!(
                    books = c.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "catalog loaded"
                );
                books_gauge.set(c.len() as i64);
                let _ = slot.set(c);
                health.set_serving(true).await;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "catalog could not be loaded; staying NOT_SERVING")
            }
            Err(error) => tracing::error!(%error, "catalog loader panicked; staying NOT_SERVING"),
        }
    });

    let service = MarketplaceServiceServer::new(grpc::Marketplace::new(catalog, tokens));
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
