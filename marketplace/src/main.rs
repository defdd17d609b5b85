//! The marketplace binary (its entry point is `marketplace::cli`, which the image's `bookstore` holds too).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    marketplace::cli::main(std::env::args_os().collect())
}
