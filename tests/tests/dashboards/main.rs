//! The dashboards and rules proven against the real thing: Debian's Prometheus, run with the
//! cluster's own config (pod discovery swapped for a file of the same pod labels), scrapes the
//! real suite (two recommendations replicas on one ratings database, as deployed) while traffic
//! flows and a harmless drill runs; then every Grafana panel query and every recording and alert
//! rule expression must return data, the per-replica panels must tell the replicas apart, and a
//! healthy suite must fire no alert.
//!
//! Needs `prometheus` and `promtool` on the PATH (Debian's `prometheus` package). Without them
//! the tests say so and pass, unless `BOOKSTORE_REQUIRE_PROMETHEUS=1` (CI sets it).

mod cluster_config;
mod prometheus;
mod provisioning;
mod traffic;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Suite, SuiteOptions, fresh_books};

use crate::{
    cluster_config::{observability_dir, prometheus_tools, temp_dir},
    prometheus::{Prometheus, panels, under_threshold, variable_values},
    traffic::one_round,
};

/// The four processes, as their Deployments (and so the `service` label) name them.
const SERVICES: [&str; 4] = ["gateway", "marketplace", "recommendations", "users"];

/// Recommendations replicas the suite runs, on one ratings database, as the base manifests do:
/// the per-replica panels must tell them apart.
const RECOMMENDATIONS_REPLICAS: usize = 2;

/// The `$__rate_interval` Grafana would use with a short scrape interval, and the others.
const GRAFANA_BUILTINS: [(&str, &str); 4] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$__range", "5m"),
    ("${__range}", "5m"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_and_rule_has_data_while_the_suite_serves() {
    let Some((prometheus_bin, _)) = prometheus_tools() else {
        return;
    };
    if Suite::is_external() {
        platform::database::testing::note_skip("dashboards: runs only against a suite it starts");
        return;
    }
    let suite = Suite::start_options(SuiteOptions {
        recommendations_replicas: RECOMMENDATIONS_REPLICAS,
        ..SuiteOptions::default()
    })
    .await;
    let processes = SERVICES.len() + RECOMMENDATIONS_REPLICAS - 1;
    assert_eq!(suite.admin_urls.len(), processes, "{:?}", suite.admin_urls);
    let dir = temp_dir("prometheus");
    let p = Prometheus::start(&prometheus_bin, &suite, &dir).await;

    // The relabelling found every process (the four services, one of them twice), on their
    // annotated ports, named by their labels.
    p.wait_until(
        "every bookstore target up",
        Duration::from_secs(30),
        async || {
            let Ok(up) = p.query(r#"up{job="bookstore"} == 1"#).await else {
                return false;
            };
            let names: BTreeSet<&str> = up
                .iter()
                .filter_map(|s| s["metric"]["service"].as_str())
                .collect();
            up.len() == processes && names == BTreeSet::from(SERVICES)
        },
    )
    .await;
    let targets = p.api("targets", &[]).await;
    let active = targets["activeTargets"].as_array().unwrap();
    assert_eq!(
        active.len(),
        processes + 1,
        "every process and Prometheus itself, not the pods that do not opt in: {active:#?}"
    );

    // A drill while the traffic flows, as the "Faults injected" panel shows one: 1 ms of latency
    // on every marketplace call, harmless to the alerts (no error, no slow p99).
    let admin = Client::new();
    let faults = format!("{}/faults", suite.admin("marketplace").unwrap());
    let r = admin
        .put(&faults)
        .json(&json!({ "rules": [{ "latency_ms": 1 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "PUT {faults}");

    // Traffic: bounded rounds, loopback only, spread over several scrapes.
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let books = fresh_books(3);
    let mut readers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for _ in 0..6 {
        one_round(&suite, &c, &mut readers, &books).await;
        assert!(Instant::now() < deadline, "traffic took too long");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let r = admin.delete(&faults).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "DELETE {faults}");
    // Let the last round be scraped and the rules evaluated over it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    p.wait_until(
        "recording rules evaluated",
        Duration::from_secs(30),
        async || {
            p.query("service:requests:rate5m")
                .await
                .is_ok_and(|s| s.len() == SERVICES.len())
        },
    )
    .await;

    // The per-replica panels draw one line per recommendations replica, told apart by the pod
    // label, and the lines meet: every replica reads the change log to the same position,
    // whichever replica took the ratings.
    p.wait_until(
        "every recommendations replica at the log's head",
        Duration::from_secs(30),
        async || {
            let Ok(series) = p
                .query("max by (pod, instance) (recommendations_log_position)")
                .await
            else {
                return false;
            };
            let pods: BTreeSet<&str> = series
                .iter()
                .filter_map(|s| s["metric"]["pod"].as_str())
                .collect();
            let positions: BTreeSet<&str> = series
                .iter()
                .filter_map(|s| s["value"][1].as_str())
                .collect();
            pods.len() == RECOMMENDATIONS_REPLICAS
                && series.len() == RECOMMENDATIONS_REPLICAS
                && positions.len() == 1
                && !positions.contains("0")
        },
    )
    .await;

    let mut failures = Vec::new();
    let mut checked = 0usize;

    // Every rule Prometheus loaded: healthy, and its expression has data.
    let rules = p.api("rules", &[]).await;
    let groups = rules["groups"].as_array().unwrap();
    let (mut recording, mut alerting) = (0, 0);
    for group in groups {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap_or("?");
            let expr = rule["query"].as_str().unwrap_or_default();
            if rule["health"] != "ok" {
                failures.push(format!(
                    "rule {name}: health {} {}",
                    rule["health"], rule["lastError"]
                ));
            }
            let watched = if rule["type"] == "alerting" {
                alerting += 1;
                // A healthy suite fires nothing and has nothing pending...
                if rule["state"] != "inactive" {
                    failures.push(format!(
                        "alert {name} is {} on a healthy suite",
                        rule["state"]
                    ));
                }
                match p.query(expr).await {
                    Ok(s) if s.is_empty() => {}
                    Ok(s) => {
                        failures.push(format!("alert {name} matches on a healthy suite: {s:?}"))
                    }
                    Err(e) => failures.push(format!("alert {name}: {e}")),
                }
                // ...but the series under its threshold exist.
                under_threshold(expr)
            } else {
                recording += 1;
                expr
            };
            checked += 1;
            if let Err(e) = p.expect_data(watched).await {
                failures.push(format!("rule {name}: {e}\n    {watched}"));
            }
        }
    }
    assert!(
        recording > 0 && alerting > 0,
        "rules loaded: {recording} recording, {alerting} alerting"
    );

    // Every dashboard: every variable has values, every panel every query has data for each.
    let dash_dir = observability_dir().join("grafana/dashboards");
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dash_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        dashboards += 1;
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
        // Substitutions: each variable's every value (the cartesian product is one variable here).
        let mut substitutions: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for var in dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let name = var["name"].as_str().unwrap().to_owned();
            assert_eq!(
                var["type"], "query",
                "{file}: variable {name} is not a query"
            );
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .unwrap_or_default();
            let values = variable_values(&p, query).await;
            if values.is_empty() {
                failures.push(format!("{file}: variable ${name} ({query}) has no values"));
                continue;
            }
            if name == "service" {
                assert_eq!(
                    values.iter().map(String::as_str).collect::<BTreeSet<_>>(),
                    BTreeSet::from(SERVICES),
                    "{file}: $service offers the four processes"
                );
            }
            let (braced, plain) = (format!("${{{name}}}"), format!("${name}"));
            substitutions = substitutions
                .iter()
                .flat_map(|s| {
                    values.iter().map(|v| {
                        let mut s = s.clone();
                        s.push((braced.clone(), v.clone()));
                        s.push((plain.clone(), v.clone()));
                        s
                    })
                })
                .collect();
        }
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            let kind = panel["type"].as_str().unwrap_or("?");
            if matches!(kind, "row" | "text") {
                continue;
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                failures.push(format!("{file}: panel {title:?} has no query"));
            }
            if panel["datasource"]["uid"] != "prometheus" {
                failures.push(format!(
                    "{file}: panel {title:?} does not use the provisioned Prometheus datasource"
                ));
            }
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                for subst in &substitutions {
                    let mut q = expr.to_owned();
                    for (from, to) in GRAFANA_BUILTINS.iter().map(|(f, t)| (*f, *t)) {
                        q = q.replace(from, to);
                    }
                    let mut with = String::new();
                    for (from, to) in subst {
                        if q.contains(from.as_str()) {
                            with = format!(" with {from}={to}");
                        }
                        q = q.replace(from.as_str(), to);
                    }
                    checked += 1;
                    if q.contains('$') {
                        failures.push(format!("{file}: {title:?}: unknown variable in {q}"));
                    } else if let Err(e) = p.expect_data(&q).await {
                        failures.push(format!("{file}: {title:?}{with}: {e}\n    {q}"));
                    }
                }
            }
        }
    }
    assert!(
        dashboards >= 2,
        "the overview and the per-service dashboard"
    );
    eprintln!("{checked} expressions checked against Prometheus");
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed (Prometheus log in {}):\n{}",
        failures.len(),
        dir.display(),
        failures.join("\n")
    );
    drop(p);
    suite.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
