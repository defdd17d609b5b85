//! The users binary: parse config, start telemetry, bind, serve until SIGTERM/SIGINT; or
//! `users keygen`, which prints a new token key pair.
#![forbid(unsafe_code)]

use clap::Parser;
use users::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "keygen") {
        return users::keygen::main(std::env::args_os().skip(1));
    }
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("users", &config.telemetry);
    platform::listen::exit_status("users", serve(config).await)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let grpc = platform::listen::bind(config.grpc_addr, "grpc-addr", "GRPC_ADDR").await?;
    let admin = platform::listen::bind(config.admin_addr, "admin-addr", "ADMIN_ADDR").await?;
    tracing::info!(grpc = %config.grpc_addr, admin = %config.admin_addr, "listening");
    users::run(grpc, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
