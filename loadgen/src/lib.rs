//! The Bookstore's drill kit: a load generator that behaves like shoppers against the public
//! gateway (open or closed loop, HDR latency per step from the intended send time, expected and
//! unexpected errors, its own Prometheus metrics, a W3C traceparent on every request), and a
//! seeder that creates users and ratings through the public API from the catalog's real
//! popularity and star histograms.
#![forbid(unsafe_code)]

pub mod alarm;
pub mod auth_budget;
pub mod cli;
pub mod entry;
pub mod http;
pub mod request;
pub mod run;
pub mod seed;
pub mod shop;
pub mod stats;
pub mod steps;
pub mod summary;

/// The `user-agent` of every request loadgen sends.
pub const USER_AGENT: &str = concat!("bookstore-loadgen/", env!("CARGO_PKG_VERSION"));

/// How long a connection may take to set up: the request's timeout, at most 5 s.
pub fn connect_timeout(timeout: std::time::Duration) -> std::time::Duration {
    timeout.min(std::time::Duration::from_secs(5))
}

/// Why loadgen could not run at all (as opposed to a run that saw errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("loading the built-in catalog: {0}")]
    Catalog(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Bind(#[from] platform::listen::BindError),
}
