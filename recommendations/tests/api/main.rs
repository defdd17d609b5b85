//! The recommendations service served for real on 127.0.0.1:0 and called through a real tonic
//! client, with bearer tokens signed by a key pair made for the run: the service holds only its
//! public key, as it would the users service's.

mod helpers;
mod ratings;
mod recommending;
mod replicas;
mod storage;
mod tokens;
