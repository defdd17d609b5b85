//! The marketplace served for real on 127.0.0.1:0 and called through a real tonic client.

mod catalog_rpcs;
mod faults;
mod helpers;
mod lifecycle;
mod pki;
mod tls;
