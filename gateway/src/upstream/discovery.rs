//! Client-side load balancing: every ready replica of a service gets calls.
//!
//! Each upstream is a list of addresses (`http://host:port`, comma-separated). A host name is
//! resolved again every `resolve_every` (a Kubernetes headless Service answers with one address per
//! ready pod), and each address found is watched with `grpc.health.v1.Health/Watch` on its own
//! connection: a replica joins the balancer (tower's power-of-two-choices over tonic endpoints)
//! when it reports SERVING and leaves it the moment it reports NOT_SERVING (draining), its watch
//! breaks (the process died) or DNS stops naming it. A replica that keeps failing is retried with
//! jittered backoff, and never gets calls meanwhile.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use platform::backoff::Backoff;
use prometheus::IntGaugeVec;
use tokio::{sync::mpsc::Sender, task::JoinHandle};
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};

/// Connection settings shared by the balanced connections and the health watches: to `addr`,
/// over TLS when `tls` is given (with the server name to verify already set).
pub fn endpoint(
    addr: SocketAddr,
    tls: Option<&ClientTlsConfig>,
) -> Result<Endpoint, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    match tls {
        Some(tls) => endpoint.tls_config(tls.clone()),
        None => Ok(endpoint),
    }
}

/// TLS to every replica of an upstream.
#[derive(Clone, Debug)]
pub struct Tls {
    /// CA and client identity, without the server name.
    pub config: ClientTlsConfig,
    /// The name replicas' certificates must carry; `None`: the host of each target.
    pub domain: Option<String>,
}

impl Tls {
    /// The settings for replicas found by resolving `target` (`host:port`).
    fn for_target(&self, target: &str) -> ClientTlsConfig {
        let domain = self.domain.clone().unwrap_or_else(|| {
            let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        self.config.clone().domain_name(domain)
    }
}

/// What the balancer of one upstream currently holds; read by the calling layer.
#[derive(Debug, Default)]
pub struct Replicas {
    ready: AtomicUsize,
    /// Set once every address known at start has answered its first health check (or a second
    /// has passed): before that, "no replica ready" may only mean "not asked yet".
    settled: AtomicBool,
    changed: tokio::sync::Notify,
}

impl Replicas {
    /// Replicas now taking calls.
    pub fn ready(&self) -> usize {
        self.ready.load(Ordering::SeqCst)
    }

    /// Waits (at most `within`) until a replica is ready or discovery has settled; true when one
    /// is ready.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.ready() > 0 || self.settled.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(within, wait).await;
        self.ready() > 0
    }

    /// `n` replicas ready (tests of the calling layer).
    #[cfg(test)]
    pub fn with_ready(n: usize) -> Self {
        Self {
            ready: AtomicUsize::new(n),
            ..Self::default()
        }
    }

    fn settle(&self) {
        self.settled.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// Where the replicas of one upstream are found.
pub struct Discovery {
    pub name: &'static str,
    /// The gRPC service name whose health decides readiness.
    pub health_service: &'static str,
    /// `host:port` targets (scheme stripped), each resolved again every `resolve_every`.
    pub targets: Vec<String>,
    pub resolve_every: Duration,
    pub gauge: IntGaugeVec,
    /// TLS to the replicas; `None`: plaintext.
    pub tls: Option<Tls>,
}

/// Starts discovery; returns the balanced channel and what it holds. The tasks end when the
/// channel's change queue is closed (the channel was dropped).
pub fn start(d: Discovery) -> (Channel, Arc<Replicas>) {
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let replicas = Arc::new(Replicas::default());
    let d = Arc::new(d);
    let tracker = Arc::new(Tracker {
        replicas: replicas.clone(),
        changes,
        d: d.clone(),
        in_balancer: std::sync::Mutex::new(HashMap::new()),
        first_round: std::sync::Mutex::new(FirstRound {
            targets_left: d.targets.len(),
            expected: Vec::new(),
        }),
    });
    for target in d.targets.clone() {
        tokio::spawn(resolve_loop(tracker.clone(), target));
    }
    // However slow the first answers, after a second an empty balancer means "none ready".
    let r = replicas.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        r.settle();
    });
    (channel, replicas)
}

/// Progress of the first round: every target resolved, every address found answered once.
struct FirstRound {
    targets_left: usize,
    expected: Vec<SocketAddr>,
}

struct Tracker {
    replicas: Arc<Replicas>,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    d: Arc<Discovery>,
    in_balancer: std::sync::Mutex<HashMap<SocketAddr, bool>>,
    first_round: std::sync::Mutex<FirstRound>,
}

impl Tracker {
    /// Puts `addr` in (`Some`, reached through that endpoint) or out of (`None`) the balancer;
    /// returns false once the channel is gone.
    async fn set(&self, addr: SocketAddr, serving: Option<&Endpoint>) -> bool {
        let join = serving.cloned();
        let serving = join.is_some();
        let change = {
            let mut map = self.in_balancer.lock().unwrap_or_else(|e| e.into_inner());
            let was = map.insert(addr, serving).unwrap_or(false);
            self.check_settled(&map);
            if was == serving {
                None
            } else {
                let ready = map.values().filter(|&&s| s).count();
                self.replicas.ready.store(ready, Ordering::SeqCst);
                self.d
                    .gauge
                    .with_label_values(&[self.d.name])
                    .set(ready as i64);
                Some(match join {
                    Some(e) => Change::Insert(addr, e),
                    None => Change::Remove(addr),
                })
            }
        };
        let Some(change) = change else {
            return !self.changes.is_closed();
        };
        tracing::info!(upstream = self.d.name, %addr, serving, "replica {}", if serving { "joined" } else { "left" });
        let ok = self.changes.send(change).await.is_ok();
        self.replicas.changed.notify_waiters();
        ok
    }

    /// Called when a target was resolved the first time (with what it named).
    fn resolved_first(&self, found: &[SocketAddr]) {
        {
            let mut r = self.first_round.lock().unwrap_or_else(|e| e.into_inner());
            r.targets_left = r.targets_left.saturating_sub(1);
            r.expected.extend_from_slice(found);
        }
        let map = self.in_balancer.lock().unwrap_or_else(|e| e.into_inner());
        self.check_settled(&map);
    }

    fn check_settled(&self, answered: &HashMap<SocketAddr, bool>) {
        let r = self.first_round.lock().unwrap_or_else(|e| e.into_inner());
        if r.targets_left == 0 && r.expected.iter().all(|a| answered.contains_key(a)) {
            self.replicas.settle();
        }
    }

    fn forget(&self, addr: SocketAddr) {
        self.in_balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

/// Resolves `target` now and every `resolve_every` (once for an IP literal), watching each
/// address found and dropping those no longer named.
async fn resolve_loop(t: Arc<Tracker>, target: String) {
    let literal = target.parse::<SocketAddr>().is_ok();
    let tls = t.d.tls.as_ref().map(|tls| tls.for_target(&target));
    let mut watchers: HashMap<SocketAddr, JoinHandle<()>> = HashMap::new();
    let mut first = true;
    loop {
        let resolved: std::io::Result<Vec<SocketAddr>> = tokio::net::lookup_host(target.as_str())
            .await
            .map(Iterator::collect);
        match resolved {
            Ok(found) => {
                for addr in &found {
                    watchers.entry(*addr).or_insert_with(|| {
                        tokio::spawn(watch_replica(t.clone(), *addr, tls.clone()))
                    });
                }
                let gone: Vec<SocketAddr> = watchers
                    .keys()
                    .filter(|a| !found.contains(a))
                    .copied()
                    .collect();
                for addr in gone {
                    if let Some(w) = watchers.remove(&addr) {
                        w.abort();
                    }
                    t.set(addr, None).await;
                    t.forget(addr);
                }
                if std::mem::take(&mut first) {
                    t.resolved_first(&found);
                }
            }
            Err(error) => {
                // Keep what we have: a DNS hiccup must not empty the balancer.
                tracing::warn!(upstream = t.d.name, %target, %error, "resolving failed");
                if std::mem::take(&mut first) {
                    t.resolved_first(&[]);
                }
            }
        }
        if t.changes.is_closed() {
            break;
        }
        if literal {
            // Nothing to re-resolve; stay alive while the channel lives.
            while !t.changes.is_closed() {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            break;
        }
        tokio::time::sleep(t.d.resolve_every).await;
    }
    for (_, w) in watchers {
        w.abort();
    }
}

/// Follows one replica's health; in the balancer exactly while it reports SERVING.
async fn watch_replica(t: Arc<Tracker>, addr: SocketAddr, tls: Option<ClientTlsConfig>) {
    let endpoint = match endpoint(addr, tls.as_ref()) {
        Ok(e) => e,
        Err(error) => {
            tracing::error!(upstream = t.d.name, %addr, %error, "no connection settings for the replica");
            return;
        }
    };
    let channel = endpoint.connect_lazy();
    let mut failures: u32 = 0;
    loop {
        let mut client = HealthClient::new(channel.clone());
        let outcome = async {
            let mut stream = client
                .watch(HealthCheckRequest {
                    service: t.d.health_service.to_owned(),
                })
                .await?
                .into_inner();
            while let Some(update) = stream.message().await? {
                let serving = update.status == ServingStatus::Serving as i32;
                if !t.set(addr, serving.then_some(&endpoint)).await {
                    return Ok(true);
                }
                if serving {
                    failures = 0;
                }
            }
            Ok::<bool, tonic::Status>(false)
        }
        .await;
        if matches!(outcome, Ok(true)) {
            return; // the channel is gone
        }
        // The watch ended or failed: the replica is gone or restarting.
        if let Err(status) = &outcome
            && failures == 0
        {
            tracing::debug!(upstream = t.d.name, %addr, %status, "health watch failed");
        }
        if !t.set(addr, None).await {
            return;
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(BACKOFF.jittered(failures)).await;
    }
}

/// Between health watches of a replica and between retries of a read: 20 ms plus a random share
/// of min(50 ms * 2^(n-1), 2 s).
pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(2),
    floor: Duration::from_millis(20),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            assert!(BACKOFF.jittered(1) <= Duration::from_millis(70));
            assert!(BACKOFF.jittered(30) <= Duration::from_millis(2_020));
            assert!(BACKOFF.jittered(30) >= Duration::from_millis(20));
        }
    }
}
