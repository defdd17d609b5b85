//! The gateway binary: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use clap::Parser;
use gateway::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("gateway", &config.telemetry);
    let http = tokio::net::TcpListener::bind(config.http_addr).await?;
    let admin = tokio::net::TcpListener::bind(config.admin_addr).await?;
    tracing::info!(http = %config.http_addr, admin = %config.admin_addr, "listening");
    gateway::run(http, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
