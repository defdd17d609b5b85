//! The load run: open loop (a fixed rate of step starts, latency from each intended send time)
//! or closed loop (virtual users with think times), bounded by duration, request count and
//! in-flight requests; progress on stderr, loadgen's own metrics, a summary at the end.

use std::{
    io::{IsTerminal, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use platform::metrics::Metrics;
use prometheus::{Gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge};
use tokio::{
    sync::{Semaphore, oneshot, watch},
    task::JoinSet,
};

use crate::{
    Error,
    alarm::Alarm,
    cli::RunArgs,
    request::{random_seed, rng_for},
    shop::{Done, Shop, ShopConfig},
    stats::{ErrorSample, RunMeta, ScheduleLag, Stats, Summary},
    steps::{Expectations, Weights},
};

/// loadgen's own series, so its traffic shows beside the suite's in the dashboards.
#[derive(Clone)]
struct LoadMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    lag: Gauge,
    feed_events: IntCounter,
}

impl LoadMetrics {
    fn new(m: &Metrics) -> Self {
        let lag = Gauge::new(
            "loadgen_schedule_lag_seconds",
            "How late the last step started after its intended time (open loop; above zero when \
             --max-in-flight holds steps back).",
        )
        .expect("valid gauge");
        let _ = m.registry().register(Box::new(lag.clone()));
        let feed_events = IntCounter::new(
            "loadgen_feed_events_total",
            "Rating events read from the live feed (SSE).",
        )
        .expect("valid counter");
        let _ = m.registry().register(Box::new(feed_events.clone()));
        Self {
            requests: m.counter_vec(
                "loadgen_requests_total",
                "Requests loadgen sent, by step and outcome (ok, expected, or the kind of an \
                 unexpected error: 4xx, 5xx, transport, timeout).",
                &["step", "outcome"],
            ),
            duration: m.histogram_vec(
                "loadgen_request_duration_seconds",
                "Latency of loadgen's requests from their intended send time, by step.",
                &["step"],
            ),
            in_flight: m.gauge("loadgen_requests_in_flight", "Requests loadgen awaits."),
            lag,
            feed_events,
        }
    }
}

/// Where every finished step is written down.
#[derive(Clone)]
struct Recorder {
    stats: Arc<Mutex<Stats>>,
    metrics: LoadMetrics,
    lag: Arc<LagTally>,
}

/// The open loop's own lateness over its measured steps (the pacing loop writes, the summary
/// reads).
#[derive(Default)]
struct LagTally {
    max_us: AtomicU64,
    late: AtomicU64,
}

impl LagTally {
    fn add(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        if us > 1000 {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self) -> ScheduleLag {
        ScheduleLag {
            max_ms: self.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
            late_over_1ms: self.late.load(Ordering::Relaxed),
        }
    }
}

impl Recorder {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a finished step down: in loadgen's metrics always, in the summary when `measured`
    /// (a warm-up's steps are not).
    fn record(&self, done: &Done, intended: Instant, measured: bool) {
        let latency = done.answered.saturating_duration_since(intended);
        let name = done.step.name();
        self.metrics
            .requests
            .with_label_values(&[name, done.outcome.label()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[name])
            .observe(latency.as_secs_f64());
        self.metrics.feed_events.inc_by(done.feed_events);
        if !measured {
            return;
        }
        let mut s = self.stats();
        s.record(done.step, done.outcome, latency);
        s.feed_events += done.feed_events;
        if done.outcome.kind().is_some() {
            s.sample(ErrorSample {
                step: name.to_owned(),
                expected: !done.outcome.is_unexpected_error(),
                outcome: done.outcome.label().to_owned(),
                status: done.outcome.status(),
                detail: done.detail.clone(),
                trace_id: done.trace_id.clone(),
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Duration,
    Requests,
    Signal,
}

impl StopReason {
    fn name(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Requests => "requests",
            StopReason::Signal => "signal",
        }
    }
}

struct Plan {
    shop: Arc<Shop>,
    weights: Arc<Weights>,
    seed: u64,
    recorder: Recorder,
    /// When to stop starting steps (none: `--duration 0`).
    deadline: Option<tokio::time::Instant>,
    /// Steps to start after the warm-up (none: no limit).
    budget: Option<u64>,
    /// Open loop: how long the rate ramps up before steps are measured.
    warmup: Duration,
    stop: watch::Receiver<bool>,
}

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
async fn open_loop(p: Plan, rate: f64, max_in_flight: usize) -> (StopReason, JoinSet<()>) {
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
fn closed_loop(p: Plan, users: usize, think: Duration) -> JoinSet<()> {
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

/// Draws the progress line every `every` until `stop` is dropped.
fn progress(
    recorder: Recorder,
    every: Duration,
    started: Instant,
    mut stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if every.is_zero() {
            let _ = stop.await;
            return;
        }
        let tty = std::io::stderr().is_terminal();
        let mut last = (started, 0u64);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            let done = tokio::select! {
                _ = tick.tick() => false,
                _ = &mut stop => true,
            };
            let (requests, errors, unexpected, p99) = {
                let s = recorder.stats();
                (s.requests(), s.errors(), s.unexpected(), s.p99())
            };
            let now = Instant::now();
            let rps =
                (requests - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, requests);
            let line = format!(
                "[{:>7.1}s] requests {requests}  rps {rps:.1}  errors {errors} (unexpected {unexpected})  p99 {:.1} ms  in flight {}",
                now.duration_since(started).as_secs_f64(),
                p99.as_secs_f64() * 1000.0,
                recorder.metrics.in_flight.get(),
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "loadgen: {line}")
            };
            let _ = err.flush();
            if done {
                if tty {
                    let _ = writeln!(err);
                }
                return;
            }
        }
    })
}

/// Runs the load as `args` say until its duration, its request count or a signal; returns the
/// summary.
pub async fn run(args: RunArgs) -> Result<Summary, Error> {
    let weights = Arc::new(Weights::parse(&args.weights).map_err(Error::Config)?);
    let expect = Expectations::parse(&args.expect_status, args.expect_transport_errors)
        .map_err(Error::Config)?;
    let expected_statuses = expect.describe();
    let seed = args.seed.unwrap_or_else(random_seed);
    let shop = Arc::new(Shop::new(ShopConfig {
        target: args.target.target.clone(),
        timeout: args.target.timeout,
        feed_time: args.feed_time,
        accounts: args.accounts,
        account_prefix: args.account_prefix.clone(),
        trace_sample_ratio: args.trace_sample_ratio,
        expect,
        auth_per_minute: args.auth_per_minute,
    })?);
    let metrics = Metrics::new();
    let recorder = Recorder {
        stats: Arc::new(Mutex::new(Stats::default())),
        metrics: LoadMetrics::new(&metrics),
        lag: Arc::default(),
    };
    let (ready_tx, ready_rx) = watch::channel(false);
    let (admin_stop_tx, admin_stop_rx) = oneshot::channel::<()>();
    let admin = match args.metrics_addr {
        Some(addr) => {
            let listener =
                platform::listen::bind(addr, "metrics-addr", "LOADGEN_METRICS_ADDR").await?;
            let router = platform::admin::router(metrics.clone(), ready_rx, None);
            Some(tokio::spawn(platform::admin::serve(
                listener,
                router,
                async move {
                    let _ = admin_stop_rx.await;
                },
            )))
        }
        None => None,
    };
    let _ = ready_tx.send(true);

    let rate = match (args.rate, args.users) {
        (Some(r), _) => Some(r),
        (None, Some(_)) => None,
        (None, None) => Some(20.0),
    };
    let started = Instant::now();
    let (progress_stop, progress_rx) = oneshot::channel();
    let progress = progress(
        recorder.clone(),
        args.target.progress_every,
        started,
        progress_rx,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let plan = Plan {
        shop: shop.clone(),
        weights,
        seed,
        recorder: recorder.clone(),
        deadline: (!args.duration.is_zero())
            .then(|| tokio::time::Instant::now() + args.warmup + args.duration),
        budget: args.requests,
        warmup: args.warmup,
        stop: stop_rx,
    };
    let mut signal = Box::pin(platform::shutdown::shutdown_signal());
    let (reason, mut tasks) = match rate {
        Some(rate) => {
            let mut driver = tokio::spawn(open_loop(plan, rate, args.max_in_flight));
            tokio::select! {
                r = &mut driver => r.expect("the scheduler does not panic"),
                _ = &mut signal => {
                    let _ = stop_tx.send(true);
                    driver.await.expect("the scheduler does not panic")
                }
            }
        }
        None => {
            let budget = plan.budget;
            let deadline = plan.deadline;
            let mut tasks = closed_loop(plan, args.users.unwrap_or(1), args.think_time);
            let mut signalled = false;
            loop {
                tokio::select! {
                    next = tasks.join_next() => if next.is_none() { break },
                    _ = &mut signal, if !signalled => {
                        signalled = true;
                        let _ = stop_tx.send(true);
                        break;
                    }
                }
            }
            let reason = if signalled {
                StopReason::Signal
            } else if budget.is_some() && deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
                StopReason::Requests
            } else {
                StopReason::Duration
            };
            (reason, tasks)
        }
    };
    let stopped = Instant::now();
    let _ = ready_tx.send(false);
    let _ = stop_tx.send(true);
    // In-flight steps finish (a live feed reads to its end), at most a timeout and a feed later;
    // a second signal cuts that short.
    let drain = args.target.timeout + args.feed_time + Duration::from_secs(1);
    let mut second = Box::pin(platform::shutdown::shutdown_signal());
    let drained = tokio::time::timeout(drain, async {
        tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => {}
            _ = &mut second => {}
        }
    })
    .await;
    if drained.is_err() || !tasks.is_empty() {
        tasks.abort_all();
    }
    let elapsed = stopped
        .saturating_duration_since(started + args.warmup)
        .as_secs_f64();
    let _ = progress_stop.send(());
    let _ = progress.await;
    if let Some(admin) = admin {
        let held = stopped.elapsed();
        if held < args.shutdown_delay {
            tokio::time::sleep(args.shutdown_delay - held).await;
        }
        let _ = admin_stop_tx.send(());
        let _ = admin.await;
    }
    let summary = recorder.stats().summary(RunMeta {
        target: shop.base().to_owned(),
        mode: if rate.is_some() { "open" } else { "closed" }.into(),
        rate,
        users: if rate.is_none() { args.users } else { None },
        elapsed_s: elapsed,
        warmup_s: args.warmup.as_secs_f64(),
        stopped_by: reason.name().into(),
        max_error_rate: args.max_error_rate,
        expected_statuses,
        expect_transport_errors: args.expect_transport_errors,
        auth_deferred: shop.auth_deferred(),
        schedule_lag: rate.map(|_| recorder.lag.get()),
    });
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn the_lag_tally_keeps_the_worst_and_counts_steps_over_a_millisecond() {
        let t = LagTally::default();
        for us in [10, 1500, 700, 4200, 1000] {
            t.add(Duration::from_micros(us));
        }
        assert_eq!(
            t.get(),
            ScheduleLag {
                max_ms: 4.2,
                late_over_1ms: 2
            }
        );
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
