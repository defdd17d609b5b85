//! The input rules of the bookstore, written once: the services enforce them, the gateway checks
//! them before any upstream call and its OpenAPI document states their bounds and patterns.
//! Plain Rust without dependencies, so every crate can link it.
#![forbid(unsafe_code)]

pub mod account;
pub mod books;
pub mod paging;

pub use account::{DisplayName, Email};
pub use books::Stars;
pub use paging::PageSizes;

/// A value that breaks a rule; the message names the field, for the caller to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// Lengths are counted in Unicode scalar values, as JSON Schema counts them.
pub fn length(s: &str) -> usize {
    s.chars().count()
}
