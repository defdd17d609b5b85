//! Every binary of the suite in one executable: the image holds this one file and a link per
//! name (`/usr/local/bin/gateway` -> `bookstore`), so the code they share (tokio, tonic, hyper,
//! prost, the telemetry) is in the image once instead of five times. Called through a link, it
//! is that binary; called as `bookstore NAME [ARGS]`, it is `NAME [ARGS]`.
#![forbid(unsafe_code)]

use std::{ffi::OsString, path::Path, process::ExitCode};

const NAMES: &str = "marketplace, recommendations, users, gateway, loadgen";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    if called != "bookstore" {
        return run(&called, args);
    }
    if args.len() < 2 {
        eprintln!("usage: bookstore NAME [ARGS]   (NAME: {NAMES}); or a link named NAME");
        return ExitCode::from(2);
    }
    args.remove(0);
    let name = args[0].to_string_lossy().into_owned();
    run(&name, args)
}

/// Runs binary `name` with `args` (its own name first).
fn run(name: &str, args: Vec<OsString>) -> ExitCode {
    match name {
        "marketplace" => marketplace::cli::main(args),
        "recommendations" => recommendations::cli::main(args),
        "users" => users::cli::main(args),
        "gateway" => gateway::cli::main(args),
        "loadgen" => loadgen::entry::main(args),
        other => {
            eprintln!("bookstore: no binary named {other:?} (one of: {NAMES})");
            ExitCode::from(2)
        }
    }
}
