//! The gateway: the bookstore's only public door. A REST JSON API under `/api/v1`, the
//! server-rendered marketplace pages and an SSE feed, each request fanned out to the gRPC
//! services over one long-lived channel per service. `build_router` is tested with `oneshot`;
//! `run` serves it on a given listener.
//!
//! Read top-down: `model` (what the services answer) ← `upstream` (speaks gRPC) ← `state` ←
//! `api`, `pages` ← `router` (with `middleware`) ← `run` here.
#![forbid(unsafe_code)]

pub mod cli;

pub mod api;
pub mod client_addr;
pub mod config;
pub mod contract;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod grpc_web;
pub mod middleware;
pub mod model;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod router;
pub mod serve;
pub mod shed;
pub mod state;
pub mod upstream;

use std::future::Future;

use platform::metrics::Metrics;
use tokio::{net::TcpListener, sync::watch};

use crate::upstream::Upstreams;
pub use crate::{
    config::Config,
    router::{build_router, routes, with_middleware},
    state::{AppState, Shared},
};

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] upstream::BadUpstream),
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the gateway on `listener` (and the admin routes on `admin`) until `shutdown`
/// resolves; then not ready, a pause, and a bounded drain.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Metrics::new();
    let upstreams = Upstreams::new(&config.upstream_urls(), &metrics)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(&config, upstreams, stop_rx);
    let app = build_router(state, &metrics, &config);

    // The gateway can serve as soon as it listens: upstream trouble degrades pages, it does not
    // make the gateway unready (that would take the whole site down with one service).
    let (ready_tx, ready_rx) = watch::channel(true);
    let admin = platform::admin::AdminTask::spawn(
        admin,
        platform::admin::router(metrics.clone(), ready_rx, None),
    );
    let drain = platform::shutdown::Drain {
        delay: config.serve.shutdown_delay(),
        timeout: config.serve.drain_timeout(),
    };
    tracing::info!(addr = %listener.local_addr()?, "gateway started");
    // `/readyz` answers 503 first; after the pause the SSE streams end (stop_tx) and the
    // listener closes.
    let not_ready = async move {
        ready_tx.send_replace(false);
    };
    drain
        .run("gateway", shutdown, not_ready, stop_tx, admin, |stop| {
            serve::serve(listener, app, &config.connections, &metrics, stop)
        })
        .await
        .map_err(Error::from)
}
