//! Live feeds open at once, in total (`FEED_LIMIT`, beyond it 503) and per client address
//! (`FEED_LIMIT_PER_CLIENT`, beyond it 429), so one client cannot take every feed the gateway
//! may hold. A feed holds its [`FeedSlot`] inside its stream: the slot comes back when the feed
//! ends, the gateway drains, or the client goes away. The lock is taken only when a feed opens
//! or closes, and the table holds at most `FEED_LIMIT` addresses (one with no feed is removed).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::http::StatusCode;

use crate::{client_addr::client_key, error::ApiError};

/// How long a client refused at its own cap is asked to wait: a slot of its comes back only
/// when one of its feeds ends.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The feeds open, against their caps.
pub struct FeedLimits {
    total: usize,
    per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why a feed was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client holds `FEED_LIMIT_PER_CLIENT` feeds already.
    Client,
    /// The gateway holds `FEED_LIMIT` feeds already.
    Total,
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Client => ApiError::too_many(
                "this address holds as many live feeds as one client may \
                 (FEED_LIMIT_PER_CLIENT); close one, or retry later",
                RETRY_AFTER,
            ),
            Refused::Total => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway holds as many live feeds as it may (FEED_LIMIT); retry later",
            ),
        }
    }
}

/// One open feed's place under the caps, given back when dropped.
pub struct FeedSlot {
    limits: Arc<FeedLimits>,
    client: IpAddr,
}

impl FeedLimits {
    /// At most `total` feeds, `per_client` of them from one client (each at least 1).
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_client: per_client.max(1),
            open: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a feed to `client` (an IPv6 client counts as its /64); the client's own cap
    /// is checked first, so a client at it is told so whatever the total.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<FeedSlot, Refused> {
        let client = client_key(client);
        let mut open = self.lock();
        if open.by_client.get(&client).copied().unwrap_or(0) >= self.per_client {
            return Err(Refused::Client);
        }
        if open.total >= self.total {
            return Err(Refused::Total);
        }
        open.total += 1;
        *open.by_client.entry(client).or_default() += 1;
        Ok(FeedSlot {
            limits: self.clone(),
            client,
        })
    }

    /// Feeds open: in all, and to `client`.
    pub fn open(&self, client: IpAddr) -> (usize, usize) {
        let open = self.lock();
        let mine = open.by_client.get(&client_key(client)).copied();
        (open.total, mine.unwrap_or(0))
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));

    #[test]
    fn a_client_at_its_cap_is_refused_while_others_open_feeds_up_to_the_total() {
        let limits = FeedLimits::new(3, 2);
        let a1 = limits.admit(A).unwrap();
        let _a2 = limits.admit(A).unwrap();
        assert_eq!(limits.admit(A).err(), Some(Refused::Client));
        let _b1 = limits.admit(B).unwrap();
        assert_eq!(limits.admit(C).err(), Some(Refused::Total));
        assert_eq!(
            limits.admit(A).err(),
            Some(Refused::Client),
            "its own cap first"
        );
        drop(a1);
        assert_eq!(limits.open(A), (2, 1));
        let _c1 = limits.admit(C).unwrap();
        assert_eq!(limits.open(C), (3, 1));
    }

    #[test]
    fn a_client_with_no_feed_leaves_no_entry_and_ipv6_counts_by_slash_64() {
        let limits = FeedLimits::new(10, 1);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let slot = limits.admit(one).unwrap();
        assert_eq!(limits.admit(same_net).err(), Some(Refused::Client));
        drop(slot);
        assert!(limits.lock().by_client.is_empty());
        assert_eq!(limits.open(one), (0, 0));
        assert!(limits.admit(same_net).is_ok());
    }

    #[test]
    fn a_refusal_is_a_problem_with_retry_after() {
        let e = ApiError::from(Refused::Client);
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_secs, Some(RETRY_AFTER.as_secs()));
        assert_eq!(
            ApiError::from(Refused::Total).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
