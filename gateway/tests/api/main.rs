//! The gateway's router tested with `oneshot`, its upstreams real sockets that misbehave.

mod connections;
mod contract;
mod degraded;
mod document_rules;
mod errors;
mod fakes;
mod feed;
mod headers;
mod helpers;
mod limits;
mod pages;
mod picks;
// The marketplace tests' throwaway CA (some of its helpers are used there only).
#[allow(dead_code)]
#[path = "../../../marketplace/tests/api/pki.rs"]
mod pki;
mod sign_in_budget;
mod slow_clients;
mod tls;
