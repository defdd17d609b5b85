//! The processes under test: release binaries started with their settings and logs, killed when
//! dropped, and what they say of themselves (CPU from /proc, metrics from their admin port).

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::Error;

const TOKEN_SECRET: &str = "replicas-benchmark-secret-that-is-long-enough";
/// As the Dockerfile, `make run` and the manifests set it.
const GLIBC_TUNABLES: &str = "glibc.malloc.tcache_count=64";

/// Settings given to a process.
pub(crate) type Settings = Vec<(&'static str, String)>;

/// Token settings: `users keygen`'s pair (the signing key for users alone, the public key for
/// every service that checks tokens), or, from a users binary without `keygen`, the shared
/// `TOKEN_SECRET` of earlier builds.
pub(crate) fn token_env(bin_dir: &Path) -> Result<(Settings, Settings), Error> {
    let out = Command::new(bin_dir.join("users"))
        .arg("keygen")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("running users keygen: {e} (cargo build --release --bins)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Ok(
        match (
            out.status.success(),
            line("TOKEN_SIGNING_KEY"),
            line("TOKEN_PUBLIC_KEYS"),
        ) {
            (true, Some(signing), Some(public)) => (
                vec![("TOKEN_SIGNING_KEY", signing)],
                vec![("TOKEN_PUBLIC_KEYS", public)],
            ),
            _ => (Vec::new(), vec![("TOKEN_SECRET", TOKEN_SECRET.to_owned())]),
        },
    )
}

/// One server process; killed (and reaped) when dropped.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) admin: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub(crate) fn spawn(
        bin_dir: &Path,
        binary: &str,
        name: &str,
        env: &[(&str, String)],
        admin: SocketAddr,
        logs: &Path,
    ) -> Result<Self, Error> {
        let path = bin_dir.join(binary);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: build it first with `cargo build --release --bins`",
                path.display()
            )
            .into());
        }
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let child = Command::new(&path)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("ADMIN_ADDR", admin.to_string())
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("CATALOG_PATH")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", path.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            admin,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `within`) until the admin port's `/readyz` answers 200.
    pub(crate) async fn ready(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> Result<(), Error> {
        let url = format!("http://{}/readyz", self.admin);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("{} exited before it was ready: {status}", self.name).into());
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(format!("{} not ready within {within:?} ({url})", self.name).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// CPU time (user + system, threads that ended included) of a process in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, after the command name's last `)`).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// The sum of a metric's samples whose labels contain every one of `labels`.
pub(crate) fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

pub(crate) async fn get_text(http: &reqwest::Client, url: &str) -> Result<String, Error> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}
