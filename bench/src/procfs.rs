//! What `/proc` says of a process (CPU time, state, resident memory, environment) and of the
//! machine (idle time): the bench measures servers and load tools from outside, as the kernel
//! counts them.

use std::time::Instant;

/// The fields of `/proc/<pid>/stat` from the third on (the state), `None` once the process is
/// gone. They start after the command name's last `)`, since the name may hold spaces.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system) of a process in seconds, threads that ended included.
pub fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(pid).unwrap_or_default();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15 (1-based); the fields here start at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// The CPU seconds of all of `pids` together.
pub fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// A process's state letter (`R`, `S`, `Z`...), `None` once it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// A process's resident set (`VmRSS`) in MiB, 0 once it is gone.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The value of `key` in a process's environment as it was started.
pub fn env_var(pid: u32, key: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

/// A reading of the machine's idle time, so a latency run can say how busy its cores were: the
/// servers, loadgen and all.
///
/// Busy is the cores' wall time less their idle time. The busy fields of `/proc/stat` are not
/// used: they are sampled at the timer tick, and a load paced like the tick reads as anything
/// from 0 to 100% (at 1,000 steps/s, 0.00-1.02 cores busy per second while the processes' own
/// run time added up to 0.25-0.40), whereas idle time is measured when a core goes idle.
pub struct IdleReading {
    at: Instant,
    /// Idle + iowait of all cores so far, in seconds.
    idle_s: f64,
    cores: f64,
}

/// The machine's idle time now.
pub fn machine_idle() -> IdleReading {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(5)
        .filter_map(|t| t.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    IdleReading {
        at: Instant::now(),
        idle_s: idle / 100.0,
        cores: cores.max(1) as f64,
    }
}

/// The share of all cores busy between two readings of [`machine_idle`].
pub fn busy_share(from: &IdleReading, to: &IdleReading) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64() * to.cores;
    ((wall - (to.idle_s - from.idle_s)) / wall.max(f64::EPSILON)).clamp(0.0, 1.0)
}
