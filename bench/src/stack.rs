//! The stacks under load: the suite's four release binaries, or the bare pair, each process on
//! free loopback ports and killed when its stack is dropped.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::LazyLock,
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use tests::free_port;

use crate::{http1::wait_http, procfs};

/// As the Dockerfile, `make run` and k8s/base/kustomization.yaml set it.
const GLIBC_TUNABLES: &str = "glibc.malloc.tcache_count=64";

/// The token key pair of this run: users signs with it, users and recommendations verify.
static TOKEN_KEYS: LazyLock<platform::auth::GeneratedKeys> =
    LazyLock::new(platform::auth::generate_keys);

fn token_signing_key() -> String {
    TOKEN_KEYS.signing_key.expose_secret().to_owned()
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// One server process of a stack.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    admin: Option<u16>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `bin` with `args` and `env`, its output discarded; `admin` is where it says it is ready.
pub fn spawn(
    bin: &Path,
    name: &'static str,
    args: &[String],
    env: &[(&str, String)],
    admin: Option<u16>,
) -> Proc {
    let child = Command::new(bin)
        .args(args)
        // The allocator setting the image and the manifests give every process, given here to
        // the bare pair too: like the release profile, it is the machine's, not the suite's.
        .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e} (run `cargo build --release --bins`)",
                bin.display()
            )
        });
    Proc { name, child, admin }
}

/// One stack of processes and where to send load.
pub struct Stack {
    pub name: &'static str,
    pub procs: Vec<Proc>,
    pub http: u16,
}

impl Stack {
    /// The pids of the processes named `names` (all of them when empty).
    pub fn pids(&self, names: &[&str]) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|p| names.is_empty() || names.contains(&p.name))
            .map(Proc::pid)
            .collect()
    }

    /// The marketplace's gRPC address, as it was told it.
    pub fn marketplace_grpc(&self) -> String {
        procfs::env_var(self.pids(&["marketplace"])[0], "GRPC_ADDR")
            .expect("GRPC_ADDR of the marketplace")
    }
}

/// The bare tonic server alone, on a free port: its address and process.
pub fn bare_tonic(bins: &Path) -> (String, Proc) {
    let addr = loopback(free_port());
    let proc = spawn(
        &bins.join("bare_marketplace"),
        "marketplace",
        std::slice::from_ref(&addr),
        &[],
        None,
    );
    (addr, proc)
}

/// The floor: `bare_gateway` → `bare_marketplace`, once the gateway answers.
pub fn bare(bins: &Path) -> Stack {
    let (g, m) = (free_port(), free_port());
    let market = spawn(
        &bins.join("bare_marketplace"),
        "marketplace",
        &[loopback(m)],
        &[],
        None,
    );
    let gateway = spawn(
        &bins.join("bare_gateway"),
        "gateway",
        &[loopback(g), format!("http://127.0.0.1:{m}")],
        &[],
        None,
    );
    wait_http(
        &format!("http://127.0.0.1:{g}/api/v1/books/1"),
        Duration::from_secs(30),
    );
    Stack {
        name: "bare axum → bare tonic",
        procs: vec![market, gateway],
        http: g,
    }
}

/// The suite's four processes with `extra` environment, their databases in `dir`, once every
/// one is ready and the gateway answers.
pub fn suite(
    bins: &Path,
    name: &'static str,
    extra: &[(&'static str, String)],
    dir: &Path,
) -> Stack {
    let p: Vec<u16> = (0..8).map(|_| free_port()).collect();
    let a = |i: usize| loopback(p[i]);
    let mut common: Vec<(&str, String)> =
        vec![("LOG_FORMAT", "json".into()), ("RUST_LOG", "info".into())];
    common.extend(extra.iter().cloned());
    let with = |mut v: Vec<(&'static str, String)>| {
        let mut c = common.clone();
        c.append(&mut v);
        c
    };
    let tag = name
        .split_whitespace()
        .last()
        .unwrap_or("suite")
        .replace(|c: char| !c.is_alphanumeric(), "");
    let db = |svc: &str| sqlite_url(&dir.join(format!("{tag}-{svc}-{}.db", p[0])));
    let procs = vec![
        spawn(
            &bins.join("marketplace"),
            "marketplace",
            &[],
            &with(vec![("GRPC_ADDR", a(0)), ("ADMIN_ADDR", a(1))]),
            Some(p[1]),
        ),
        spawn(
            &bins.join("recommendations"),
            "recommendations",
            &[],
            &with(vec![
                ("GRPC_ADDR", a(2)),
                ("ADMIN_ADDR", a(3)),
                ("DATABASE_URL", db("recommendations")),
                ("TOKEN_PUBLIC_KEYS", TOKEN_KEYS.public_key.clone()),
            ]),
            Some(p[3]),
        ),
        spawn(
            &bins.join("users"),
            "users",
            &[],
            &with(vec![
                ("GRPC_ADDR", a(4)),
                ("ADMIN_ADDR", a(5)),
                ("DATABASE_URL", db("users")),
                ("TOKEN_SIGNING_KEY", token_signing_key()),
                ("TOKEN_PUBLIC_KEYS", TOKEN_KEYS.public_key.clone()),
            ]),
            Some(p[5]),
        ),
        spawn(
            &bins.join("gateway"),
            "gateway",
            &[],
            &with(vec![
                ("HTTP_ADDR", a(6)),
                ("ADMIN_ADDR", a(7)),
                ("MARKETPLACE_URL", format!("http://{}", a(0))),
                ("RECOMMENDATIONS_URL", format!("http://{}", a(2))),
                ("USERS_URL", format!("http://{}", a(4))),
            ]),
            Some(p[7]),
        ),
    ];
    for pr in &procs {
        wait_http(
            &format!("http://127.0.0.1:{}/readyz", pr.admin.unwrap_or(0)),
            Duration::from_secs(60),
        );
    }
    wait_http(
        &format!("http://127.0.0.1:{}/api/v1/books/1", p[6]),
        Duration::from_secs(30),
    );
    Stack {
        name,
        procs,
        http: p[6],
    }
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// Starts one service alone and waits for its `/readyz`: exec → SERVING in milliseconds.
pub fn time_to_serving(bins: &Path, svc: &'static str, dir: &Path) -> f64 {
    let (g, a) = (free_port(), free_port());
    let started = Instant::now();
    let mut env: Vec<(&str, String)> = vec![
        ("GRPC_ADDR", loopback(g)),
        ("ADMIN_ADDR", loopback(a)),
        ("TOKEN_PUBLIC_KEYS", TOKEN_KEYS.public_key.clone()),
    ];
    if svc == "users" {
        env.push(("TOKEN_SIGNING_KEY", token_signing_key()));
    }
    if svc != "marketplace" {
        env.push((
            "DATABASE_URL",
            sqlite_url(&dir.join(format!("start-{svc}-{g}.db"))),
        ));
    }
    let p = spawn(&bins.join(svc), svc, &[], &env, Some(a));
    let took = started.elapsed()
        + wait_http(
            &format!("http://127.0.0.1:{a}/readyz"),
            Duration::from_secs(30),
        );
    drop(p);
    took.as_secs_f64() * 1000.0
}
