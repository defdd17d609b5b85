//! Deadlines, both halves in one room. A call's `grpc-timeout` is read once into a [`Deadline`]
//! that travels in the request's extensions ([`Deadline::of`]); every layer that needs it reads
//! it from there. The client half ([`client`]) states what is left on each outgoing call, the
//! server half ([`server`]) answers DEADLINE_EXCEEDED when it runs out; [`wire`] is the one
//! encoder and parser of the header.

pub mod client;
pub mod server;
pub mod wire;

use std::time::{Duration, Instant};

pub use self::{
    server::{DeadlineFuture, DeadlineLayer, DeadlineService, call_budget},
    wire::{GRPC_TIMEOUT, encode_grpc_timeout, parse_grpc_timeout},
};

/// When a call must have its answer: the time it was given and when it was given it.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    start: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            start: Instant::now(),
            budget,
        }
    }

    /// The time this deadline was given when it was made.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// When this deadline was made (the time since tells whether what is left must be restated).
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The time left; zero once the deadline has passed.
    pub fn left(&self) -> Duration {
        self.budget.saturating_sub(self.start.elapsed())
    }

    /// The time left, or DEADLINE_EXCEEDED when none is.
    pub fn remaining(&self) -> Result<Duration, tonic::Status> {
        let left = self.left();
        if left.is_zero() {
            Err(tonic::Status::deadline_exceeded(
                "the request ran out of time",
            ))
        } else {
            Ok(left)
        }
    }

    /// The caller's deadline in `headers` (`grpc-timeout`), counted from now.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(Self::after)
    }

    /// The deadline of `req`: the one in its extensions, else its `grpc-timeout` parsed and put
    /// there, so whichever layer reads first parses it and the others share the same value.
    pub fn of<B>(req: &mut http::Request<B>) -> Option<Self> {
        if let Some(d) = req.extensions().get::<Self>() {
            return Some(*d);
        }
        let d = Self::from_headers(req.headers())?;
        req.extensions_mut().insert(d);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_parsed_once_and_then_read_from_the_extensions() {
        let mut req = http::Request::builder()
            .header(GRPC_TIMEOUT, "250m")
            .body(())
            .unwrap();
        let first = Deadline::of(&mut req).unwrap();
        assert_eq!(first.budget(), Duration::from_millis(250));
        // A header changed afterwards is not read again: the extension is the call's deadline.
        req.headers_mut()
            .insert(GRPC_TIMEOUT, http::HeaderValue::from_static("9S"));
        let again = Deadline::of(&mut req).unwrap();
        assert_eq!(again.budget(), Duration::from_millis(250));
        assert_eq!(again.started(), first.started());
    }

    #[test]
    fn a_request_without_grpc_timeout_has_no_deadline() {
        let mut req = http::Request::new(());
        assert!(Deadline::of(&mut req).is_none());
    }

    #[test]
    fn a_spent_deadline_has_nothing_remaining() {
        let d = Deadline::after(Duration::ZERO);
        assert_eq!(d.left(), Duration::ZERO);
        assert_eq!(
            d.remaining().unwrap_err().code(),
            tonic::Code::DeadlineExceeded
        );
    }
}
