//! An open-loop HTTP/1.1 load at a fixed offered rate, the way wrk2 makes one: request `i` is due
//! at `start + i / rate` whether or not earlier ones were answered, a fixed set of keep-alive
//! connections takes the due requests in turn, and each latency is counted from when the request
//! was due (sent, the load's own timer lateness aside), so a server that stalls is charged for
//! every request that waited for a connection (no coordinated omission). Plain sockets, no HTTP client library between the load and what it measures.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::mpsc,
};

/// One request of the load: made afresh for each send (`n` counts them), so ids and bodies vary.
pub type MakeRequest = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// What one run at one offered rate measured.
#[derive(Clone, Copy, Debug)]
pub struct RateRun {
    pub offered: f64,
    /// Answers per second within the measured window.
    pub achieved: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx, and requests left unanswered when the run ended.
    pub failed: u64,
}

/// How one run is shaped.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub connections: usize,
    /// Sent but not measured, so connections and caches are warm.
    pub warmup: Duration,
    pub measured: Duration,
    /// How long answers still due are waited for after the last send.
    pub drain: Duration,
}

/// Offers `rate` requests per second of `make` to `127.0.0.1:port` for the warm-up and the
/// measured window; see the module header.
pub fn run(port: u16, rate: f64, shape: Shape, make: MakeRequest) -> RateRun {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the load")
        .block_on(offer(port, rate, shape, make))
}

/// A due request: when it was sent (its due time, or just after) and whether it falls in the
/// measured window.
type Due = (Instant, bool);

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    failed: u64,
    /// Answers (to any request) that arrived within the measured window.
    in_window: u64,
}

async fn offer(port: u16, rate: f64, shape: Shape, make: MakeRequest) -> RateRun {
    let (tx, rx) = mpsc::unbounded_channel::<Due>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.measured;
    let mut workers = Vec::new();
    for _ in 0..shape.connections {
        let (rx, tally, make) = (rx.clone(), tally.clone(), make.clone());
        let window = (measure_from, end);
        workers.push(tokio::spawn(connection(port, rx, tally, make, window)));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut sent_measured = 0u64;
    for i in 0u64.. {
        let due = start + interval.mul_f64(i as f64);
        if due >= end {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        } else {
            // Behind schedule: let the connections run before sending more.
            tokio::task::yield_now().await;
        }
        let measured = due >= measure_from;
        sent_measured += u64::from(measured);
        // Counted from when it was sent: never before it was due, and the timer's own
        // lateness (up to a millisecond) is the load's, not the server's.
        if tx.send((Instant::now(), measured)).is_err() {
            break;
        }
    }
    drop(tx);
    let deadline = tokio::time::Instant::from_std(Instant::now() + shape.drain);
    for w in workers {
        if tokio::time::timeout_at(deadline, w).await.is_err() {
            break;
        }
    }
    let mut t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    let answered = t.latencies_us.len() as u64;
    // Requests never answered count as slower than any answer.
    let unanswered = sent_measured.saturating_sub(answered + t.failed);
    t.latencies_us
        .extend(std::iter::repeat_n(u64::MAX, unanswered as usize));
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        match t.latencies_us.len() {
            0 => f64::INFINITY,
            n => {
                let v = t.latencies_us[((n as f64 * p).ceil() as usize).clamp(1, n) - 1];
                if v == u64::MAX {
                    f64::INFINITY
                } else {
                    v as f64 / 1000.0
                }
            }
        }
    };
    RateRun {
        offered: rate,
        achieved: t.in_window as f64 / shape.measured.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed: t.failed + unanswered,
    }
}

/// The rate `connections` keep-alive connections reach sending back to back for `within`: the
/// stack's capacity, where a sweep's steps are placed.
pub fn closed_loop_rate(port: u16, connections: usize, within: Duration, make: MakeRequest) -> f64 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the load")
        .block_on(async move {
            let end = Instant::now() + within;
            let mut tasks = Vec::new();
            for _ in 0..connections {
                let make = make.clone();
                tasks.push(tokio::spawn(async move {
                    let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await else {
                        return 0u64;
                    };
                    let _ = s.set_nodelay(true);
                    let mut conn = BufReader::new(s);
                    let mut answered = 0u64;
                    while Instant::now() < end && exchange(&mut conn, &make(answered)).await {
                        answered += 1;
                    }
                    answered
                }));
            }
            let mut total = 0u64;
            for t in tasks {
                total += t.await.unwrap_or(0);
            }
            total as f64 / within.as_secs_f64()
        })
}

/// One keep-alive connection taking due requests until there are none; reconnects after an error.
async fn connection(
    port: u16,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Due>>>,
    tally: Arc<Mutex<Tally>>,
    make: MakeRequest,
    window: (Instant, Instant),
) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut n = 0u64;
    loop {
        let Some((due, measured)) = rx.lock().await.recv().await else {
            return;
        };
        n += 1;
        if conn.is_none() {
            conn = TcpStream::connect(("127.0.0.1", port)).await.ok().map(|s| {
                let _ = s.set_nodelay(true);
                BufReader::new(s)
            });
        }
        let ok = match conn.as_mut() {
            Some(c) => exchange(c, &make(n)).await,
            None => false,
        };
        if !ok {
            conn = None;
        }
        let now = Instant::now();
        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
        t.in_window += u64::from(ok && now >= window.0 && now < window.1);
        if measured {
            if ok {
                t.latencies_us.push(due.elapsed().as_micros() as u64);
            } else {
                t.failed += 1;
            }
        }
    }
}

/// Sends `request` and reads its whole answer; whether it was a 2xx.
async fn exchange(conn: &mut BufReader<TcpStream>, request: &str) -> bool {
    if conn.get_mut().write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut line = String::new();
    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
        return false;
    }
    let ok = line.split(' ').nth(1).is_some_and(|s| s.starts_with('2'));
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16);
            let Ok(size) = size else { return false };
            let mut chunk = vec![0u8; size + 2];
            if conn.read_exact(&mut chunk).await.is_err() {
                return false;
            }
            if size == 0 {
                return ok;
            }
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.is_ok() && ok
}
