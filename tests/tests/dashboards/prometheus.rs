//! A Prometheus of the test's own, and the readings of dashboards and alert expressions that are
//! asked of it.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Suite, free_port};
use tokio::process::{Child, Command};

use crate::cluster_config::{cluster_config_for_here, discovered_pods};

/// A running Prometheus, stopped when dropped.
pub(crate) struct Prometheus {
    pub(crate) url: String,
    pub(crate) client: Client,
    pub(crate) _child: Child,
}

impl Prometheus {
    pub(crate) async fn start(bin: &Path, suite: &Suite, dir: &Path) -> Prometheus {
        let port = free_port();
        let sd = dir.join("pods.json");
        std::fs::write(&sd, discovered_pods(&suite.admin_urls).to_string()).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, cluster_config_for_here(&sd, port, "1s")).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _child: child,
        };
        p.wait_until("Prometheus ready", Duration::from_secs(30), async || {
            p.client
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        p
    }

    /// Polls `check` every 250 ms until it holds, at most `limit`.
    pub(crate) async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        check: impl AsyncFn() -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?} ({})",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(crate) async fn api(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .client
            .get(format!("{}/api/v1/{path}", self.url))
            .query(form)
            .send()
            .await
            .expect("prometheus answers");
        let status = r.status();
        let body: Value = r.json().await.expect("prometheus JSON");
        assert_eq!(status, StatusCode::OK, "{path} {form:?}: {body}");
        body["data"].clone()
    }

    /// The instant-query result of `expr`: its series, or an error naming what is wrong.
    pub(crate) async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let r = self
            .client
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}", body["error"]));
        }
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![json!({ "metric": {}, "value": data["result"] })],
            other => return Err(format!("unexpected result type {other:?}")),
        })
    }

    /// `expr` must return at least one series with a finite value: data a panel would draw.
    pub(crate) async fn expect_data(&self, expr: &str) -> Result<usize, String> {
        let series = self.query(expr).await?;
        if series.is_empty() {
            return Err("no series".into());
        }
        let finite = series.iter().any(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        });
        if !finite {
            return Err(format!("{} series, none with a finite value", series.len()));
        }
        Ok(series.len())
    }
}

/// The `label_values(selector, label)` of a Grafana query variable, as Prometheus answers it.
pub(crate) async fn variable_values(p: &Prometheus, query: &str) -> Vec<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(selector, label)"));
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("variable query {query:?} names no label"));
    let values = p
        .api(
            &format!("label/{}/values", label.trim()),
            &[("match[]", selector.trim())],
        )
        .await;
    values
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every panel of a dashboard, rows' nested panels included.
pub(crate) fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
        out.push(p);
    }
    out
}

/// The part of an alert expression under its threshold: `lhs > 0.05` gives `lhs`.
pub(crate) fn under_threshold(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote, mut cut) = (0i32, None::<u8>, None);
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q && bytes.get(i.wrapping_sub(1)) != Some(&b'\\') => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'' | b'`') => quote = Some(b),
            (None, b'(' | b'{' | b'[') => depth += 1,
            (None, b')' | b'}' | b']') => depth -= 1,
            (None, b'>' | b'<') if depth == 0 => cut = Some(i),
            (None, b'=' | b'!') if depth == 0 && bytes.get(i + 1) == Some(&b'=') => cut = Some(i),
            _ => {}
        }
    }
    match cut {
        Some(i) => expr[..i].trim_end_matches(['>', '<', '=', '!']).trim(),
        None => expr.trim(),
    }
}

#[test]
fn an_alert_threshold_is_cut_off_at_the_top_level_only() {
    assert_eq!(under_threshold("a:b:rate5m > 0.05"), "a:b:rate5m");
    assert_eq!(under_threshold(r#"up{job="x"} == 0"#), r#"up{job="x"}"#);
    assert_eq!(
        under_threshold(r#"sum(rate(x{a=~">"}[5m])) >= 1"#),
        r#"sum(rate(x{a=~">"}[5m]))"#
    );
    assert_eq!(under_threshold("x != 1"), "x");
    assert_eq!(under_threshold("absent(x)"), "absent(x)");
}
