//! The users service served for real on 127.0.0.1:0 and called through a real tonic client.

mod accounts;
mod helpers;
mod keys;
mod lifecycle;
mod sessions;
mod storage;
