//! The loadgen binary: `loadgen [FLAGS]` runs shoppers against the gateway, `loadgen seed` seeds
//! it. Exit status: 0 when unexpected errors stay within --max-error-rate (seed: no error at all),
//! 1 when they do not, 2 for bad flags or a run that could not start.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    loadgen::entry::main(std::env::args_os().collect())
}
