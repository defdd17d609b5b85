//! The recommendations binary (its entry point is `recommendations::cli`, which the image's `bookstore` holds too).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    recommendations::cli::main(std::env::args_os().collect())
}
