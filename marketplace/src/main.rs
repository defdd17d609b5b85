//! The marketplace binary: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use clap::Parser;
use marketplace::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("marketplace", &config.telemetry);
    platform::listen::exit_status("marketplace", serve(config).await)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let grpc = platform::listen::bind(config.grpc_addr, "grpc-addr", "GRPC_ADDR").await?;
    let admin = platform::listen::bind(config.admin_addr, "admin-addr", "ADMIN_ADDR").await?;
    tracing::info!(grpc = %config.grpc_addr, admin = %config.admin_addr, "listening");
    marketplace::run(grpc, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
