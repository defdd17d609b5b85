//! Shared service plumbing for every bookstore binary: configuration pieces, telemetry, metrics,
//! health, graceful shutdown, bearer and page tokens, the database pool and the gRPC server stack.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod database;
pub mod deadline;
pub mod faults;
pub mod grpc;
pub mod health;
pub mod http_metrics;
pub mod listen;
pub mod metrics;
pub mod page_token;
pub mod revocation;
pub mod shutdown;
pub mod telemetry;

/// Milliseconds since the Unix epoch, as stored and sent everywhere in the suite.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
