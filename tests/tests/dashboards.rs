//! The dashboards and rules proven against the real thing: Debian's Prometheus, run with the
//! cluster's own config (pod discovery swapped for a file of the same pod labels), scrapes the
//! real suite (two recommendations replicas on one ratings database, as deployed) while traffic
//! flows and a harmless drill runs; then every Grafana panel query and every recording and alert
//! rule expression must return data, the per-replica panels must tell the replicas apart, and a
//! healthy suite must fire no alert.
//!
//! Needs `prometheus` and `promtool` on the PATH (Debian's `prometheus` package). Without them
//! the tests say so and pass, unless `BOOKSTORE_REQUIRE_PROMETHEUS=1` (CI sets it).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Suite, SuiteOptions, free_port, fresh_books, unique};
use tokio::process::{Child, Command};

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

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/observability")
}

/// `prometheus` and `promtool` from the PATH, or `None` (after saying so) when not installed.
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
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

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bookstore-{what}-{}", unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces `from` by `to` in `text`, insisting that `from` occurs exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
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
fn cluster_config_for_here(sd_file: &Path, self_port: u16, scrape: &str) -> String {
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
fn binary_of(process: &str) -> &str {
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
fn discovered_pods(admin_urls: &[(String, String)]) -> Value {
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

fn promtool(tool: &Path, args: &[&str]) {
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

/// A running Prometheus, stopped when dropped.
struct Prometheus {
    url: String,
    client: Client,
    _child: Child,
}

impl Prometheus {
    async fn start(bin: &Path, suite: &Suite, dir: &Path) -> Prometheus {
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
    async fn wait_until(&self, what: &str, limit: Duration, check: impl AsyncFn() -> bool) {
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

    async fn api(&self, path: &str, form: &[(&str, &str)]) -> Value {
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
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
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
    async fn expect_data(&self, expr: &str) -> Result<usize, String> {
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

/// A reader of the traffic loop.
struct Reader {
    email: String,
    token: String,
}

/// One round of what users do, touching every route, RPC and business counter the dashboards
/// draw: sign-up, sign-in (good and bad), browse, search, pages, rate, re-rate, delete,
/// recommendations of every source, and a few 4xx.
async fn one_round(s: &Suite, c: &Client, readers: &mut Vec<Reader>, books: &[i64]) {
    let api = format!("{}/api/v1", s.base_url);
    let email = format!("reader-{}@example.org", unique());
    let r = c
        .post(format!("{api}/users"))
        .json(
            &json!({"email": email, "display_name": "Reader", "password": "correct horse battery"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let session: Value = c
        .post(format!("{api}/sessions"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    readers.push(Reader {
        email,
        token: session["access_token"].as_str().unwrap().to_owned(),
    });
    let failed = c
        .post(format!("{api}/sessions"))
        .json(&json!({"email": readers[0].email, "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);

    // Every reader so far likes the same books, so "also liked" and "for you" have answers.
    for (i, who) in readers.iter().enumerate() {
        for (j, book) in books.iter().enumerate() {
            let stars = if (i + j) % 3 == 0 { 4 } else { 5 };
            let r = c
                .put(format!("{api}/me/ratings/{book}"))
                .bearer_auth(&who.token)
                .json(&json!({ "stars": stars }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "rating: {}", r.status());
        }
    }
    let newest = readers.last().unwrap();
    let gets = [
        (format!("{api}/books?page_size=5"), None, StatusCode::OK),
        (
            format!("{api}/books/search?q=the+hobbit&page_size=3"),
            None,
            StatusCode::OK,
        ),
        (format!("{api}/books/{}", books[0]), None, StatusCode::OK),
        (
            format!("{api}/books/{}/similar", books[0]),
            None,
            StatusCode::OK,
        ),
        (
            format!("{api}/recommendations/popular?page_size=5"),
            None,
            StatusCode::OK,
        ),
        (
            format!("{api}/me/recommendations"),
            Some(&newest.token),
            StatusCode::OK,
        ),
        (
            format!("{api}/me/ratings"),
            Some(&newest.token),
            StatusCode::OK,
        ),
        (format!("{api}/books/99999999"), None, StatusCode::NOT_FOUND),
        (
            format!("{api}/books?page_size=500"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (format!("{}/", s.base_url), None, StatusCode::OK),
        (
            format!("{}/books/{}", s.base_url, books[0]),
            None,
            StatusCode::OK,
        ),
        (
            format!("{}/no-such-page", s.base_url),
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (url, token, want) in gets {
        let mut req = c.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let got = req.send().await.unwrap().status();
        assert_eq!(got, want, "GET {url}");
    }
    let r = c
        .delete(format!("{api}/me/ratings/{}", books[books.len() - 1]))
        .bearer_auth(&newest.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "deleting a rating: {}", r.status());
}

/// The `label_values(selector, label)` of a Grafana query variable, as Prometheus answers it.
async fn variable_values(p: &Prometheus, query: &str) -> Vec<String> {
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
fn panels(dashboard: &Value) -> Vec<Value> {
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
fn under_threshold(expr: &str) -> &str {
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
