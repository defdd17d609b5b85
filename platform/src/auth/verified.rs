//! Tokens whose signature has been checked, kept until they expire: a reader's every page view
//! carries the same token, and an Ed25519 verification is the largest single cost of checking it.
//! Only a token that verified is kept, under its exact text, so a hit is as good as a check; its
//! expiry is still compared on every use. Revocation is checked apart, on every call.

use std::{collections::HashMap, sync::Mutex};

use super::Claims;

/// Tokens held at most: past it, the expired ones go, and if none has, all of them (tokens are
/// issued only on sign-in, which is rate-limited, so a full table is rare and cheap to refill).
const CAPACITY: usize = 4096;

/// See the module header.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    by_token: Mutex<HashMap<Box<str>, Claims>>,
}

impl VerifiedTokens {
    /// The claims of `token` if it verified before and has not expired at `now`.
    pub(super) fn get(&self, token: &str, now: i64) -> Option<Claims> {
        let held = self.lock();
        held.get(token).filter(|c| c.exp > now).cloned()
    }

    /// Keeps `token`, which verified with `claims`.
    pub(super) fn insert(&self, token: &str, claims: &Claims, now: i64) {
        let mut held = self.lock();
        if held.len() >= CAPACITY {
            held.retain(|_, c| c.exp > now);
            if held.len() >= CAPACITY {
                held.clear();
            }
        }
        held.insert(token.into(), claims.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u".into(),
            sid: "s".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn a_kept_token_is_given_back_only_before_it_expires() {
        let kept = VerifiedTokens::default();
        kept.insert("a.b.c", &claims(100), 10);
        assert_eq!(kept.get("a.b.c", 99), Some(claims(100)));
        assert_eq!(kept.get("a.b.c", 100), None);
        assert_eq!(kept.get("a.b.d", 10), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let kept = VerifiedTokens::default();
        for i in 0..CAPACITY * 2 + 1 {
            kept.insert(&format!("t{i}"), &claims(100), 10);
            assert!(kept.lock().len() <= CAPACITY);
        }
    }
}
