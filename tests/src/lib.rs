//! The suite harness: starts the four real binaries as processes on loopback (or targets an
//! already running suite given by `BOOKSTORE_BASE_URL`), waits until each is ready, and stops
//! them when dropped.
#![forbid(unsafe_code)]

pub mod web_client;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

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

/// A running suite.
pub struct Suite {
    /// The gateway, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Admin (metrics) URLs by binary name; empty for an external suite unless
    /// `BOOKSTORE_ADMIN_URLS` (`name=url,…`) names them.
    pub admin_urls: Vec<(String, String)>,
    /// Where the processes write their logs and databases.
    pub dir: PathBuf,
    /// gRPC addresses by process name (`marketplace`, `marketplace-2`, ...).
    pub grpc_addrs: Vec<(String, String)>,
    children: Vec<(String, Child)>,
    /// How each process was started, to start it again.
    specs: Vec<ProcessSpec>,
}

/// One process of a suite: its name, the binary it runs and its environment.
type ProcessSpec = (String, String, Vec<(String, String)>);

/// What a [`Suite`] is made of, beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct SuiteOptions {
    /// Environment for every process.
    pub env: Vec<(String, String)>,
    /// Environment for the processes whose name starts with the first string.
    pub env_for: Vec<(String, String, String)>,
    /// Marketplace processes behind the gateway (at least one).
    pub marketplace_replicas: usize,
    /// Recommendations processes behind the gateway (at least one), all on one ratings database:
    /// `recommendations`, `recommendations-2`, ...
    pub recommendations_replicas: usize,
    /// The ratings database (default: a SQLite file in the suite's folder).
    pub recommendations_db: Option<String>,
}

/// A loopback port free at the time of asking, for a process that binds it itself: the one helper
/// every test and benchmark that starts binaries uses.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where cargo put the binaries: beside this test's `deps` folder, or `BOOKSTORE_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BOOKSTORE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Suite {
    /// Whether the tests target a suite they did not start (a cluster).
    pub fn is_external() -> bool {
        std::env::var("BOOKSTORE_BASE_URL").is_ok()
    }

    /// Starts the suite (or connects to `BOOKSTORE_BASE_URL`) and waits until it is ready.
    pub async fn start() -> Suite {
        Self::start_with(&[]).await
    }

    /// Like [`Suite::start`], with extra environment for every process it starts. Ports are
    /// picked free and then handed to the processes, so another process may take one in
    /// between: a start whose process dies early is retried (three tries).
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Suite {
        Self::start_options(SuiteOptions {
            env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..SuiteOptions::default()
        })
        .await
    }

    /// Starts a suite made as `options` says (three tries, as [`Suite::start_with`]).
    pub async fn start_options(options: SuiteOptions) -> Suite {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&options).await {
                Ok(suite) => return suite,
                Err(e) => last = e,
            }
        }
        panic!("the suite did not start: {last}");
    }

    async fn try_start(options: &SuiteOptions) -> Result<Suite, String> {
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

    /// Starts (or starts again) the process `name` as its spec says; its log is appended to.
    fn spawn(&mut self, name: &str) -> Result<(), String> {
        let (_, bin, env) = self
            .specs
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| format!("no process {name}"))?
            .clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .map_err(|e| format!("log file of {name}: {e}"))?;
        // The inherited OTLP endpoint is dropped; one given in the spec is kept.
        let child = Command::new(bin_dir().join(&bin))
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env)
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        self.children.retain(|(n, _)| n != name);
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Starts `name` again after it stopped, and waits (bounded) until its `/readyz` answers.
    /// A restarted service counts as back once the gateway's balancer holds it again (its
    /// health watch retries with a backoff of up to 2 s after the process went away).
    pub async fn restart(&mut self, name: &str) {
        self.spawn(name).expect("restart");
        let url = format!("{}/readyz", self.admin(name).expect("admin url"));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within 60 s after restart:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let upstream = name.split('-').next().unwrap_or(name).to_owned();
        let Some(gateway) = self.admin("gateway").map(str::to_owned) else {
            return;
        };
        if upstream == "gateway" {
            return;
        }
        let running = self
            .children
            .iter_mut()
            .map(|(n, c)| n.starts_with(upstream.as_str()) && matches!(c.try_wait(), Ok(None)))
            .filter(|&alive| alive)
            .count() as f64;
        let label = format!("upstream=\"{upstream}\"");
        wait_until(
            &format!("the gateway's balancer holding {running} {upstream} replicas"),
            Duration::from_secs(30),
            || async {
                metric(&gateway, "gateway_upstream_ready_replicas", &[&label]).await >= running
            },
        )
        .await;
    }

    /// The process id of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.id())
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to the process `name`.
    pub async fn signal(&self, name: &str, signal: &str) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("kill(1)");
        assert!(status.success(), "kill -{signal} {name}");
    }

    /// Waits (at most `within`) for `name` to exit; its exit status, or `None` on time-out.
    pub async fn wait_exit(
        &mut self,
        name: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name)?;
        tokio::time::timeout(within, child.wait()).await.ok()?.ok()
    }

    /// The gRPC address (`127.0.0.1:port`) of a service process.
    pub fn grpc_addr(&self, name: &str) -> Option<&str> {
        self.grpc_addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
    }

    /// Signs `email` in through the public API; the bearer token (the test fails without one).
    pub async fn sign_in(&self, c: &reqwest::Client, email: &str, password: &str) -> String {
        let session: serde_json::Value = c
            .post(format!("{}/api/v1/sessions", self.base_url))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("sign-in answered")
            .json()
            .await
            .expect("a JSON session");
        session["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {email}: {session}"))
            .to_owned()
    }

    /// The admin URL of one binary, when known.
    pub fn admin(&self, name: &str) -> Option<&str> {
        self.admin_urls
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.as_str())
    }

    /// Kills one of the processes this suite started (a crash, not a drain).
    pub async fn kill(&mut self, name: &str) {
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name) {
            let _ = child.kill().await;
        }
    }

    /// The log of one process.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Sends SIGTERM-equivalent stop to every process and waits for them (bounded).
    pub async fn stop(mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// A unique suffix, so tests can share one running suite (a cluster) without colliding.
pub fn unique() -> String {
    random_hex(5)
}

/// A random block of `n` consecutive book ids unlikely to have been rated by anyone else.
pub fn fresh_books(n: i64) -> Vec<i64> {
    let mut b = [0u8; 2];
    getrandom::getrandom(&mut b).expect("random source");
    let base = 2_000 + i64::from(u16::from_be_bytes(b)) % 7_900;
    (base..base + n).collect()
}

/// The sum of one metric's samples, scraped from `admin_url`'s `/metrics`, whose labels contain
/// every `a="b"` given.
pub async fn metric(admin_url: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(format!("{admin_url}/metrics"))
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 25 ms until it holds; fails the test after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What a browser holds after loading a page: the CSRF cookie and the token the pages' forms
/// carry (see the gateway's `pages::csrf`). Forms posted without them are refused.
pub struct Forms {
    pub cookie: String,
    pub token: String,
}

impl Forms {
    /// Loads the home page of `base_url` as a new visitor and keeps its form token.
    pub async fn open(c: &reqwest::Client, base_url: &str) -> Forms {
        let r = c
            .get(format!("{base_url}/"))
            .send()
            .await
            .expect("home page");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .find(|c| c.contains("bookstore_csrf="))
            .expect("a CSRF cookie")
            .to_owned();
        let page = r.text().await.expect("home page text");
        let token = page
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form token")
            .to_owned();
        Forms { cookie, token }
    }

    /// A form POST of `fields` (and the token) to `url`, with the CSRF cookie and `cookies`
    /// (e.g. a session's) as a browser would send it.
    pub fn post(
        &self,
        c: &reqwest::Client,
        url: &str,
        fields: &[(&str, &str)],
        cookies: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.token));
        let cookie = match cookies {
            Some(more) => format!("{}; {more}", self.cookie),
            None => self.cookie.clone(),
        };
        c.post(url).header("cookie", cookie).form(&form)
    }
}
