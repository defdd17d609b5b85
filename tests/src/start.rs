//! Starting a suite: the processes' specs, ports and keys, and the wait until every one is ready
//! (or the retry when one dies early).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::{ProcessSpec, Suite, SuiteOptions, bin_dir, free_port, observe::metric, random_hex};

/// A new token key pair from `users keygen` (as `make run` makes one): the signing key for users
/// alone, the public key for users and recommendations.
fn token_keys(bins: &Path) -> (String, String) {
    let out = std::process::Command::new(bins.join("users"))
        .arg("keygen")
        .output()
        .expect("users keygen runs");
    assert!(out.status.success(), "users keygen: {out:?}");
    let text = String::from_utf8(out.stdout).expect("users keygen prints text");
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("users keygen printed no {name}"))
            .to_owned()
    };
    (line("TOKEN_SIGNING_KEY"), line("TOKEN_PUBLIC_KEYS"))
}

impl Suite {
    pub(crate) async fn try_start(options: &SuiteOptions) -> Result<Suite, String> {
        if let Ok(base) = std::env::var("BOOKSTORE_BASE_URL") {
            let admin_urls = std::env::var("BOOKSTORE_ADMIN_URLS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let mut suite = Suite {
                base_url: base.trim_end_matches('/').to_owned(),
                admin_urls,
                dir: std::env::temp_dir(),
                grpc_addrs: Vec::new(),
                children: Vec::new(),
                specs: Vec::new(),
            };
            suite.wait_ready().await?;
            return Ok(suite);
        }
        let bins = bin_dir();
        for name in ["marketplace", "recommendations", "users", "gateway"] {
            assert!(
                bins.join(name).exists(),
                "{} is missing: build the binaries first (`cargo build --bins`; `make test` does)",
                bins.join(name).display()
            );
        }
        let (signing_key, public_keys) = token_keys(&bins);
        let dir = std::env::temp_dir().join(format!("bookstore-suite-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).expect("suite dir");
        let replicas = options.marketplace_replicas.max(1);
        let rec_replicas = options.recommendations_replicas.max(1);
        let p: Vec<u16> = (0..8 + 2 * (replicas - 1) + 2 * (rec_replicas - 1))
            .map(|_| free_port())
            .collect();
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let common = |admin: u16| {
            vec![
                ("ADMIN_ADDR".to_owned(), addr(admin)),
                ("LOG_FORMAT".to_owned(), "json".to_owned()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
                // Every request logged: the tests read the access logs.
                ("ACCESS_LOG_SAMPLE".to_owned(), "1".to_owned()),
                ("DRAIN_TIMEOUT_MS".to_owned(), "2000".to_owned()),
            ]
        };
        let db = |name: &str| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            )
        };
        // Marketplace replicas: the first on p[0]/p[1], the others after the fixed eight.
        let market_ports: Vec<(u16, u16)> = (0..replicas)
            .map(|i| {
                if i == 0 {
                    (p[0], p[1])
                } else {
                    (p[8 + 2 * (i - 1)], p[9 + 2 * (i - 1)])
                }
            })
            .collect();
        let mut specs: Vec<ProcessSpec> = Vec::new();
        for (i, (grpc, admin)) in market_ports.iter().enumerate() {
            let name = if i == 0 {
                "marketplace".to_owned()
            } else {
                format!("marketplace-{}", i + 1)
            };
            specs.push((
                name,
                "marketplace".into(),
                [common(*admin), vec![("GRPC_ADDR".into(), addr(*grpc))]].concat(),
            ));
        }
        // Recommendations replicas: the first on p[2]/p[3], the others after the marketplace's.
        let rec_ports: Vec<(u16, u16)> = (0..rec_replicas)
            .map(|i| {
                let extra = 8 + 2 * (replicas - 1) + 2 * i.saturating_sub(1);
                if i == 0 {
                    (p[2], p[3])
                } else {
                    (p[extra], p[extra + 1])
                }
            })
            .collect();
        let ratings_db = options
            .recommendations_db
            .clone()
            .unwrap_or_else(|| db("recommendations"));
        for (i, (grpc, admin)) in rec_ports.iter().enumerate() {
            let name = if i == 0 {
                "recommendations".to_owned()
            } else {
                format!("recommendations-{}", i + 1)
            };
            specs.push((
                name,
                "recommendations".into(),
                [
                    common(*admin),
                    vec![
                        ("GRPC_ADDR".into(), addr(*grpc)),
                        ("DATABASE_URL".into(), ratings_db.clone()),
                        ("TOKEN_PUBLIC_KEYS".into(), public_keys.clone()),
                    ],
                ]
                .concat(),
            ));
        }
        let rec_urls: Vec<String> = rec_ports
            .iter()
            .map(|(g, _)| format!("http://{}", addr(*g)))
            .collect();
        specs.push((
            "users".into(),
            "users".into(),
            [
                common(p[5]),
                vec![
                    ("GRPC_ADDR".into(), addr(p[4])),
                    ("DATABASE_URL".into(), db("users")),
                    ("TOKEN_SIGNING_KEY".into(), signing_key),
                    ("TOKEN_PUBLIC_KEYS".into(), public_keys.clone()),
                    (
                        "RECOMMENDATIONS_URL".into(),
                        format!("http://{}", addr(p[2])),
                    ),
                ],
            ]
            .concat(),
        ));
        let market_urls: Vec<String> = market_ports
            .iter()
            .map(|(g, _)| format!("http://{}", addr(*g)))
            .collect();
        specs.push((
            "gateway".into(),
            "gateway".into(),
            [
                common(p[7]),
                vec![
                    ("HTTP_ADDR".into(), addr(p[6])),
                    ("MARKETPLACE_URL".into(), market_urls.join(",")),
                    ("RECOMMENDATIONS_URL".into(), rec_urls.join(",")),
                    ("USERS_URL".into(), format!("http://{}", addr(p[4]))),
                    // Suite tests sign many readers up from one address; the per-client
                    // budget itself is tested in gateway/tests/api.
                    ("AUTH_RATE_PER_MINUTE".into(), "6000".into()),
                    ("AUTH_RATE_BURST".into(), "1000".into()),
                ],
            ]
            .concat(),
        ));
        for (name, _, env) in &mut specs {
            env.extend(options.env.iter().cloned());
            for (prefix, k, v) in &options.env_for {
                if name.starts_with(prefix.as_str()) {
                    env.push((k.clone(), v.clone()));
                }
            }
        }
        let mut admin_urls = Vec::new();
        let mut grpc_addrs = Vec::new();
        for (name, _, env) in &specs {
            let get = |k: &str| {
                env.iter()
                    .rev()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            admin_urls.push((name.clone(), format!("http://{}", get("ADMIN_ADDR"))));
            if name != "gateway" {
                grpc_addrs.push((name.clone(), get("GRPC_ADDR")));
            }
        }
        let mut suite = Suite {
            base_url: format!("http://{}", addr(p[6])),
            admin_urls,
            dir,
            grpc_addrs,
            children: Vec::new(),
            specs,
        };
        for i in 0..suite.specs.len() {
            let name = suite.specs[i].0.clone();
            suite.spawn(&name)?;
        }
        suite.wait_ready().await?;
        Ok(suite)
    }

    /// Polls every `/readyz` (or the gateway's page for an external suite), 60 s at most;
    /// fails early when one of the processes has exited.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let mut urls: Vec<String> = self
            .admin_urls
            .iter()
            .map(|(_, u)| format!("{u}/readyz"))
            .collect();
        urls.push(format!("{}/api/v1/books?page_size=1", self.base_url));
        let deadline = Instant::now() + Duration::from_secs(60);
        for url in urls {
            loop {
                let ok = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
                let dead =
                    self.children
                        .iter_mut()
                        .find_map(|(name, child)| match child.try_wait() {
                            Ok(Some(status)) => Some((name.clone(), status)),
                            _ => None,
                        });
                if let Some((name, status)) = dead {
                    return Err(format!(
                        "{name} exited ({status}): {}",
                        self.log(&name).lines().last().unwrap_or_default()
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{url} not ready within 60 s; logs in {}",
                        self.dir.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Ready services are not yet callable through the gateway until its health watches have
        // put every replica in its balancer: wait for that too (a suite this harness started).
        if let Some(gateway) = self.admin("gateway").map(str::to_owned)
            && !self.grpc_addrs.is_empty()
        {
            for upstream in ["marketplace", "recommendations", "users"] {
                let want = self
                    .grpc_addrs
                    .iter()
                    .filter(|(n, _)| n.starts_with(upstream))
                    .count() as f64;
                let label = format!("upstream=\"{upstream}\"");
                loop {
                    let have = metric(&gateway, "gateway_upstream_ready_replicas", &[&label]).await;
                    if have >= want {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "the gateway has {have} of {want} {upstream} replicas in its balancer after 60 s; logs in {}",
                            self.dir.display()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(())
    }
}
