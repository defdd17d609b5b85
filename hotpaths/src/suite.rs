//! The real suite in this process: marketplace, recommendations, users and the gateway started
//! through their library `run` on loopback port 0, SQLite files in a directory of their own.
//!
//! Every timer that would fire by the wall clock (log polls, upstream re-resolution, the expiry
//! of the home page's kept panel and grid) is set far beyond a run, so the instructions counted are those the requests
//! cause, not those of however many seconds valgrind took.

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, sync::watch};
use tonic_health::ServingStatus;

/// An hour in milliseconds: "never" within a run.
const NEVER_MS: &str = "3600000";
/// Deadlines: valgrind runs the suite some fifty times slower than the hardware.
const SLOW_MS: &str = "120000";

/// The running suite: the gateway's public address; everything stops when this is dropped.
pub struct Suite {
    pub gateway: SocketAddr,
    dir: PathBuf,
    _stop: watch::Sender<bool>,
}

impl Drop for Suite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why the suite could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(what: &str) -> impl Fn(Box<dyn std::error::Error>) -> StartError + '_ {
    move |e| StartError(format!("{what}: {e}"))
}

async fn listener() -> Result<(TcpListener, SocketAddr), StartError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| StartError(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = l
        .local_addr()
        .map_err(|e| StartError(format!("local_addr: {e}")))?;
    Ok((l, addr))
}

type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn stop_signal(rx: &watch::Receiver<bool>) -> Stop {
    let mut rx = rx.clone();
    Box::pin(async move {
        let _ = rx.wait_for(|s| *s).await;
    })
}

/// Starts the four services and waits until the three gRPC ones are SERVING.
pub async fn start() -> Result<Suite, StartError> {
    let dir = std::env::temp_dir().join(format!("hotpaths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
    let db = |name: &str| format!("sqlite://{}?mode=rwc", dir.join(name).display());
    let keys = platform::auth::generate_keys();
    let (stop_tx, stop_rx) = watch::channel(false);

    let (m_grpc, m_addr) = listener().await?;
    let (m_admin, _) = listener().await?;
    let config =
        marketplace::Config::try_parse_from(["marketplace", "--request-timeout-ms", SLOW_MS])
            .map_err(|e| fail("marketplace config")(e.into()))?;
    let stop = stop_signal(&stop_rx);
    tokio::spawn(async move {
        if let Err(e) = marketplace::run(m_grpc, m_admin, config, stop).await {
            eprintln!("hotpaths: marketplace stopped: {e}");
        }
    });

    let (r_grpc, r_addr) = listener().await?;
    let (r_admin, _) = listener().await?;
    let config = recommendations::Config::try_parse_from([
        "recommendations",
        "--database-url",
        &db("recommendations.db"),
        "--token-public-keys",
        &keys.public_key,
        "--log-poll-ms",
        NEVER_MS,
        "--request-timeout-ms",
        SLOW_MS,
    ])
    .map_err(|e| fail("recommendations config")(e.into()))?;
    let stop = stop_signal(&stop_rx);
    tokio::spawn(async move {
        if let Err(e) = recommendations::run(r_grpc, r_admin, config, stop).await {
            eprintln!("hotpaths: recommendations stopped: {e}");
        }
    });

    let (u_grpc, u_addr) = listener().await?;
    let (u_admin, _) = listener().await?;
    let config = users::Config::try_parse_from([
        "users",
        "--database-url",
        &db("users.db"),
        "--token-signing-key",
        keys.signing_key.expose_secret(),
        "--token-public-keys",
        &keys.public_key,
        "--recommendations-url",
        &format!("http://{r_addr}"),
        "--outbox-poll-ms",
        NEVER_MS,
        "--request-timeout-ms",
        SLOW_MS,
    ])
    .map_err(|e| fail("users config")(e.into()))?;
    let stop = stop_signal(&stop_rx);
    tokio::spawn(async move {
        if let Err(e) = users::run(u_grpc, u_admin, config, stop).await {
            eprintln!("hotpaths: users stopped: {e}");
        }
    });

    for (addr, service) in [
        (m_addr, marketplace::SERVICE_NAME),
        (r_addr, recommendations::SERVICE_NAME),
        (u_addr, users::SERVICE_NAME),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| fail("endpoint")(e.into()))?
            .connect()
            .await
            .map_err(|e| fail(service)(e.into()))?;
        platform::health::wait_for_status(
            channel,
            service,
            ServingStatus::Serving,
            Duration::from_secs(600),
        )
        .await
        .map_err(|e| StartError(format!("{service}: {e}")))?;
    }

    let (g_http, g_addr) = listener().await?;
    let (g_admin, _) = listener().await?;
    let config = gateway::Config::try_parse_from([
        "gateway",
        "--marketplace-url",
        &format!("http://{m_addr}"),
        "--recommendations-url",
        &format!("http://{r_addr}"),
        "--users-url",
        &format!("http://{u_addr}"),
        "--upstream-resolve-interval-ms",
        NEVER_MS,
        "--popular-cache-ms",
        NEVER_MS,
        "--grid-cache-ms",
        NEVER_MS,
        "--request-timeout-ms",
        SLOW_MS,
        "--optional-timeout-ms",
        SLOW_MS,
    ])
    .map_err(|e| fail("gateway config")(e.into()))?;
    let stop = stop_signal(&stop_rx);
    tokio::spawn(async move {
        if let Err(e) = gateway::run(g_http, g_admin, config, stop).await {
            eprintln!("hotpaths: gateway stopped: {e}");
        }
    });

    Ok(Suite {
        gateway: g_addr,
        dir,
        _stop: stop_tx,
    })
}
