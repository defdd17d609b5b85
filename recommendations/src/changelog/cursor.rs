//! Gap tracking: where a replica stands in the log, and the positions skipped over that may
//! still commit.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// Most skipped positions held at once; beyond it the oldest are given up.
const MAX_GAPS: usize = 10_000;

/// Where this replica stands in the log.
#[derive(Debug)]
pub(super) struct Cursor {
    /// The highest position read.
    pub(super) last: i64,
    /// Positions below `last` not seen yet, with when each was first missed.
    pub(super) gaps: BTreeMap<i64, Instant>,
    /// When the last read found nothing more to read.
    pub(super) caught_up: Instant,
}

impl Cursor {
    pub(super) fn new(snapshot_position: i64, gaps: &[i64], now: Instant) -> Self {
        Self {
            last: snapshot_position,
            gaps: gaps.iter().map(|&p| (p, now)).collect(),
            caught_up: now,
        }
    }

    /// Whether the change at `position` has been applied (or was in the snapshot).
    pub(super) fn seen(&self, position: i64) -> bool {
        position <= self.last && !self.gaps.contains_key(&position)
    }

    /// Takes the change at `position`: true when it is new here and must be applied.
    pub(super) fn take(&mut self, position: i64, now: Instant) -> bool {
        if position > self.last {
            for skipped in (self.last + 1)..position {
                self.gaps.insert(skipped, now);
            }
            while self.gaps.len() > MAX_GAPS {
                self.gaps.pop_first();
            }
            self.last = position;
            true
        } else {
            self.gaps.remove(&position).is_some()
        }
    }

    /// Gives up the gaps missed for longer than `wait`.
    pub(super) fn expire(&mut self, now: Instant, wait: Duration) {
        self.gaps
            .retain(|_, missed| now.duration_since(*missed) < wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_skipped_over_is_awaited_and_taken_once_when_it_commits() {
        let t0 = Instant::now();
        let mut c = Cursor::new(4, &[], t0);
        assert!(c.take(6, t0));
        assert!(!c.seen(5) && c.seen(4) && c.seen(6));
        assert!(c.take(5, t0), "the late commit is new here");
        assert!(
            !c.take(5, t0) && !c.take(6, t0),
            "each change is applied once"
        );
        assert!(c.gaps.is_empty() && c.seen(5));
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait() {
        let t0 = Instant::now();
        let mut c = Cursor::new(0, &[2], t0);
        assert!(c.take(5, t0));
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        c.expire(t0 + Duration::from_secs(29), Duration::from_secs(30));
        assert_eq!(c.gaps.len(), 4);
        c.expire(t0 + Duration::from_secs(30), Duration::from_secs(30));
        assert!(c.gaps.is_empty());
    }
}
