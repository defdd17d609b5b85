//! The client-side budget of sign-ins and sign-ups (`--auth-per-minute`): a token bucket kept
//! under the gateway's per-client budget, paused whole when the gateway answers 429 anyway.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The token bucket itself.
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// Sign-ins and sign-ups the shoppers may make, and how many they gave up for want of budget.
pub struct AuthBudget {
    /// `None`: no limit.
    bucket: Option<Mutex<Bucket>>,
    deferred: AtomicU64,
}

impl AuthBudget {
    /// `per_minute` sign-ins and sign-ups at most (0: no limit), in bursts of up to 8.
    pub fn new(per_minute: u32) -> Self {
        let bucket = (per_minute > 0).then(|| {
            let burst = f64::from(per_minute.min(8));
            Mutex::new(Bucket {
                per_second: f64::from(per_minute) / 60.0,
                burst,
                tokens: burst,
                at: Instant::now(),
            })
        });
        Self {
            bucket,
            deferred: AtomicU64::new(0),
        }
    }

    /// Takes one sign-in/sign-up from the budget.
    pub fn take(&self) -> bool {
        let Some(bucket) = &self.bucket else {
            return true;
        };
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now < b.at {
            // Paused by the gateway's 429 until its Retry-After has passed.
            drop(b);
            self.deferred.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.per_second).min(b.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            self.deferred.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The gateway said 429 to a sign-in or sign-up: no more of them until `retry_after` has
    /// passed (its per-client budget is spent, by this run or another from the same address).
    pub fn pause(&self, retry_after: Duration) {
        if let Some(bucket) = &self.bucket {
            let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
            b.tokens = 0.0;
            b.at = Instant::now() + retry_after;
        }
    }

    /// Sign-ins and sign-ups not made for want of budget (done as anonymous steps instead).
    pub fn deferred(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }
}
