//! Counting: this binary's `drive` under `valgrind --tool=callgrind`, twice per path, and the
//! instructions per request as the difference of the two totals over the difference of requests
//! (start-up, warm-up and shutdown cancel out).

use std::{path::Path, process::Command};

use crate::drive::HotPath;

/// Requests of the short and the long run.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub short: u32,
    pub long: u32,
}

/// The instructions one `drive` of `requests` executed, all threads together.
fn total(valgrind: &str, path: HotPath, requests: u32, dir: &Path) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this binary: {e}"))?;
    let out = dir.join(format!("callgrind.{}.{requests}.out", path.name()));
    let status = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--quiet")
        .arg(exe)
        .args(["drive", path.name(), "--requests", &requests.to_string()])
        .env("RUST_LOG", "off")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .status()
        .map_err(|e| format!("{valgrind}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{} under callgrind ({requests} requests) failed: {status}",
            path.name()
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    read_total(&text).ok_or_else(|| format!("{}: no `totals:` or `summary:` line", out.display()))
}

/// The `totals:` (else `summary:`) line's first event, Ir, of a callgrind output file.
pub fn read_total(text: &str) -> Option<u64> {
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    line("totals:").or_else(|| line("summary:"))
}

/// Instructions per request of `path`.
pub fn per_request(valgrind: &str, path: HotPath, counts: Counts) -> Result<u64, String> {
    let dir = std::env::temp_dir();
    let short = total(valgrind, path, counts.short, &dir)?;
    let long = total(valgrind, path, counts.long, &dir)?;
    let extra = long.saturating_sub(short);
    Ok(extra / u64::from(counts.long - counts.short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_totals_line_else_the_summary() {
        let file = "version: 1\nevents: Ir\nsummary: 1234\nfn=main\n0 12\ntotals: 5678\n";
        assert_eq!(read_total(file), Some(5678));
        assert_eq!(read_total("events: Ir\nsummary: 42 7\n"), Some(42));
        assert_eq!(read_total("events: Ir\n"), None);
    }
}
