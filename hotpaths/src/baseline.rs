//! The committed baseline (instructions per request per path, and what it was made with) and the
//! comparison the alarm makes against it.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

/// `hotpaths/baseline.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// A path failing the check rose by more than this, in percent.
    pub threshold_percent: f64,
    /// Requests of the short and the long callgrind run.
    pub requests: [u32; 2],
    /// valgrind, rustc and CPU the figures were counted with.
    pub made_with: BTreeMap<String, String>,
    /// Path name → instructions per request.
    pub instructions_per_request: BTreeMap<String, u64>,
}

impl Baseline {
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
    }

    pub fn write(&self, file: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))
    }
}

/// One path's figure beside its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub path: String,
    pub baseline: Option<u64>,
    pub now: u64,
    /// Percent change from the baseline; `None` without one.
    pub change: Option<f64>,
    pub failed: bool,
}

/// Compares `now` with `baseline`: a path fails when it rose by more than `threshold` percent
/// or has no baseline figure.
pub fn judge(baseline: &Baseline, path: &str, now: u64, threshold: f64) -> Verdict {
    let base = baseline.instructions_per_request.get(path).copied();
    let change = base
        .filter(|b| *b > 0)
        .map(|b| (now as f64 - b as f64) / b as f64 * 100.0);
    Verdict {
        path: path.to_owned(),
        baseline: base,
        now,
        change,
        failed: change.is_none_or(|c| c > threshold),
    }
}

/// What valgrind, rustc and the CPU say they are.
pub fn made_with(valgrind: &str) -> BTreeMap<String, String> {
    let first_line = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    BTreeMap::from([
        ("valgrind".into(), first_line(valgrind, "--version")),
        ("rustc".into(), first_line("rustc", "--version")),
        ("cpu".into(), cpu),
        ("profile".into(), "release".into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(book: u64) -> Baseline {
        Baseline {
            threshold_percent: 3.0,
            requests: [20, 120],
            made_with: BTreeMap::new(),
            instructions_per_request: BTreeMap::from([("get-book".into(), book)]),
        }
    }

    #[test]
    fn a_rise_beyond_the_threshold_fails_and_one_within_it_passes() {
        let b = baseline(1_000_000);
        let v = judge(&b, "get-book", 1_040_000, 3.0);
        assert!(v.failed);
        assert!((v.change.unwrap() - 4.0).abs() < 1e-9);
        assert!(!judge(&b, "get-book", 1_029_000, 3.0).failed);
    }

    #[test]
    fn a_fall_passes_however_large() {
        assert!(!judge(&baseline(1_000_000), "get-book", 500_000, 3.0).failed);
    }

    #[test]
    fn a_path_missing_from_the_baseline_fails() {
        let v = judge(&baseline(1_000_000), "search", 10, 3.0);
        assert!(v.failed);
        assert_eq!(v.baseline, None);
    }
}
