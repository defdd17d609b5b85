//! The cluster's Prometheus config made runnable on this machine: the tools found on the PATH, pod
//! discovery swapped for a file of the pods the cluster would report.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tests::unique;

pub(crate) fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/observability")
}

/// `prometheus` and `promtool` from the PATH, or `None` (after saying so) when not installed.
pub(crate) fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("prometheus"), find("promtool")) {
        (Some(p), Some(t)) => Some((p, t)),
        _ => {
            assert!(
                std::env::var("BOOKSTORE_REQUIRE_PROMETHEUS").is_err(),
                "BOOKSTORE_REQUIRE_PROMETHEUS is set but prometheus/promtool are not on the PATH \
                 (apt-get install prometheus)"
            );
            platform::database::testing::note_skip(
                "dashboards: prometheus and promtool are not installed (apt-get install prometheus)",
            );
            None
        }
    }
}

pub(crate) fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bookstore-{what}-{}", unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces `from` by `to` in `text`, insisting that `from` occurs exactly once.
pub(crate) fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "k8s/observability/prometheus/prometheus.yml no longer contains {from:?} exactly once: \
         update this test's rewrite of it"
    );
    text.replacen(from, to, 1)
}

/// The cluster's Prometheus config as this machine can run it: Debian builds Prometheus without
/// Kubernetes discovery, so the pod discovery is swapped for a file of targets carrying the same
/// `__meta_kubernetes_*` labels; everything else (relabelling, rules, jobs) is the cluster's.
pub(crate) fn cluster_config_for_here(sd_file: &Path, self_port: u16, scrape: &str) -> String {
    let dir = observability_dir().join("prometheus");
    let text = std::fs::read_to_string(dir.join("prometheus.yml")).expect("prometheus.yml");
    let text = replace_once(
        &text,
        "    kubernetes_sd_configs:\n      - role: pod\n        namespaces:\n          own_namespace: true\n",
        &format!(
            "    file_sd_configs:\n      - files: [\"{}\"]\n",
            sd_file.display()
        ),
    );
    let text = replace_once(
        &text,
        "  - /etc/prometheus/rules/*.yml\n",
        &format!(
            "  - \"{}/rules/*.yml\"\n",
            dir.canonicalize().unwrap().display()
        ),
    );
    let text = replace_once(
        &text,
        "targets: [\"localhost:9090\"]",
        &format!("targets: [\"127.0.0.1:{self_port}\"]"),
    );
    let text = replace_once(
        &text,
        "  scrape_interval: 15s\n",
        &format!("  scrape_interval: {scrape}\n"),
    );
    let text = replace_once(
        &text,
        "  scrape_timeout: 10s\n",
        &format!("  scrape_timeout: {scrape}\n"),
    );
    replace_once(
        &text,
        "  evaluation_interval: 30s\n",
        &format!("  evaluation_interval: {scrape}\n"),
    )
}

/// The binary (and so the Deployment) of one of the suite's processes: `recommendations-2` is a
/// second replica of `recommendations`.
pub(crate) fn binary_of(process: &str) -> &str {
    match process.rsplit_once('-') {
        Some((binary, n)) if n.parse::<u32>().is_ok() => binary,
        _ => process,
    }
}

/// What the Kubernetes pod discovery would report for the suite's pods: one per process (the
/// replicas of one Deployment share its labels and differ by pod name), annotated for scraping
/// on its admin port, plus pods that must NOT be scraped. The discovered address is a port
/// nothing listens on, as a pod's first container port would be: only the annotation's port
/// reaches the admin server.
pub(crate) fn discovered_pods(admin_urls: &[(String, String)]) -> Value {
    let mut pods: Vec<Value> = admin_urls
        .iter()
        .map(|(process, url)| {
            let port = url.rsplit(':').next().expect("admin url with a port");
            let name = binary_of(process);
            let replica = process.strip_prefix(name).unwrap_or_default();
            let mut labels = json!({
                "__meta_kubernetes_namespace": "bookstore",
                "__meta_kubernetes_pod_name": format!("{name}-5d9c7b-x2x4q{replica}"),
                "__meta_kubernetes_pod_ip": "127.0.0.1",
                "__meta_kubernetes_pod_phase": "Running",
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
                "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
            });
            // One pod carries only the plain `app` label: the fallback must name it too.
            let key = if name == "marketplace" {
                "__meta_kubernetes_pod_label_app"
            } else {
                "__meta_kubernetes_pod_label_app_kubernetes_io_name"
            };
            labels[key] = json!(name);
            json!({ "targets": ["127.0.0.1:9"], "labels": labels })
        })
        .collect();
    // A pod that does not opt in, and one that is not running yet.
    pods.push(json!({ "targets": ["127.0.0.1:9"], "labels": {
        "__meta_kubernetes_pod_ip": "127.0.0.1",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "postgres",
    }}));
    pods.push(json!({ "targets": ["127.0.0.1:9"], "labels": {
        "__meta_kubernetes_pod_ip": "127.0.0.1",
        "__meta_kubernetes_pod_phase": "Pending",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "9",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "starting",
    }}));
    Value::Array(pods)
}

pub(crate) fn promtool(tool: &Path, args: &[&str]) {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
