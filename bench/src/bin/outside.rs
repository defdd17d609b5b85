//! `make bench-outside`: the suite's CPU, latency and memory from outside, beside a bare floor
//! (see the `bench` crate). Needs `cargo build --release --bins` first (`make bench` does).
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    bench::outside::run(&bench::Args::parse());
}
