//! The gateway binary (its entry point is `gateway::cli`, which the image's `bookstore` holds too).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    gateway::cli::main(std::env::args_os().collect())
}
