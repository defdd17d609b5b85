//! The loadgen binary: `loadgen [FLAGS]` runs shoppers against the gateway, `loadgen seed` seeds
//! it. Exit status: 0 when unexpected errors stay within --max-error-rate (seed: no error at all),
//! 1 when they do not, 2 for bad flags or a run that could not start.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Seed(args)) => {
            let json = args.target.json;
            match loadgen::seed::seed(args).await {
                Ok(summary) => report(json, &summary, summary.passed),
                Err(e) => fail(&e),
            }
        }
        None => {
            let json = cli.run.target.json;
            match loadgen::run::run(cli.run).await {
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

fn fail(e: &loadgen::Error) -> ExitCode {
    eprintln!("loadgen: error: {e}");
    ExitCode::from(2)
}
