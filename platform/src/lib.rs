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
pub mod observe;
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

/// A random number in `0..n` (0 when `n` is 0), straight from the OS: for jitter and sampling on
/// paths where a shared generator would need a lock.
pub fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b) % n
}
