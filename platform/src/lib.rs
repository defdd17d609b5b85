//! Shared service plumbing for every bookstore binary: configuration pieces, telemetry, metrics,
//! health, graceful shutdown, bearer and page tokens, the database pool and the gRPC server stack.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod backoff;
pub mod bearer;
pub mod config;
pub mod database;
pub mod deadline;
pub mod faults;
pub mod grpc;
pub mod grpc_path;
pub mod health;
pub mod http_metrics;
pub mod listen;
pub mod metrics;
pub mod observe;
pub mod page_token;
pub mod revocation;
pub mod shed;
pub mod shutdown;
pub mod telemetry;

/// Milliseconds since the Unix epoch, as stored and sent everywhere in the suite.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

thread_local! {
    /// Per-thread xorshift64* state, seeded once from the OS: a system call per draw would cost
    /// more than the work it serves, and a shared generator would need a lock.
    static RANDOM: std::cell::Cell<u64> = std::cell::Cell::new({
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        u64::from_le_bytes(b) | 1
    });
}

/// A random `u64`, never 0: for ids, jitter and sampling (unique and well spread, not secret).
pub fn random_u64() -> u64 {
    RANDOM.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        // An odd multiplier of a non-zero state: never 0.
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A random number in `0..n` (0 when `n` is 0), from [`random_u64`].
pub fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    random_u64() % n
}
