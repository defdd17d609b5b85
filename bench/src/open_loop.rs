//! Open-loop latency runs: loadgen paces one step at a fixed rate (latency from the intended send
//! time, so a stall cannot hide), while `/proc` says what the servers, loadgen and the machine
//! spent on it.

use std::{
    io::Read,
    path::Path,
    process::{Child, Command, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    procfs::{busy_share, cpu_seconds, cpu_seconds_of, machine_idle, proc_state},
    stack::Stack,
};

/// Seconds of each open-loop run's ramp-up (sent, not measured).
pub const WARMUP_S: u64 = 2;

/// What one open-loop run measured: latency in ms, the share of the cores busy, and CPU µs per
/// request sent of the stack's server processes and of loadgen.
#[derive(Clone, Copy)]
pub struct OpenLoop {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub busy: f64,
    pub servers_us: f64,
    pub loadgen_us: f64,
}

/// One open-loop run of loadgen: `samples` of `step` at `rate` per second against `stack`, after
/// a 2-second warm-up whose rate ramps up to `rate` (started at full rate, loadgen opened a
/// connection for nearly every request until the first answers came: 350 at 9,500/s, and that
/// storm made the p99); see [`OpenLoop`] for what it measures. loadgen runs on one runtime
/// thread, which also paces the steps: on two cores that is CPU the stack under test gets instead
/// (with a thread per core loadgen cost about 60 µs per request, 48 on one).
pub fn open_loop(
    bins: &Path,
    stack: &Stack,
    step: &str,
    rate: f64,
    samples: u64,
    round: usize,
) -> OpenLoop {
    let servers = stack.pids(&[]);
    let servers_from = cpu_seconds_of(&servers);
    let mut child = loadgen(bins, stack.http, step, rate, samples, round);
    // The cores' load is read over the measured part only, after the ramp-up (and loadgen's
    // start, a few ms).
    std::thread::sleep(Duration::from_secs(WARMUP_S) + Duration::from_millis(50));
    let from = machine_idle();
    let stderr = child.stderr.take().map(read_in_background);
    let mut stdout = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    let busy = busy_share(&from, &machine_idle());
    let loadgen_s = cpu_of_exited(&mut child);
    let sent = samples as f64 + rate * WARMUP_S as f64 / 2.0;
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or_default();
    if summary.is_null() {
        eprintln!("loadgen: {err}");
    }
    let ms = |k: &str| summary["latency_ms"][k].as_f64().unwrap_or(f64::NAN);
    OpenLoop {
        p50: ms("p50"),
        p99: ms("p99"),
        p999: ms("p999"),
        max: ms("max"),
        busy,
        // Per request sent, the ramp-up's included (half the rate over it).
        servers_us: (cpu_seconds_of(&servers) - servers_from) * 1e6 / sent,
        loadgen_us: loadgen_s * 1e6 / sent,
    }
}

/// loadgen sending only `step`, on one runtime thread, its JSON summary on stdout.
fn loadgen(bins: &Path, port: u16, step: &str, rate: f64, samples: u64, round: usize) -> Child {
    let weights = format!(
        "home=0,browse=0,search=0,book_page=0,similar=0,popular=0,signup=0,signin=0,rate=0,for_you=0,feed=0,book_api=0,{step}=1"
    );
    Command::new(bins.join("loadgen"))
        .env("TOKIO_WORKER_THREADS", "1")
        .args(["--target", &format!("http://127.0.0.1:{port}")])
        .args([
            "--rate",
            &rate.to_string(),
            "--requests",
            &samples.to_string(),
        ])
        .args(["--duration", "0", "--warmup", &format!("{WARMUP_S}s")])
        .args(["--weights", &weights])
        .args(["--json", "--progress-every", "0"])
        .args(["--seed", &(7 + round).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen (cargo build --release --bins)")
}

fn read_in_background(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = from.read_to_string(&mut s);
        s
    })
}

/// The CPU seconds of a child that is exiting, read before it is reaped: a zombie's
/// /proc/<pid>/stat still holds the times of all its threads.
fn cpu_of_exited(child: &mut Child) -> f64 {
    let exited = Instant::now();
    while proc_state(child.id()) != Some('Z') && exited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = cpu_seconds(child.id());
    let _ = child.wait();
    seconds
}
