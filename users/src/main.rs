//! The users binary (its entry point is `users::cli`, which the image's `bookstore` holds too).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    users::cli::main(std::env::args_os().collect())
}
