//! The gateway's router tested with `oneshot`, its upstreams real sockets that misbehave.

mod degraded;
mod errors;
mod helpers;
