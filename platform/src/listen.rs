//! Binding listeners at start-up, failing loudly: a bind error names the address and the flag (and
//! environment variable) that sets it, instead of `Os { code: 98, kind: AddrInUse }`.

use std::{net::SocketAddr, time::Duration};

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}; choose another address with --{flag} or {env}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub flag: &'static str,
    pub env: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// How long an address in use is retried: default gRPC ports lie in Linux's ephemeral range, so a
/// restarted server can find its port briefly taken by someone's outgoing connection.
pub const IN_USE_RETRY: Duration = Duration::from_secs(3);

/// `listener` with Nagle's algorithm off on every connection it accepts, for an HTTP server
/// (axum's `serve` leaves it on): a response written in two parts (headers, then a streamed body
/// or an SSE event) must not wait for the client's delayed ACK, 40 ms on Linux. The gRPC servers
/// get the same from tonic's `TcpIncoming::with_nodelay`.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Binds `addr` (set by `--flag` / `env`), retrying an address in use for [`IN_USE_RETRY`].
pub async fn bind(
    addr: SocketAddr,
    flag: &'static str,
    env: &'static str,
) -> Result<TcpListener, BindError> {
    let started = std::time::Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(source)
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < IN_USE_RETRY =>
            {
                tracing::warn!(%addr, flag, "address in use; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(BindError {
                    addr,
                    flag,
                    env,
                    source,
                });
            }
        }
    }
}

/// What a binary's `main` returns: on error, the whole cause chain on stderr and in the log, and
/// exit status 1.
pub fn exit_status<E: std::error::Error + ?Sized>(
    binary: &str,
    result: Result<(), Box<E>>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                let text = c.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
                cause = c.source();
            }
            tracing::error!(error = %message, "{binary} failed");
            eprintln!("{binary}: error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A gRPC service's two listeners: `--grpc-addr` (`GRPC_ADDR`) and `--admin-addr`
/// (`ADMIN_ADDR`), each bound as [`bind`] does, and a line saying where it listens.
pub async fn bind_grpc_and_admin(
    grpc: SocketAddr,
    admin: SocketAddr,
) -> Result<(TcpListener, TcpListener), BindError> {
    let grpc_listener = bind(grpc, "grpc-addr", "GRPC_ADDR").await?;
    let admin_listener = bind(admin, "admin-addr", "ADMIN_ADDR").await?;
    tracing::info!(%grpc, %admin, "listening");
    Ok((grpc_listener, admin_listener))
}

/// Runs a binary's `main` future on a multi-threaded runtime, as `#[tokio::main]` would: a
/// function rather than the attribute, so one executable can hold every binary's entry point
/// (the image's `bookstore`).
pub fn block_on<F: std::future::Future<Output = std::process::ExitCode>>(
    main: F,
) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_itself_and_the_flag() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let started = std::time::Instant::now();
        let err = bind(addr, "grpc-addr", "GRPC_ADDR").await.unwrap_err();
        assert!(
            started.elapsed() >= IN_USE_RETRY,
            "retried before giving up"
        );
        let text = err.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(
            text.contains("--grpc-addr") && text.contains("GRPC_ADDR"),
            "{text}"
        );
    }
}
