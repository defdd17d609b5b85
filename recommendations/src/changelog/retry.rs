//! How long the follower, its snapshot loads and the listener wait after a failure.

use std::time::Duration;

use platform::backoff::Backoff;

/// 100 ms doubling per failure, to 5 s.
pub(super) const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    floor: Duration::ZERO,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds() {
        assert_eq!(BACKOFF.step(1), Duration::from_millis(100));
        assert_eq!(BACKOFF.step(2), Duration::from_millis(200));
        assert_eq!(BACKOFF.step(30), Duration::from_secs(5));
    }
}
