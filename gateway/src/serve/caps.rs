//! Connections open at once, in total (MAX_CONNECTIONS) and per client address
//! (MAX_CONNECTIONS_PER_CLIENT), and the connection metrics.
//!
//! Why 512 in total: the pod's limit is 64 MiB and the gateway uses about 17 MiB under load. An
//! idle HTTP/2 connection holds 16 KiB, an HTTP/1 head stuck at 7 KiB 19 KiB, a 16 KiB body
//! trickling in 34 KiB; the costliest, an HTTP/2 connection whose 8 streams all wait with a
//! body, 71 KiB. 512 x 71 KiB = 36 MiB, + 17 MiB = 53 MiB: under the limit with room for the
//! allocator.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use platform::metrics::Metrics;

use crate::client_addr::client_key;

/// What a connection refused at the caps is told before it is closed.
pub(super) const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
    connection: close\r\ncontent-length: 0\r\n\r\n";

/// The connection metrics: `http_connections_open`, `http_connections_refused_total{reason}`
/// (`total`, `per_client`) and `http_connections_timed_out_total{phase}` (`head`, `idle`,
/// `send`; bodies that time out are 408s in `http_requests_total`).
#[derive(Clone)]
pub(super) struct ConnMetrics {
    open: prometheus::IntGauge,
    refused_total: prometheus::IntCounter,
    refused_per_client: prometheus::IntCounter,
    pub(super) timed_out: prometheus::IntCounterVec,
}

impl ConnMetrics {
    pub(super) fn new(metrics: &Metrics) -> Self {
        let refused = metrics.counter_vec(
            "http_connections_refused_total",
            "Connections answered 503 and closed at once: at MAX_CONNECTIONS (total) or \
             MAX_CONNECTIONS_PER_CLIENT (per_client).",
            &["reason"],
        );
        let timed_out = metrics.counter_vec(
            "http_connections_timed_out_total",
            "Connections closed by a timeout: no (next) request head in time (head), nothing in \
             flight too long (idle), or an answer the client does not take (send).",
            &["phase"],
        );
        for phase in ["head", "idle", "send"] {
            timed_out.with_label_values(&[phase]);
        }
        Self {
            open: metrics.gauge("http_connections_open", "Client connections open."),
            refused_total: refused.with_label_values(&["total"]),
            refused_per_client: refused.with_label_values(&["per_client"]),
            timed_out,
        }
    }
}

/// Connections open, in total and per client.
pub(super) struct Clients {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<OpenConnections>,
    metrics: ConnMetrics,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back when dropped.
pub(super) struct Slot {
    clients: Arc<Clients>,
    client: IpAddr,
}

impl Clients {
    /// At most `max_total` connections, `max_per_client` of them from one client.
    pub(super) fn new(max_total: usize, max_per_client: usize, metrics: ConnMetrics) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            open: Mutex::default(),
            metrics,
        })
    }

    /// A place for a connection from `peer`, or `None` (counted) when a cap is reached.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let client = client_key(peer);
        let mut open = self.open.lock().unwrap();
        if open.total >= self.max_total {
            self.metrics.refused_total.inc();
            return None;
        }
        let mine = open.by_client.entry(client).or_default();
        if *mine >= self.max_per_client {
            self.metrics.refused_per_client.inc();
            return None;
        }
        *mine += 1;
        open.total += 1;
        self.metrics.open.set(open.total as i64);
        Some(Slot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap();
        open.total -= 1;
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
        self.clients.metrics.open.set(open.total as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_client_past_its_cap_is_refused_while_others_are_admitted_up_to_the_total() {
        let metrics = Metrics::new();
        let m = ConnMetrics::new(&metrics);
        let clients = Clients::new(3, 2, m.clone());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        let a1 = clients.admit(a).unwrap();
        let _a2 = clients.admit(a).unwrap();
        assert!(clients.admit(a).is_none(), "a third from the same client");
        assert_eq!(m.refused_per_client.get(), 1);
        let _b1 = clients.admit(b).unwrap();
        assert!(clients.admit(c).is_none(), "the total is reached");
        assert_eq!(m.refused_total.get(), 1);
        assert_eq!(m.open.get(), 3);
        drop(a1);
        assert_eq!(m.open.get(), 2);
        let _c1 = clients
            .admit(c)
            .expect("a closed connection gives its place back");
    }
}
