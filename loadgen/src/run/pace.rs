//! When steps start: the open loop's schedule (a ramp, then a fixed rate, whatever happened to
//! the others) and the closed loop's virtual users with think times.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet};

use super::{Plan, StopReason};
use crate::{alarm::Alarm, request::rng_for};

/// When the open loop's steps are due: the rate ramps up linearly from zero over the warm-up
/// (`rate · t / warmup` steps per second at `t`, so `rate · warmup / 2` steps in all), then holds.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rate: f64,
    warmup: f64,
    /// Steps due before the warm-up ends (`rate · warmup / 2`, rounded up): the unmeasured ones.
    warmup_steps: u64,
}

impl Schedule {
    fn new(rate: f64, warmup: Duration) -> Self {
        let warmup = warmup.as_secs_f64();
        Self {
            rate,
            warmup,
            warmup_steps: (rate * warmup / 2.0).ceil() as u64,
        }
    }

    /// Step `k`'s intended start, from the start of the run.
    fn due(&self, k: u64) -> Duration {
        let secs = if k < self.warmup_steps {
            // k steps by t: rate · t² / (2 · warmup) = k.
            (2.0 * self.warmup * k as f64 / self.rate).sqrt()
        } else {
            self.warmup + (k as f64 - self.rate * self.warmup / 2.0) / self.rate
        };
        Duration::from_secs_f64(secs)
    }
}

/// Open loop: step `k` is due at `start + k / rate`, whatever happened to the others.
///
/// The steps are paced on the runtime itself, woken at each step's instant by an [`Alarm`] (the
/// OS's high-resolution timer on Linux); every step already due when it wakes starts at once. A
/// step waits for a free in-flight slot when all are taken.
pub(super) async fn open_loop(
    p: Plan,
    rate: f64,
    max_in_flight: usize,
) -> (StopReason, JoinSet<()>) {
    let Plan {
        shop,
        weights,
        seed,
        recorder,
        deadline,
        budget,
        warmup,
        mut stop,
    } = p;
    let schedule = Schedule::new(rate, warmup);
    let mut alarm = Alarm::new();
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now();
    let deadline = deadline.map(tokio::time::Instant::into_std);
    let mut tasks = JoinSet::new();
    let mut k = 0u64;
    let reason = loop {
        let measured = k.checked_sub(schedule.warmup_steps);
        if let (Some(b), Some(n)) = (budget, measured)
            && n >= b
        {
            break StopReason::Requests;
        }
        let intended = start + schedule.due(k);
        if deadline.is_some_and(|d| intended >= d) {
            break StopReason::Duration;
        }
        if *stop.borrow() {
            break StopReason::Signal;
        }
        if intended > Instant::now() {
            tokio::select! {
                // A stop wins over a step due at the same moment.
                biased;
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break StopReason::Signal,
                },
                _ = alarm.until(intended) => {}
            }
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::select! {
                biased;
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break StopReason::Signal,
                },
                p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            },
        };
        let lag = Instant::now().saturating_duration_since(intended);
        recorder.metrics.lag.set(lag.as_secs_f64());
        if measured.is_some() {
            recorder.lag.add(lag);
        }
        let mut rng = rng_for(seed, k);
        let step = weights.pick(rng.below(weights.total()));
        let (shop, recorder) = (shop.clone(), recorder.clone());
        recorder.metrics.in_flight.inc();
        tasks.spawn(async move {
            let done = shop.perform(step, &mut rng).await;
            recorder.record(&done, intended, measured.is_some());
            recorder.metrics.in_flight.dec();
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        k += 1;
    };
    (reason, tasks)
}

/// Closed loop: `users` virtual users, each doing a step, thinking, and again.
pub(super) fn closed_loop(p: Plan, users: usize, think: Duration) -> JoinSet<()> {
    let started = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for u in 0..users.max(1) {
        let (shop, weights, recorder, started) = (
            p.shop.clone(),
            p.weights.clone(),
            p.recorder.clone(),
            started.clone(),
        );
        let (deadline, budget, mut stop) = (p.deadline, p.budget, p.stop.clone());
        let mut rng = rng_for(p.seed, u as u64 | 1 << 63);
        tasks.spawn(async move {
            loop {
                if *stop.borrow()
                    || deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
                    || budget.is_some_and(|b| started.fetch_add(1, Ordering::SeqCst) >= b)
                {
                    return;
                }
                let intended = Instant::now();
                let step = weights.pick(rng.below(weights.total()));
                recorder.metrics.in_flight.inc();
                let done = shop.perform(step, &mut rng).await;
                recorder.record(&done, intended, true);
                recorder.metrics.in_flight.dec();
                if !think.is_zero() {
                    // Exponential think time, capped at 10x its mean.
                    let pause = think.mul_f64((-(1.0 - rng.unit()).ln()).min(10.0));
                    let until = tokio::time::Instant::now() + pause;
                    let until = deadline.map_or(until, |d| until.min(d));
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        });
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn without_warmup_steps_are_evenly_spaced() {
        let s = Schedule::new(100.0, Duration::ZERO);
        assert_eq!(s.warmup_steps, 0);
        assert_eq!(s.due(0), Duration::ZERO);
        assert!((secs(s.due(250)) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn the_warmup_ramps_the_rate_up_then_holds_it() {
        // 1,000/s after a 2 s ramp: 1,000 steps in the ramp, a quarter of them in its first
        // half (the rate grows linearly), then one per millisecond.
        let s = Schedule::new(1000.0, Duration::from_secs(2));
        assert_eq!(s.warmup_steps, 1000);
        assert!((secs(s.due(250)) - 1.0).abs() < 1e-9);
        assert!((secs(s.due(1000)) - 2.0).abs() < 1e-9);
        assert!((secs(s.due(1001)) - 2.001).abs() < 1e-9);
        // The gaps shrink through the ramp and never go below the held rate's.
        let gaps: Vec<f64> = (1..1100)
            .map(|k| secs(s.due(k)) - secs(s.due(k - 1)))
            .collect();
        assert!(gaps.windows(2).all(|w| w[1] <= w[0] + 1e-12));
        assert!(gaps.iter().all(|g| *g >= 0.001 - 1e-9));
    }
}
