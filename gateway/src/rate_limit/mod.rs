//! Sign-in throttling: a token bucket per client address and one per account, so a client
//! guessing passwords or creating accounts in bulk is answered 429 (with `Retry-After`) long
//! before the users service's hashing queue is full for everybody, and no account's password
//! can be guessed faster than its own budget however many addresses the guesses come from.
//!
//! - **Per address**: every sign-in, sign-up and password check spends one attempt of the
//!   client's budget (`AUTH_RATE_PER_MINUTE`, `AUTH_RATE_BURST`). An IPv6 client is its /64 (one
//!   subscriber's network, which it can pick addresses from at will).
//! - **Per account**: a sign-in holds one attempt of the account's budget (its email, trimmed and
//!   lower-cased; a password change, the account's id) while the users service checks the
//!   password, and keeps it spent only when the password was wrong: a successful sign-in costs
//!   the account nothing (`AUTH_ACCOUNT_RATE_PER_MINUTE`, `AUTH_ACCOUNT_RATE_BURST`). While the
//!   budget is empty every attempt on that account is 429, a right password included: were the
//!   right one let through, each further guess would still be answered right or wrong, and the
//!   budget would slow no guesser. It is a rate, not a lockout: an attacker keeps an account
//!   shut only while it goes on failing at the refill rate, the account opens again one attempt
//!   per refill once it stops, and sessions already signed in are untouched.
//!
//! Each table's memory is bounded (`buckets.rs`).
//!
//! The client's address is [`crate::client_addr`]'s.

mod buckets;

use std::{
    hash::{BuildHasher, Hasher, RandomState},
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tonic::Code;

use self::buckets::Buckets;
pub use self::buckets::Rate;
use crate::{client_addr::client_key, error::ApiError};

/// Client addresses tracked at once: about 100 bytes each with the tables' overhead (3.1 MiB
/// in all). Only buckets still refilling count (full ones are dropped), and a drained one is the
/// last to go, so this is the number of clients failing within one refill time.
pub const MAX_CLIENTS: usize = 32_768;
/// Accounts tracked at once (the same size each, 3.1 MiB in all).
pub const MAX_ACCOUNTS: usize = 32_768;

/// Why an attempt was refused, and how long until the next one is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client address's budget is spent.
    Client(Duration),
    /// The account's budget of failed attempts is spent.
    Account(Duration),
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Client(wait) => ApiError::too_many(
                "too many sign-in or sign-up attempts from this address; retry later",
                wait,
            ),
            Refused::Account(wait) => ApiError::too_many(
                "too many failed password attempts for this account; retry later",
                wait,
            ),
        }
    }
}

/// The sign-in budgets by client address and by account (see the module header).
pub struct AuthLimiter {
    keys: RandomState,
    clients: Mutex<Buckets>,
    accounts: Mutex<Buckets>,
}

fn lock(m: &Mutex<Buckets>) -> MutexGuard<'_, Buckets> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AuthLimiter {
    /// `client` attempts per address; `account` failed attempts per account.
    pub fn new(client: Rate, account: Rate) -> Self {
        Self::with_capacity(client, account, MAX_CLIENTS, MAX_ACCOUNTS)
    }

    pub fn with_capacity(
        client: Rate,
        account: Rate,
        max_clients: usize,
        max_accounts: usize,
    ) -> Self {
        let epoch = Instant::now();
        Self {
            // Keyed per process: nobody can choose names whose keys collide.
            keys: RandomState::new(),
            clients: Mutex::new(Buckets::new(client, max_clients, epoch, "clients")),
            accounts: Mutex::new(Buckets::new(account, max_accounts, epoch, "accounts")),
        }
    }

    /// A client's key: its IPv4 address, or the /64 of its IPv6 one.
    fn client_key(&self, client: IpAddr) -> u64 {
        self.keys.hash_one(client_key(client))
    }

    /// An account's key: its name as the users service matches it (trimmed, lower-cased).
    fn account_key(&self, account: &str) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write(account.trim().to_lowercase().as_bytes());
        h.finish()
    }

    /// One attempt at `now`: one from `client`'s budget and, when a password of `account` is to
    /// be checked, one held from the account's until the [`Attempt`] is settled.
    pub fn attempt_at(
        self: &Arc<Self>,
        client: IpAddr,
        account: Option<&str>,
        now: Instant,
    ) -> Result<Attempt, Refused> {
        lock(&self.clients)
            .take(self.client_key(client), now)
            .map_err(Refused::Client)?;
        let Some(account) = account else {
            return Ok(Attempt { held: None });
        };
        let key = self.account_key(account);
        lock(&self.accounts)
            .take(key, now)
            .map_err(Refused::Account)?;
        Ok(Attempt {
            held: Some((self.clone(), key)),
        })
    }

    pub fn attempt(
        self: &Arc<Self>,
        client: IpAddr,
        account: Option<&str>,
    ) -> Result<Attempt, Refused> {
        self.attempt_at(client, account, Instant::now())
    }

    /// Client addresses and accounts currently tracked.
    pub fn tracked(&self) -> (usize, usize) {
        (lock(&self.clients).len(), lock(&self.accounts).len())
    }
}

/// An attempt under way: it holds one attempt of the account's budget, given back when it is
/// dropped unless [`Attempt::failed`] said the password was wrong (so a sign-in that succeeds,
/// meets a service failure, or is abandoned before its answer costs the account nothing).
pub struct Attempt {
    held: Option<(Arc<AuthLimiter>, u64)>,
}

impl Attempt {
    /// The password was wrong: the account's attempt stays spent.
    pub fn failed(mut self) {
        self.held = None;
    }

    /// Settles on what the users service answered: `wrong` is the code it gives a wrong
    /// password (UNAUTHENTICATED for a sign-in, PERMISSION_DENIED for a password check).
    pub fn settle<T>(self, outcome: &Result<T, ApiError>, wrong: Code) {
        if matches!(outcome, Err(e) if e.grpc_code == Some(wrong)) {
            self.failed();
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some((limiter, key)) = self.held.take() {
            lock(&limiter.accounts).give_back(key, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn rate(per_minute: u32, burst: u32) -> Rate {
        Rate { per_minute, burst }
    }

    fn limiter(client: Rate, account: Rate) -> Arc<AuthLimiter> {
        Arc::new(AuthLimiter::new(client, account))
    }

    fn wait(r: Result<Attempt, Refused>) -> Refused {
        r.err().expect("refused")
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_refill() {
        let l = limiter(rate(6, 3), rate(60, 60));
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.attempt_at(A, None, t).is_ok());
        }
        let Refused::Client(w) = wait(l.attempt_at(A, None, t)) else {
            panic!("the client's budget")
        };
        assert!((9.9..=10.1).contains(&w.as_secs_f64()), "{w:?}");
        assert!(
            l.attempt_at(B, None, t).is_ok(),
            "another client has its own budget"
        );
        assert!(l.attempt_at(A, None, t + Duration::from_secs(10)).is_ok());
        assert!(l.attempt_at(A, None, t + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_is_itself() {
        let l = limiter(rate(1, 1), rate(60, 60));
        let t = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.attempt_at(one, None, t).is_ok());
        assert!(l.attempt_at(same_net, None, t).is_err());
        assert!(l.attempt_at(other_net, None, t).is_ok());
        assert!(l.attempt_at(A, None, t).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(l.attempt_at(mapped, None, t).is_err());
    }

    #[test]
    fn only_failed_attempts_spend_an_accounts_budget() {
        let l = limiter(rate(600, 600), rate(1, 3));
        let t = Instant::now();
        for _ in 0..10 {
            // Right passwords: held, then given back.
            drop(l.attempt_at(A, Some("ada@example.org"), t).unwrap());
        }
        for _ in 0..3 {
            l.attempt_at(A, Some("ada@example.org"), t)
                .unwrap()
                .failed();
        }
        let Refused::Account(w) = wait(l.attempt_at(B, Some(" ADA@example.org "), t)) else {
            panic!("the account's budget, whatever the address or the case")
        };
        assert!((59.0..=60.1).contains(&w.as_secs_f64()), "{w:?}");
        assert!(
            l.attempt_at(B, Some("bob@example.org"), t).is_ok(),
            "another account has its own budget"
        );
        let later = t + Duration::from_secs(60);
        assert!(l.attempt_at(B, Some("ada@example.org"), later).is_ok());
    }

    #[test]
    fn attempts_held_at_once_cannot_overdraw_an_account() {
        let l = limiter(rate(600, 600), rate(1, 2));
        let t = Instant::now();
        let first = l.attempt_at(A, Some("ada@example.org"), t).unwrap();
        let second = l.attempt_at(B, Some("ada@example.org"), t).unwrap();
        assert!(l.attempt_at(A, Some("ada@example.org"), t).is_err());
        drop(first); // a success gives its attempt back
        let third = l.attempt_at(A, Some("ada@example.org"), t).unwrap();
        second.failed();
        third.failed();
        assert!(l.attempt_at(A, Some("ada@example.org"), t).is_err());
    }

    #[test]
    fn when_full_the_idlest_bucket_goes_and_drained_ones_keep_their_state() {
        let l = Arc::new(AuthLimiter::with_capacity(
            rate(60, 2),
            rate(60, 60),
            100,
            100,
        ));
        let t = Instant::now();
        // The attacker drains its budget.
        assert!(l.attempt_at(A, None, t).is_ok());
        assert!(l.attempt_at(A, None, t).is_ok());
        assert!(l.attempt_at(A, None, t).is_err());
        // A client with one attempt made, a moment later: its bucket is full again sooner.
        let ms = |n| t + Duration::from_millis(n);
        assert!(l.attempt_at(B, None, ms(10)).is_ok());
        // Then a flood of new addresses, far more than the table holds.
        for i in 0..1_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            assert!(l.attempt_at(ip, None, ms(20)).is_ok());
            assert!(l.tracked().0 <= 100);
        }
        assert_eq!(l.tracked().0, 100, "bounded, and never wiped");
        // The drained bucket survived the flood: still refused, nothing regained.
        let Refused::Client(w) = wait(l.attempt_at(A, None, ms(30))) else {
            panic!("the attacker's budget")
        };
        assert!(w > Duration::from_millis(900), "{w:?}");
        // The idler one did not: B was dropped for the flood (it held less than A).
        assert!(
            l.attempt_at(B, None, ms(30)).is_ok() && l.attempt_at(B, None, ms(30)).is_ok(),
            "B starts again with a full budget"
        );
    }

    #[test]
    fn buckets_full_again_are_dropped_as_time_passes() {
        let l = limiter(rate(60, 2), rate(60, 2));
        let t = Instant::now();
        for i in 0..50u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            l.attempt_at(ip, Some(&format!("u{i}@x.org")), t)
                .unwrap()
                .failed();
        }
        assert_eq!(l.tracked(), (50, 50));
        // Two seconds later each is full again: every attempt drops a few such buckets, and a
        // bucket given back to full leaves no trace.
        let later = t + Duration::from_secs(2);
        for i in 0..25u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(1_000 + i));
            drop(l.attempt_at(ip, Some("z@x.org"), later).unwrap());
        }
        assert_eq!(l.tracked(), (25, 0), "only the 25 new clients are held");
    }
}
