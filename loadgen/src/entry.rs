//! The loadgen binary's entry point: `loadgen [FLAGS]` runs shoppers, `loadgen seed` seeds.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// The binary with `args` (the first is the program name): see the crate's `main.rs`.
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    platform::listen::block_on(async_main(args))
}

async fn async_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    match cli.command {
        Some(Command::Seed(args)) => {
            let json = args.target.json;
            match crate::seed::seed(args).await {
                Ok(summary) => report(json, &summary, summary.passed),
                Err(e) => fail(&e),
            }
        }
        None => {
            let json = cli.run.target.json;
            match crate::run::run(cli.run).await {
                Ok(summary) => report(json, &summary, summary.passed),
                Err(e) => fail(&e),
            }
        }
    }
}

fn report<S: serde::Serialize + std::fmt::Display>(
    json: bool,
    summary: &S,
    passed: bool,
) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(summary) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("loadgen: error: the summary as JSON: {e}"),
        }
    } else {
        println!("{summary}");
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(e: &crate::Error) -> ExitCode {
    eprintln!("loadgen: error: {e}");
    ExitCode::from(2)
}
