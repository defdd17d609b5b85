//! What the benchmark reads of the running service and of its workload: memory from /proc,
//! query latencies, and the readers' spread of activity.

use std::time::Duration;

use workload::Synthetic;

use crate::common::Error;

/// Resident and peak resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mem {
    pub(crate) rss: u64,
    pub(crate) hwm: u64,
}

impl Mem {
    pub(crate) fn of(pid: u32) -> Result<Self, Error> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64, Error> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| format!("{name} missing from /proc/{pid}/status"))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kib * 1024)
        };
        Ok(Self {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }
}

#[derive(Default)]
pub(crate) struct Latencies {
    pub(crate) samples: Vec<Duration>,
    pub(crate) results: usize,
}

impl Latencies {
    pub(crate) fn record(&mut self, d: Duration, results: usize) {
        self.samples.push(d);
        self.results += results;
    }

    pub(crate) fn calls(&self) -> usize {
        self.samples.len()
    }

    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let mut v = self.samples.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }

    pub(crate) fn row(&self, name: &str) -> String {
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
        format!(
            "| {name} | {} | {} | {} | {} | {:.1} |",
            self.calls(),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.samples.iter().max().copied().unwrap_or_default()),
            self.results as f64 / self.calls().max(1) as f64
        )
    }
}

pub(crate) struct ActivitySummary {
    pub(crate) median: u32,
    pub(crate) p99: u32,
    pub(crate) max: u32,
    pub(crate) heavy_share: f64,
}

impl ActivitySummary {
    pub(crate) fn of(s: &Synthetic) -> Self {
        let mut a: Vec<u32> = (0..s.users()).map(|u| s.activity(u)).collect();
        a.sort_unstable();
        let total: u64 = a.iter().map(|&n| u64::from(n)).sum();
        let heavy: u64 = a.iter().filter(|&&n| n > 50).map(|&n| u64::from(n)).sum();
        Self {
            median: a[a.len() / 2],
            p99: a[(a.len() * 99 / 100).min(a.len() - 1)],
            max: a[a.len() - 1],
            heavy_share: heavy as f64 / total.max(1) as f64,
        }
    }
}
