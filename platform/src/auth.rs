//! Bearer tokens: HMAC-SHA256 signed, expiring, issued by the users service and checked by a
//! tonic interceptor in every service that needs to know who calls.
//!
//! A token names its session (`sid`), so it can end before it expires: signing out revokes the
//! session, deleting an account revokes every token of its user. Revocations are kept in the
//! database of each service that checks tokens (see [`crate::revocation`]) and mirrored in
//! memory in a [`Revocations`] list the interceptor consults; an entry lives only until the last
//! token it can concern has expired, so the list holds at most the sessions ended within one
//! token lifetime.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::{Request, Status};

/// Shortest signing secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a token was refused. The messages are safe to show to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the bearer token's signature is not valid")]
    BadSignature,
    #[error("the bearer token has expired; sign in again")]
    Expired,
    #[error("the session of this bearer token has ended; sign in again")]
    Revoked,
}

/// Why a signing key could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the token secret must be at least {MIN_SECRET_LEN} bytes long")]
pub struct WeakSecret;

/// The subject of the tokens the users service gives itself for its calls to other services
/// (never a user id: those are UUIDs).
pub const USERS_SERVICE: &str = "service:users";

/// What a valid token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session: one sign-in, ended by signing out.
    pub sid: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}

/// The key that signs and checks tokens (shared by users and the services that verify).
#[derive(Clone)]
pub struct TokenKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: &SecretString) -> Result<Self, WeakSecret> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        Ok(Self {
            mac: Hmac::new_from_slice(bytes).map_err(|_| WeakSecret)?,
        })
    }

    /// Issues a token for `user_id`, valid for `ttl` from `now` (seconds since the epoch).
    pub fn issue_at(&self, user_id: &str, now: i64, ttl: Duration) -> (String, Claims) {
        let mut sid = [0u8; 16];
        getrandom::getrandom(&mut sid).expect("the OS has a random source");
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: URL_SAFE_NO_PAD.encode(sid),
            iat: now,
            exp: now + ttl.as_secs() as i64,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{payload}.{sig}"), claims)
    }

    /// Issues a token valid for `ttl` from now.
    pub fn issue(&self, user_id: &str, ttl: Duration) -> (String, Claims) {
        self.issue_at(user_id, crate::now_unix_ms() / 1000, ttl)
    }

    /// Checks signature and expiry at `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let raw = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Checks signature and expiry now.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, crate::now_unix_ms() / 1000)
    }
}

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

/// The authenticated caller, put into a request's extensions by [`AuthInterceptor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    /// The session of the token (empty for no session).
    pub session_id: String,
    /// When the token expires, seconds since the epoch.
    pub expires_at: i64,
}

/// Checks `authorization: Bearer …` metadata when present: a bad, expired or ended token is
/// UNAUTHENTICATED at once; a good one becomes a [`Caller`]; none at all leaves the call
/// anonymous, and the handlers that need a caller ask for it with [`caller`].
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    key: TokenKey,
    revocations: Revocations,
}

impl AuthInterceptor {
    pub fn new(key: TokenKey) -> Self {
        Self::with_revocations(key, Revocations::default())
    }

    /// An interceptor that also refuses the tokens in `revocations`.
    pub fn with_revocations(key: TokenKey, revocations: Revocations) -> Self {
        Self { key, revocations }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = req.metadata().get("authorization") else {
            return Ok(req);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let claims = self
            .key
            .verify(token)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        if self.revocations.ends(&claims) {
            return Err(Status::unauthenticated(TokenError::Revoked.to_string()));
        }
        req.extensions_mut().insert(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            expires_at: claims.exp,
        });
        Ok(req)
    }
}

/// The caller of a call that needs one; UNAUTHENTICATED when it came without a token.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("this call needs a bearer token: sign in first"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn key(s: &str) -> TokenKey {
        TokenKey::new(&SecretString::from(s.to_owned())).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_with_the_key_that_issued_it() {
        let k = key(SECRET);
        let (t, claims) = k.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(k.verify_at(&t, 1_030).unwrap(), claims);
        assert_eq!(claims.sub, "u1");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let k = key(SECRET);
        let (t, _) = k.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(k.verify_at(&t, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let (t, _) = key(SECRET).issue_at("u1", 1_000, Duration::from_secs(60));
        let other = key("another-secret-that-is-long-enough!!");
        assert_eq!(other.verify_at(&t, 1_001), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_whose_payload_was_changed_is_refused() {
        let k = key(SECRET);
        let (t, _) = k.issue_at("u1", 1_000, Duration::from_secs(60));
        let (_, sig) = t.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"u2","sid":"x","iat":1000,"exp":99999}"#);
        assert_eq!(
            k.verify_at(&format!("{forged}.{sig}"), 1_001),
            Err(TokenError::BadSignature)
        );
        assert_eq!(k.verify_at("garbage", 1_001), Err(TokenError::Malformed));
    }

    #[test]
    fn each_token_names_a_session_of_its_own() {
        let k = key(SECRET);
        let (_, a) = k.issue_at("u1", 1_000, Duration::from_secs(60));
        let (_, b) = k.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_ne!(a.sid, b.sid);
        assert!(a.sid.len() >= 20);
    }

    #[test]
    fn a_revoked_session_or_user_is_refused_and_others_are_not() {
        let k = key(SECRET);
        let revocations = Revocations::default();
        let mut i = AuthInterceptor::with_revocations(k.clone(), revocations.clone());
        let call = |i: &mut AuthInterceptor, t: &str| {
            let mut req = Request::new(());
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
            i.call(req).map(|r| caller(&r).unwrap())
        };
        let (t1, c1) = k.issue("u1", Duration::from_secs(60));
        let (t2, _) = k.issue("u1", Duration::from_secs(60));
        let (t3, _) = k.issue("u2", Duration::from_secs(60));
        assert_eq!(call(&mut i, &t1).unwrap().session_id, c1.sid);
        revocations.insert(Revocations::session_key(&c1.sid), c1.exp);
        let refused = call(&mut i, &t1).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(refused.message().contains("ended"), "{}", refused.message());
        assert!(
            call(&mut i, &t2).is_ok(),
            "another session of the same user"
        );
        revocations.insert(Revocations::user_key("u1"), c1.exp);
        assert!(call(&mut i, &t2).is_err(), "every token of a deleted user");
        assert!(call(&mut i, &t3).is_ok());
    }

    #[test]
    fn revocations_are_forgotten_once_their_tokens_have_expired() {
        let r = Revocations::default();
        r.insert("s:a".into(), 100);
        r.insert("s:b".into(), 200);
        r.insert("s:a".into(), 50);
        r.prune(100);
        assert_eq!(r.len(), 1);
        r.prune(200);
        assert!(r.is_empty());
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(TokenKey::new(&SecretString::from("short".to_owned())).is_err());
    }

    #[test]
    fn the_interceptor_turns_a_good_token_into_a_caller_and_refuses_a_bad_one() {
        let k = key(SECRET);
        let (t, _) = k.issue("u7", Duration::from_secs(60));
        let mut i = AuthInterceptor::new(k);

        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
        let req = i.call(req).unwrap();
        assert_eq!(caller(&req).unwrap().user_id, "u7");

        let anonymous = i.call(Request::new(())).unwrap();
        assert_eq!(
            caller(&anonymous).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );

        let mut bad = Request::new(());
        bad.metadata_mut()
            .insert("authorization", "Bearer nope.nope".parse().unwrap());
        assert_eq!(
            i.call(bad).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
