//! The running processes of a suite: started again, signalled, killed, waited for, stopped.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::Command;

use crate::{
    Suite, bin_dir,
    observe::{metric, wait_until},
};

impl Suite {
    /// Starts (or starts again) the process `name` as its spec says; its log is appended to.
    pub(crate) fn spawn(&mut self, name: &str) -> Result<(), String> {
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
}

impl Suite {
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
