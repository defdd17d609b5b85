//! The recommendations binary: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use clap::Parser;
use recommendations::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("recommendations", &config.telemetry);
    let grpc = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    let admin = tokio::net::TcpListener::bind(config.admin_addr).await?;
    tracing::info!(grpc = %config.grpc_addr, admin = %config.admin_addr, "listening");
    recommendations::run(grpc, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
