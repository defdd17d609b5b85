//! A log line that may be written at most once per interval, counting the events in between: for
//! what can repeat thousands of times a second under attack (shed requests), so a flood is one
//! line per interval saying how many, not one line each. Two atomics, no lock.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::{Duration, Instant},
};

/// See the module docs. `hit()` counts an event and says when a line is due.
#[derive(Debug)]
pub struct LogThrottle {
    every_secs: u64,
    epoch: Instant,
    /// The second (since `epoch`, plus one) of the last line; 0: none yet.
    last: AtomicU64,
    /// Events since the last line.
    pending: AtomicU64,
}

impl LogThrottle {
    /// At most one line per `every` (whole seconds, at least one).
    pub fn new(every: Duration) -> Self {
        Self {
            every_secs: every.as_secs().max(1),
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    /// The interval between lines.
    pub fn every(&self) -> Duration {
        Duration::from_secs(self.every_secs)
    }

    /// Counts one event; `Some(n)` when a line is due now, `n` the events since the last line
    /// (this one included). Of callers racing for the same line, one wins; the others' events
    /// go into the next line's count.
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&self, now: Instant) -> Option<u64> {
        self.pending.fetch_add(1, Relaxed);
        let second = now.saturating_duration_since(self.epoch).as_secs() + 1;
        let last = self.last.load(Relaxed);
        if last != 0 && second < last + self.every_secs {
            return None;
        }
        self.last
            .compare_exchange(last, second, Relaxed, Relaxed)
            .ok()?;
        Some(self.pending.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_then_one_line_per_interval_counts_the_rest() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let at = |s: u64| t.epoch + Duration::from_millis(s);
        assert_eq!(t.hit_at(at(0)), Some(1));
        for ms in 1..1_000 {
            assert_eq!(t.hit_at(at(ms * 9)), None, "{ms}");
        }
        // Ten seconds after the first line: one line for the 999 held back and this one.
        assert_eq!(t.hit_at(at(10_000)), Some(1_000));
        assert_eq!(t.hit_at(at(10_001)), None);
        // A quiet spell: the next event is logged at once.
        assert_eq!(t.hit_at(at(60_000)), Some(2));
    }

    #[test]
    fn threads_racing_write_one_line_and_lose_no_event() {
        let t = std::sync::Arc::new(LogThrottle::new(Duration::from_secs(3_600)));
        let lines: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || (0..1_000).filter_map(|_| t.hit()).count() as u64)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(lines, 1, "one line within the hour");
        let logged = 8_000 - t.pending.load(Relaxed);
        assert!((1..=8_000).contains(&logged), "{logged}");
        // The next due line carries what was held back.
        t.last.store(0, Relaxed);
        assert_eq!(t.hit().map(|n| n + logged), Some(8_001));
    }
}
