//! The recommendations service served for real on 127.0.0.1:0 and called through a real tonic
//! client, with bearer tokens signed by the same key the users service would use.

mod helpers;
mod ratings;
mod recommending;
mod replicas;
mod storage;
