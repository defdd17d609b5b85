//! The gateway's router tested with `oneshot`, its upstreams real sockets that misbehave.

mod contract;
mod degraded;
mod errors;
mod helpers;
mod limits;
