//! The suite harness: starts the four real binaries as processes on loopback (or targets an
//! already running suite given by `BOOKSTORE_BASE_URL`), waits until each is ready, and stops
//! them when dropped.
#![forbid(unsafe_code)]

mod forms;
mod observe;
mod processes;
mod start;
pub mod web_client;

pub use forms::Forms;
pub use observe::{metric, wait_until};

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
};

use tokio::process::Child;

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

/// The lowest port [`free_port`] picks.
const LOWEST_PORT: u16 = 10_000;

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_from() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port free at the time of asking, for a process that binds it itself: the one helper
/// every test and benchmark that starts binaries uses.
///
/// Chosen at random below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by
/// default): a port the kernel hands out for port 0 lies in that range, and before the process
/// told it binds it, any outgoing connection (a readiness poll, a load tool) may take it as its
/// source port, and the process fails to start. Ports below the range are never taken that way.
/// The kernel's choice is the fallback when no port below the range binds.
pub fn free_port() -> u16 {
    if let Some(span) = ephemeral_from()
        .checked_sub(LOWEST_PORT)
        .filter(|s| *s > 1_000)
    {
        for _ in 0..64 {
            let mut b = [0u8; 2];
            getrandom::getrandom(&mut b).expect("random source");
            let port = LOWEST_PORT + u16::from_le_bytes(b) % span;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
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
}

impl Suite {
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

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_lie_below_the_ephemeral_range_and_bind() {
        for _ in 0..20 {
            let port = super::free_port();
            assert!(
                (super::LOWEST_PORT..super::ephemeral_from()).contains(&port),
                "{port}"
            );
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port binds");
        }
    }
}
