//! The recommendations binary's entry point: parse config, start telemetry, bind, serve until SIGTERM/SIGINT.

use std::{ffi::OsString, process::ExitCode};

use crate::Config;
use clap::Parser;

/// The binary with `args` (the first is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    platform::listen::block_on(async_main(args))
}

async fn async_main(args: Vec<OsString>) -> ExitCode {
    let config = Config::parse_from(args);
    let _telemetry = platform::telemetry::init("recommendations", &config.telemetry);
    platform::listen::exit_status("recommendations", serve(config).await)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let (grpc, admin) =
        platform::listen::bind_grpc_and_admin(config.grpc_addr, config.admin_addr).await?;
    crate::run(grpc, admin, config, platform::shutdown::shutdown_signal()).await?;
    Ok(())
}
