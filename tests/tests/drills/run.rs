//! loadgen as a process: one bounded run against the suite and the summary it printed.

use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tests::{Suite, bin_dir};

/// What one loadgen run printed (its `--json` summary) and how it exited.
pub(crate) struct Run {
    pub(crate) summary: Value,
    pub(crate) code: Option<i32>,
}

impl Run {
    pub(crate) fn step(&self, name: &str) -> &Value {
        &self.summary["steps"][name]
    }

    /// The statuses a step was answered with.
    pub(crate) fn statuses(&self, name: &str) -> Vec<u16> {
        self.step(name)["statuses"]
            .as_object()
            .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, step: &str, field: &str) -> u64 {
        self.step(step)[field].as_u64().unwrap_or(0)
    }
}

/// Runs loadgen against `s` with `args` (plus `--target`, `--json`, no progress line), 60 s at
/// most, and parses its summary.
pub(crate) async fn loadgen(s: &Suite, args: &[&str]) -> Run {
    let bin = bin_dir().join("loadgen");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        bin.display()
    );
    let child = tokio::process::Command::new(bin)
        .args(["--target", &s.base_url, "--json", "--progress-every", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start loadgen");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("loadgen finished within 60 s")
        .expect("loadgen output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen {args:?} printed no JSON summary ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!(
        "loadgen {}: {} requests, {} ok, errors {}, p99 {} ms, exit {:?}",
        args.join(" "),
        summary["requests"],
        summary["ok"],
        summary["errors"],
        summary["latency_ms"]["p99"],
        out.status.code()
    );
    Run {
        summary,
        code: out.status.code(),
    }
}
