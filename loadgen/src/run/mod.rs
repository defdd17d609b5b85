//! The load run: open loop (a fixed rate of step starts, latency from each intended send time)
//! or closed loop (virtual users with think times), bounded by duration, request count and
//! in-flight requests; progress on stderr, loadgen's own metrics, a summary at the end.

mod pace;
mod record;

use std::{
    io::{IsTerminal, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use platform::metrics::Metrics;
use tokio::sync::{oneshot, watch};

use self::{
    pace::{closed_loop, open_loop},
    record::{LoadMetrics, Recorder},
};
use crate::{
    Error,
    cli::RunArgs,
    request::random_seed,
    shop::{Shop, ShopConfig},
    stats::Stats,
    steps::{Expectations, Weights},
    summary::{RunMeta, Summary},
};

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
