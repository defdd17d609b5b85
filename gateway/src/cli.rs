//! The gateway binary's entry point: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.

use std::{ffi::OsString, process::ExitCode};

use crate::Config;
use clap::Parser;

/// The binary with `args` (the first is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    platform::listen::block_on(async_main(args))
}

async fn async_main(args: Vec<OsString>) -> ExitCode {
    let config = Config::parse_from(args);
    let _telemetry = platform::telemetry::init("gateway", &config.telemetry);
    platform::listen::exit_status("gateway", serve(config).await)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let http = platform::listen::bind(config.http_addr, "http-addr", "HTTP_ADDR").await?;
    let admin = platform::listen::bind(config.admin_addr, "admin-addr", "ADMIN_ADDR").await?;
    tracing::info!(http = %config.http_addr, admin = %config.admin_addr, "listening");
    crate::run(http, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
