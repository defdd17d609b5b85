//! The command line of `outside`: how long, how hard and how often to measure.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "The suite's CPU, latency and memory measured from outside, beside a bare floor")]
pub struct Args {
    /// Rounds of alternating runs.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
    /// Concurrent connections of the load tool.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Samples per row of the open-loop latency table, split over the rounds.
    #[arg(long, default_value_t = 100_000)]
    pub latency_samples: u64,
    /// Starts measured for exec -> SERVING.
    #[arg(long, default_value_t = 7)]
    pub starts: usize,
    /// Where the binaries are (default: beside this executable, target/release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Report file (default: target/bench/outside.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
}
