//! The gateway binary: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use clap::Parser;
use gateway::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("gateway", &config.telemetry);
    platform::listen::exit_status("gateway", serve(config).await)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let http = platform::listen::bind(config.http_addr, "http-addr", "HTTP_ADDR").await?;
    let admin = platform::listen::bind(config.admin_addr, "admin-addr", "ADMIN_ADDR").await?;
    tracing::info!(http = %config.http_addr, admin = %config.admin_addr, "listening");
    gateway::run(http, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
