//! What the browser tests need on this machine (Chromium, chromedriver, axe-core) and the
//! chromedriver process, in a process group of its own so a failing test leaks no Chromium.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{free_port, unique};

/// What the browser tests need on this machine.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Says why the test is skipped and passes, or fails it when `BOOKSTORE_REQUIRE_BROWSER` is set
/// (CI sets it: there a missing browser is a broken set-up, not a reason to skip).
pub(crate) fn skip(why: &str) {
    assert!(
        std::env::var("BOOKSTORE_REQUIRE_BROWSER").is_err(),
        "BOOKSTORE_REQUIRE_BROWSER is set but {why}"
    );
    platform::database::testing::note_skip(&format!("browser tests: {why}"));
}

/// Chromium and chromedriver (`CHROMIUM_BIN`, `CHROMEDRIVER` or Debian's `chromium` and
/// `chromium-driver`), or `None` after saying the test is skipped.
pub fn tools() -> Option<Tools> {
    let chromium = std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        // Debian's /usr/bin/chromium is a shell wrapper; the binary itself starts faster.
        .or_else(|| Some(PathBuf::from("/usr/lib/chromium/chromium")).filter(|p| p.is_file()))
        .or_else(|| on_path("chromium"));
    let chromedriver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path("chromedriver"));
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        _ => {
            skip(
                "chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)",
            );
            None
        }
    }
}

/// The source of axe-core from `tests/browser/node_modules` (`npm ci --prefix tests/browser`),
/// or `None` after saying the test is skipped.
pub fn axe_source() -> Option<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            skip(&format!(
                "axe-core is not installed ({}: {e}; run `npm ci --prefix tests/browser`)",
                path.display()
            ));
            None
        }
    }
}

/// Where screenshots go: `target/screenshots/` of this workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("screenshots")
}

/// A chromedriver process in a process group of its own, so the Chromium it starts goes with it.
pub(crate) struct Driver {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) dir: PathBuf,
}

impl Driver {
    pub(crate) async fn start(tools: &Tools) -> Driver {
        let dir = std::env::temp_dir().join(format!("bookstore-browser-{}", unique()));
        std::fs::create_dir_all(&dir).expect("browser temp dir");
        let mut last = String::new();
        // The port is free when picked, but another process may take it before chromedriver
        // binds it: a driver that does not come up is started again on another port.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display()));
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                dir: dir.clone(),
            };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
            driver.kill();
        }
        panic!("chromedriver did not start: {last}");
    }

    /// Polls `/status` until the driver says it is ready (10 s at most).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && body.await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("chromedriver exited ({status})"));
            }
            if Instant::now() >= deadline {
                return Err(format!("{}/status not ready within 10 s", self.url));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the driver's process group (the driver, and any Chromium a failed test left open).
    pub(crate) fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Driver {
    /// The end of chromedriver's log, for a failure message.
    pub(crate) fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
