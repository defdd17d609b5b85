//! Checks that need no running suite: promtool accepts the configs and rules, and the cluster and
//! the local run provision the same files.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{
    cluster_config::{
        cluster_config_for_here, observability_dir, prometheus_tools, promtool, temp_dir,
    },
    prometheus::panels,
};

#[test]
fn promtool_accepts_the_configs_and_the_rules() {
    let Some((_, tool)) = prometheus_tools() else {
        return;
    };
    let dir = observability_dir().join("prometheus");
    let rules: Vec<String> = std::fs::read_dir(dir.join("rules"))
        .expect("rules dir")
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yml"))
        .collect();
    assert!(rules.len() >= 2, "recording and alert rules: {rules:?}");
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    promtool(&tool, &args);
    promtool(
        &tool,
        &[
            "check",
            "config",
            &dir.join("prometheus.local.yml").display().to_string(),
        ],
    );
    let tmp = temp_dir("promtool");
    let sd = tmp.join("pods.json");
    std::fs::write(&sd, "[]").unwrap();
    let config = tmp.join("prometheus.yml");
    std::fs::write(&config, cluster_config_for_here(&sd, 9090, "15s")).unwrap();
    promtool(&tool, &["check", "config", &config.display().to_string()]);
    let _ = std::fs::remove_dir_all(tmp);
}

#[test]
fn the_cluster_and_the_local_run_provision_the_same_files() {
    let dir = observability_dir();
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let mut files = Vec::new();
    for sub in ["prometheus/rules", "grafana/dashboards"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            files.push(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    files.extend(
        [
            "prometheus/prometheus.yml",
            "grafana/datasources.yaml",
            "grafana/dashboards.yaml",
        ]
        .map(String::from),
    );
    for file in &files {
        assert!(
            kustomization.contains(&format!("- {file}\n")),
            "{file} is not in k8s/observability/kustomization.yaml's configMapGenerator"
        );
    }
    let datasources = std::fs::read_to_string(dir.join("grafana/datasources.yaml")).unwrap();
    for uid in ["uid: prometheus", "uid: jaeger"] {
        assert!(
            datasources.contains(uid),
            "datasources.yaml provisions {uid}"
        );
    }
    let mut uids = BTreeSet::new();
    for file in files.iter().filter(|f| f.ends_with(".json")) {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            uids.insert(d["uid"].as_str().unwrap_or_default().to_owned()),
            "{file}: a missing or repeated dashboard uid"
        );
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            assert!(
                ids.insert(p["id"].as_u64().unwrap_or(0)) && p["gridPos"]["w"].as_u64() > Some(0),
                "{file}: panel {} needs a unique id and a place on the grid",
                p["title"]
            );
        }
    }
}
