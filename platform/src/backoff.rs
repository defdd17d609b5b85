//! Waiting between attempts, written once: exponential growth from a base to a cap, either as it
//! is (a queue's retry schedule) or with full jitter (many clients retrying at once spread out).

use std::time::Duration;

/// An exponential backoff: `base` after the first failure, doubling with each further one, never
/// more than `cap`; jittered delays are drawn from `floor..floor + that`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub floor: Duration,
}

impl Backoff {
    /// The wait after failure number `failures` (1 for the first; 0 counts as 1), no jitter:
    /// `base * 2^(failures - 1)`, at most `cap`.
    pub fn step(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// Full jitter (AWS's "exponential backoff and jitter"): `floor` plus a random whole number
    /// of milliseconds below [`Backoff::step`], so retries from many callers do not line up.
    pub fn jittered(&self, failures: u32) -> Duration {
        let ceiling = u64::try_from(self.step(failures).as_millis()).unwrap_or(u64::MAX);
        self.floor + Duration::from_millis(crate::random_below(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
        floor: Duration::from_millis(20),
    };

    #[test]
    fn a_step_doubles_from_the_base_to_the_cap() {
        assert_eq!(B.step(0), Duration::from_millis(100));
        assert_eq!(B.step(1), Duration::from_millis(100));
        assert_eq!(B.step(2), Duration::from_millis(200));
        assert_eq!(B.step(6), Duration::from_millis(3_200));
        assert_eq!(B.step(7), Duration::from_secs(5));
        assert_eq!(B.step(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_jittered_wait_lies_between_the_floor_and_the_floor_plus_the_step() {
        for _ in 0..200 {
            let d = B.jittered(3);
            assert!(d >= B.floor && d < B.floor + B.step(3), "{d:?}");
        }
    }
}
