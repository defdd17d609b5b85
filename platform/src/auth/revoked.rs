//! The in-memory list of ended sessions and users the interceptor consults.

use super::Claims;

/// Sessions and users whose tokens no longer count, each until the last token it concerns has
/// expired (seconds since the epoch). Cloning shares the list.
#[derive(Clone, Debug, Default)]
pub struct Revocations {
    ended: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, i64>>>,
}

impl Revocations {
    /// The key of a session's revocation.
    pub fn session_key(sid: &str) -> String {
        format!("s:{sid}")
    }

    /// The key of a user's revocation (every token of the user).
    pub fn user_key(user_id: &str) -> String {
        format!("u:{user_id}")
    }

    /// Records that `key` ends tokens until `until` (seconds since the epoch).
    pub fn insert(&self, key: String, until: i64) {
        let mut ended = self.ended.write().unwrap_or_else(|e| e.into_inner());
        let at = ended.entry(key).or_insert(until);
        *at = (*at).max(until);
    }

    /// Whether the token with these claims has been ended.
    pub fn ends(&self, claims: &Claims) -> bool {
        let ended = self.ended.read().unwrap_or_else(|e| e.into_inner());
        ended.contains_key(&Self::session_key(&claims.sid))
            || ended.contains_key(&Self::user_key(&claims.sub))
    }

    /// Forgets the entries whose tokens have all expired by `now` (seconds since the epoch).
    pub fn prune(&self, now: i64) {
        self.ended
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.ended.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
