//! Token buckets in a table of bounded memory: at most a fixed number of buckets
//! ([`super::MAX_CLIENTS`], [`super::MAX_ACCOUNTS`], about 3 MiB each), ordered by the moment
//! each will be full again. A full bucket holds nothing a new one would not, so such buckets are
//! dropped as they are passed; when a table is full, the bucket that will be full soonest (the
//! idlest) makes room, in O(log n). A drained bucket, the one worth keeping, goes after every
//! fuller one: a flood of new clients or accounts cannot buy an attacker a fresh budget unless
//! each of them drains its own as far (then the table is full of live buckets, which is
//! logged). The table is never wiped.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Attempts given back per minute.
    pub per_minute: u32,
    /// Attempts that can be made at once.
    pub burst: u32,
}

struct Slot {
    tokens: f64,
    /// When `tokens` was last brought up to date (ms since the table's epoch).
    at_ms: u64,
    /// When the bucket will be full again: its place in `Buckets::by_full`.
    full_ms: u64,
}

/// Token buckets by a 64-bit key, at most `capacity`, ordered by when each is full again.
pub(super) struct Buckets {
    per_ms: f64,
    burst: f64,
    capacity: usize,
    epoch: Instant,
    slots: HashMap<u64, Slot>,
    by_full: BTreeSet<(u64, u64)>,
    /// Buckets dropped while they still held spent attempts (the table was full of live ones).
    evicted_live: u64,
    warned_ms: Option<u64>,
    what: &'static str,
}

impl Buckets {
    /// Buckets held now.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn new(rate: Rate, capacity: usize, epoch: Instant, what: &'static str) -> Self {
        Self {
            per_ms: f64::from(rate.per_minute.max(1)) / 60_000.0,
            burst: f64::from(rate.burst.max(1)),
            capacity: capacity.max(1),
            epoch,
            slots: HashMap::new(),
            by_full: BTreeSet::new(),
            evicted_live: 0,
            warned_ms: None,
            what,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Takes one attempt from `key`'s bucket at `now`, or says how long until one is back.
    pub(super) fn take(&mut self, key: u64, now: Instant) -> Result<(), Duration> {
        let now_ms = self.ms(now);
        self.drop_full(now_ms);
        if !self.slots.contains_key(&key) {
            if self.slots.len() >= self.capacity {
                self.evict_idlest(now_ms);
            }
            self.slots.insert(
                key,
                Slot {
                    tokens: self.burst,
                    at_ms: now_ms,
                    full_ms: now_ms,
                },
            );
            self.by_full.insert((now_ms, key));
        }
        let taken = self.update(key, now_ms, |tokens| {
            if tokens >= 1.0 {
                (tokens - 1.0, true)
            } else {
                (tokens, false)
            }
        });
        match taken {
            Some((tokens, false)) => {
                Err(Duration::from_secs_f64((1.0 - tokens) / self.per_ms / 1e3))
            }
            _ => Ok(()),
        }
    }

    /// Gives back one attempt taken from `key` (a no-op for a bucket no longer tracked); a
    /// bucket full again is dropped at once.
    pub(super) fn give_back(&mut self, key: u64, now: Instant) {
        let now_ms = self.ms(now);
        if let Some((tokens, ())) = self.update(key, now_ms, |tokens| (tokens + 1.0, ()))
            && tokens >= self.burst
            && let Some(slot) = self.slots.remove(&key)
        {
            self.by_full.remove(&(slot.full_ms, key));
        }
        self.drop_full(now_ms);
    }

    /// Refills `key`'s bucket to `now_ms`, applies `f` to its tokens, and moves it to its new
    /// place in the order. `None` when `key` is not tracked.
    fn update<T>(
        &mut self,
        key: u64,
        now_ms: u64,
        f: impl FnOnce(f64) -> (f64, T),
    ) -> Option<(f64, T)> {
        let slot = self.slots.get_mut(&key)?;
        let elapsed = now_ms.saturating_sub(slot.at_ms) as f64;
        let refilled = (slot.tokens + elapsed * self.per_ms).min(self.burst);
        let (tokens, out) = f(refilled);
        slot.tokens = tokens.min(self.burst);
        slot.at_ms = slot.at_ms.max(now_ms);
        let full_ms = slot.at_ms + ((self.burst - slot.tokens) / self.per_ms).ceil() as u64;
        if full_ms != slot.full_ms {
            self.by_full.remove(&(slot.full_ms, key));
            self.by_full.insert((full_ms, key));
            slot.full_ms = full_ms;
        }
        Some((slot.tokens, out))
    }

    /// Drops a few buckets that are full again by `now_ms` (amortised: each is dropped once).
    fn drop_full(&mut self, now_ms: u64) {
        for _ in 0..2 {
            match self.by_full.first() {
                Some(&(full_ms, key)) if full_ms <= now_ms => {
                    self.by_full.pop_first();
                    self.slots.remove(&key);
                }
                _ => break,
            }
        }
    }

    /// Makes room: drops the bucket that will be full soonest.
    fn evict_idlest(&mut self, now_ms: u64) {
        let Some((full_ms, key)) = self.by_full.pop_first() else {
            return;
        };
        self.slots.remove(&key);
        if full_ms > now_ms {
            self.evicted_live += 1;
            if self
                .warned_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= 60_000)
            {
                self.warned_ms = Some(now_ms);
                tracing::warn!(
                    table = self.what,
                    tracked = self.slots.len() + 1,
                    evicted_live = self.evicted_live,
                    "sign-in rate limiter full of active buckets; the idlest made room"
                );
            }
        }
    }
}
