//! `make bench-outside`: the suite measured from outside, as a user would, against a bare floor
//! built in the same run (`bare_gateway` → `bare_marketplace`, the binaries beside `outside`).
//!
//! - Every server is a release binary running as its own process ([`stack`]); the load comes
//!   from `wrk` (HTTP) and `h2load` (gRPC over HTTP/2) in their own processes ([`load`]), and
//!   from loadgen for the open-loop latencies ([`open_loop`]).
//! - CPU is read from `/proc/<pid>/stat` ([`procfs`]) of the exact server processes of the stack
//!   under load, before and after each run: CPU per request.
//! - Runs alternate between stacks, round after round, so drift on the machine hits them all
//!   alike ([`outside`]); medians with min-max over the rounds ([`stats`]).
#![forbid(unsafe_code)]

pub mod args;
pub mod chart;
pub mod curves;
pub mod http1;
pub mod load;
pub mod open_loop;
pub mod open_rate;
pub mod outside;
pub mod procfs;
pub mod report;
pub mod stack;
pub mod stats;

pub use args::Args;
