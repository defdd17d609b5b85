//! A per-client budget for sign-in and sign-up: a token bucket per client address, so one
//! client guessing passwords or creating accounts in bulk is answered 429 (with `Retry-After`)
//! long before the users service's hashing queue is full for everybody. The client is the
//! connection's peer address, or the last address of `X-Forwarded-For` when the gateway is told
//! to trust the proxy in front of it. The table is bounded: idle (refilled) buckets are dropped
//! when it is full, and should it still be full, it starts again empty (logged).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};

use crate::AppState;

/// Clients tracked at once (~50 bytes each).
pub const MAX_CLIENTS: usize = 65_536;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by client address.
pub struct AuthLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    max_clients: usize,
}

impl AuthLimiter {
    /// `per_minute` attempts per client, up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_capacity(per_minute, burst, MAX_CLIENTS)
    }

    pub fn with_capacity(per_minute: u32, burst: u32, max_clients: usize) -> Self {
        Self {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            max_clients: max_clients.max(1),
        }
    }

    /// Takes one attempt from `client`'s budget at `now`, or says how long until one is back.
    pub fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&client) && buckets.len() >= self.max_clients {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= self.max_clients {
                tracing::warn!(
                    clients = buckets.len(),
                    "sign-in rate limiter full of active clients; starting again"
                );
                buckets.clear();
            }
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }

    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    /// Clients currently tracked.
    pub fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The last address of `X-Forwarded-For`: the one the proxy in front of us appended (earlier
/// ones are whatever the client claimed).
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
}

/// The client's address (see the module header); unspecified when served without connection
/// info (in-process tests).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        if s.trust_forwarded_for
            && let Some(ip) = forwarded_for(&parts.headers)
        {
            return Ok(Self(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_refill() {
        let l = AuthLimiter::new(6, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at(A, t).is_ok());
        }
        let wait = l.check_at(A, t).unwrap_err();
        assert!((9.9..=10.1).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(
            l.check_at(B, t).is_ok(),
            "another client has its own budget"
        );
        assert!(l.check_at(A, t + Duration::from_secs(10)).is_ok());
        assert!(l.check_at(A, t + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn the_table_of_clients_stays_bounded() {
        let l = AuthLimiter::with_capacity(60, 2, 100);
        let t = Instant::now();
        for i in 0..1_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            let _ = l.check_at(ip, t);
            assert!(l.clients() <= 100);
        }
        // Idle buckets (refilled) are what goes first.
        let later = t + Duration::from_secs(60);
        assert!(l.check_at(A, later).is_ok());
        assert!(l.clients() <= 100);
    }

    #[test]
    fn the_proxys_address_is_the_last_forwarded_one() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.2.3.4, 10.0.0.1".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(A));
        h.append("x-forwarded-for", "garbage, 10.0.0.2".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(B));
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}
