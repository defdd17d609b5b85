//! Bearer tokens: signed by the users service alone with an Ed25519 key, checked with its public
//! key by a tonic interceptor in every service that needs to know who calls.
//!
//! A token is a JWT (RFC 7519) signed with EdDSA (RFC 8037): `header.claims.signature`, each part
//! base64url. The header names the key (`kid`), so a verifier holds several public keys at once
//! and keys rotate without signing anyone out (docs/security.md, "Tokens and keys"). A service
//! that only verifies holds a [`TokenVerifier`], which cannot issue tokens; only users holds a
//! [`TokenSigner`].
//!
//! A token names its session (`sid`), so it can end before it expires: signing out revokes the
//! session, deleting an account revokes every token of its user. Revocations are kept in the
//! database of each service that checks tokens (see [`crate::revocation`]) and mirrored in
//! memory in a [`Revocations`] list the interceptor consults; an entry lives only until the last
//! token it can concern has expired, so the list holds at most the sessions ended within one
//! token lifetime.

use std::{sync::Arc, time::Duration};

use base64::{
    Engine, alphabet,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD,
        general_purpose::URL_SAFE_NO_PAD,
    },
};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

/// The one signature algorithm accepted (JWS `alg`); anything else is refused.
pub const ALGORITHM: &str = "EdDSA";
/// Longest token looked at; ours are about 300 bytes.
const MAX_TOKEN_LEN: usize = 4096;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Why a token was refused. The messages are safe to show to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the bearer token is not signed with EdDSA, the only algorithm accepted")]
    Algorithm,
    #[error("the bearer token is signed with a key this service does not know; sign in again")]
    UnknownKey,
    #[error("the bearer token's signature is not valid")]
    BadSignature,
    #[error("the bearer token has expired; sign in again")]
    Expired,
    #[error("the session of this bearer token has ended; sign in again")]
    Revoked,
}

/// Why a signing key or a list of public keys was refused at start. Never shows a private key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "TOKEN_SIGNING_KEY must be KID=BASE64: a key id and an Ed25519 private key in PKCS#8 \
         (`users keygen` prints one)"
    )]
    SigningKeyFormat,
    #[error("TOKEN_SIGNING_KEY is not an Ed25519 private key in PKCS#8 ({0})")]
    SigningKeyRejected(String),
    #[error("the key id {0:?} must be 1 to 64 letters, digits, '.', '_' or '-'")]
    KeyId(String),
    #[error("TOKEN_PUBLIC_KEYS is empty: give at least one KID=BASE64")]
    NoPublicKeys,
    #[error("TOKEN_PUBLIC_KEYS: the entry {0:?} is not KID=BASE64")]
    PublicKeyFormat(String),
    #[error("TOKEN_PUBLIC_KEYS: the key {kid:?} is {len} bytes long; an Ed25519 public key is 32")]
    PublicKeyLength { kid: String, len: usize },
    #[error(
        "TOKEN_PUBLIC_KEYS: the key {0:?} is a point of small order, under which anyone could \
         forge a signature"
    )]
    WeakPublicKey(String),
    #[error("TOKEN_PUBLIC_KEYS: the key id {0:?} is given twice")]
    DuplicateKeyId(String),
    #[error(
        "the signing key {0:?} is not in TOKEN_PUBLIC_KEYS with its public key: the services \
         would refuse its tokens"
    )]
    SigningKeyNotPublished(String),
}

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

/// A token's header: which algorithm and which key. Anything else in it (`crit`, `jku`, ...)
/// makes the token malformed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Keys in configuration: standard or URL-safe base64, padded or not.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text))
        .ok()
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok = (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::KeyId(kid.to_owned()))
    }
}

/// The key id `users keygen` gives a public key: the first 16 hex digits of its SHA-256.
pub fn key_id_of(public_key: &[u8]) -> String {
    Sha256::digest(public_key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether an encoded Ed25519 point has small order (the identity among them): under such a
/// public key a signature can be forged without the private key, and ring does not refuse them.
/// The y coordinates of the eight small-order points, canonical and not, as libsodium lists
/// them; the sign bit of x is ignored.
fn has_small_order(point: &[u8; PUBLIC_KEY_LEN]) -> bool {
    const P_MINUS_1: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xec;
        p[31] = 0x7f;
        p
    };
    let mut small: [[u8; 32]; 7] = [[0; 32]; 7];
    small[1][0] = 1;
    small[2] = [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ];
    small[3] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];
    // p - 1 (order 2), p (= 0, order 4), p + 1 (= 1, the identity).
    small[4] = P_MINUS_1;
    small[5] = P_MINUS_1;
    small[5][0] = 0xed;
    small[6] = P_MINUS_1;
    small[6][0] = 0xee;
    let mut y = *point;
    y[31] &= 0x7f;
    small.contains(&y)
}

/// A new key pair as configuration text, for `users keygen` and tests.
pub struct GeneratedKeys {
    /// `KID=BASE64(PKCS#8 v2)`: the users service's `TOKEN_SIGNING_KEY`, and no one else's.
    pub signing_key: SecretString,
    /// `KID=BASE64(public key)`: an entry of every verifier's `TOKEN_PUBLIC_KEYS`.
    pub public_key: String,
    /// The key id both name.
    pub kid: String,
}

/// Makes a new Ed25519 key pair from the operating system's random source.
pub fn generate_keys() -> GeneratedKeys {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the OS has a random source");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("ring reads its own PKCS#8");
    let public = pair.public_key().as_ref();
    let kid = key_id_of(public);
    GeneratedKeys {
        signing_key: SecretString::from(format!("{kid}={}", STANDARD.encode(pkcs8.as_ref()))),
        public_key: format!("{kid}={}", STANDARD.encode(public)),
        kid,
    }
}

/// The users service's private key: the only thing that can issue tokens.
#[derive(Clone)]
pub struct TokenSigner {
    kid: Arc<str>,
    pair: Arc<Ed25519KeyPair>,
    /// The token header, base64url, the same for every token of this key.
    header: Arc<str>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// Reads `KID=BASE64(PKCS#8)` (v2 as `users keygen` writes it, or v1 as `openssl genpkey
    /// -algorithm ed25519` does).
    pub fn from_secret(secret: &SecretString) -> Result<Self, KeyError> {
        let (kid, key) = secret
            .expose_secret()
            .trim()
            .split_once('=')
            .ok_or(KeyError::SigningKeyFormat)?;
        check_kid(kid)?;
        let der = decode_key(key).ok_or(KeyError::SigningKeyFormat)?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| KeyError::SigningKeyRejected(e.to_string()))?;
        // A v2 document carries its public key: prove the two belong together.
        let probe = pair.sign(b"bookstore token key check");
        UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
            .verify(b"bookstore token key check", probe.as_ref())
            .map_err(|_| {
                KeyError::SigningKeyRejected("its public key does not match the private key".into())
            })?;
        let header = Header {
            alg: ALGORITHM.into(),
            kid: kid.into(),
            typ: Some("JWT".into()),
        };
        Ok(Self {
            kid: kid.into(),
            pair: Arc::new(pair),
            header: URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&header).unwrap_or_default())
                .into(),
        })
    }

    /// The key id tokens of this key carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as raw bytes.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
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
        let input = format!("{}.{payload}", self.header);
        let sig = URL_SAFE_NO_PAD.encode(self.pair.sign(input.as_bytes()));
        (format!("{input}.{sig}"), claims)
    }

    /// Issues a token valid for `ttl` from now.
    pub fn issue(&self, user_id: &str, ttl: Duration) -> (String, Claims) {
        self.issue_at(user_id, crate::now_unix_ms() / 1000, ttl)
    }
}

/// The public keys tokens are checked with, by key id. Cannot issue a token.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<Vec<(String, [u8; PUBLIC_KEY_LEN])>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

impl std::str::FromStr for TokenVerifier {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl TokenVerifier {
    /// Reads `KID=BASE64,KID=BASE64,...` (32-byte Ed25519 public keys), refusing a key of the
    /// wrong length, a small-order key and a key id given twice.
    pub fn parse(list: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<(String, [u8; PUBLIC_KEY_LEN])> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, key) = entry
                .split_once('=')
                .ok_or_else(|| KeyError::PublicKeyFormat(entry.to_owned()))?;
            let kid = kid.trim();
            check_kid(kid)?;
            let raw = decode_key(key).ok_or_else(|| KeyError::PublicKeyFormat(entry.to_owned()))?;
            let key: [u8; PUBLIC_KEY_LEN] =
                raw.as_slice()
                    .try_into()
                    .map_err(|_| KeyError::PublicKeyLength {
                        kid: kid.to_owned(),
                        len: raw.len(),
                    })?;
            if has_small_order(&key) {
                return Err(KeyError::WeakPublicKey(kid.to_owned()));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyError::DuplicateKeyId(kid.to_owned()));
            }
            keys.push((kid.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(KeyError::NoPublicKeys);
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The key ids held, in the order given.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    /// Checks that `signer`'s key is held under its key id, so its tokens will be accepted.
    pub fn check_holds(&self, signer: &TokenSigner) -> Result<(), KeyError> {
        match self.key(signer.kid()) {
            Some(key) if key.as_slice() == signer.public_key() => Ok(()),
            _ => Err(KeyError::SigningKeyNotPublished(signer.kid().to_owned())),
        }
    }

    fn key(&self, kid: &str) -> Option<&[u8; PUBLIC_KEY_LEN]> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// Checks algorithm, key, signature and expiry at `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(head), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm);
        }
        let key = self.key(&header.kid).ok_or(TokenError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        // What was signed: `header.claims`, as sent.
        let signed = &token.as_bytes()[..head.len() + 1 + payload.len()];
        UnparsedPublicKey::new(&ED25519, key)
            .verify(signed, &sig)
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

    /// Checks algorithm, key, signature and expiry now.
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
    keys: TokenVerifier,
    revocations: Revocations,
}

impl AuthInterceptor {
    pub fn new(keys: TokenVerifier) -> Self {
        Self::with_revocations(keys, Revocations::default())
    }

    /// An interceptor that also refuses the tokens in `revocations`.
    pub fn with_revocations(keys: TokenVerifier, revocations: Revocations) -> Self {
        Self { keys, revocations }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = req.metadata().get(crate::bearer::AUTHORIZATION) else {
            return Ok(req);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(crate::bearer::token_of)
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let claims = self
            .keys
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

    /// A signer and the verifier of its public key.
    fn pair() -> (TokenSigner, TokenVerifier, GeneratedKeys) {
        let keys = generate_keys();
        let signer = TokenSigner::from_secret(&keys.signing_key).unwrap();
        let verifier = TokenVerifier::parse(&keys.public_key).unwrap();
        (signer, verifier, keys)
    }

    fn part(token: &str, i: usize) -> String {
        token.split('.').nth(i).unwrap().to_owned()
    }

    fn json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_token_verifies_with_the_public_key_of_the_key_that_issued_it() {
        let (signer, verifier, keys) = pair();
        let (t, claims) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(verifier.verify_at(&t, 1_030).unwrap(), claims);
        assert_eq!(claims.sub, "u1");
        let header = json(&part(&t, 0));
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], keys.kid.as_str());
        assert_eq!(signer.kid(), keys.kid);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (signer, verifier, _) = pair();
        let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(verifier.verify_at(&t, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_signed_by_a_key_the_verifier_does_not_hold_is_refused() {
        let (signer, _, _) = pair();
        let (_, other, _) = pair();
        let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(other.verify_at(&t, 1_001), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_token_naming_a_known_key_but_signed_by_another_is_refused() {
        let (_, verifier, known) = pair();
        let other = generate_keys();
        // The other private key under the known key's id.
        let (_, other_der) = other.signing_key.expose_secret().split_once('=').unwrap();
        let impostor =
            TokenSigner::from_secret(&SecretString::from(format!("{}={other_der}", known.kid)))
                .unwrap();
        let (t, _) = impostor.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_eq!(verifier.verify_at(&t, 1_001), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_verifier_holding_two_keys_accepts_the_tokens_of_both() {
        let (a, _, ka) = pair();
        let (b, _, kb) = pair();
        let both = TokenVerifier::parse(&format!("{},{}", ka.public_key, kb.public_key)).unwrap();
        for signer in [&a, &b] {
            let (t, claims) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
            assert_eq!(both.verify_at(&t, 1_001).unwrap(), claims);
        }
        assert_eq!(both.kids().collect::<Vec<_>>(), [ka.kid, kb.kid]);
    }

    #[test]
    fn a_token_whose_claims_were_changed_is_refused() {
        let (signer, verifier, _) = pair();
        let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        let mut claims = json(&part(&t, 1));
        claims["sub"] = "u2".into();
        let forged = format!("{}.{}.{}", part(&t, 0), b64(&claims), part(&t, 2));
        assert_eq!(
            verifier.verify_at(&forged, 1_001),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verifier.verify_at("garbage", 1_001),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verifier.verify_at("a.b.c.d", 1_001),
            Err(TokenError::Malformed)
        );
        let long = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(verifier.verify_at(&long, 1_001), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_of_the_hmac_era_is_refused() {
        use hmac::{Hmac, Mac};
        let (_, verifier, _) = pair();
        let payload = b64(&serde_json::json!({"sub":"u1","sid":"s","iat":1000,"exp":99999}));
        let mut mac = Hmac::<Sha256>::new_from_slice(&[b'a'; 32]).unwrap();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verifier.verify_at(&format!("{payload}.{sig}"), 1_001),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_token_with_another_algorithm_is_refused_whatever_it_is_signed_with() {
        use hmac::{Hmac, Mac};
        let (signer, verifier, keys) = pair();
        let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        let claims = part(&t, 1);
        // HS256 keyed with the public key (the classic confusion), and `none`.
        let hs = b64(&serde_json::json!({"alg":"HS256","kid":keys.kid,"typ":"JWT"}));
        let mut mac = Hmac::<Sha256>::new_from_slice(signer.public_key()).unwrap();
        mac.update(format!("{hs}.{claims}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verifier.verify_at(&format!("{hs}.{claims}.{sig}"), 1_001),
            Err(TokenError::Algorithm)
        );
        let none = b64(&serde_json::json!({"alg":"none","kid":keys.kid}));
        assert_eq!(
            verifier.verify_at(&format!("{none}.{claims}."), 1_001),
            Err(TokenError::Algorithm)
        );
        // A header with fields this verifier does not understand.
        let crit = b64(&serde_json::json!({"alg":"EdDSA","kid":keys.kid,"crit":["exp"]}));
        assert_eq!(
            verifier.verify_at(&format!("{crit}.{claims}.{}", part(&t, 2)), 1_001),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn each_token_names_a_session_of_its_own() {
        let (signer, _, _) = pair();
        let (_, a) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        let (_, b) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert_ne!(a.sid, b.sid);
        assert!(a.sid.len() >= 20);
    }

    #[test]
    fn a_signing_key_that_is_not_an_ed25519_pkcs8_key_is_refused() {
        let refused = |s: &str| TokenSigner::from_secret(&SecretString::from(s.to_owned()));
        assert_eq!(
            refused("a".repeat(32).as_str()).unwrap_err(),
            KeyError::SigningKeyFormat
        );
        assert_eq!(
            refused(&format!("k1={}", "a".repeat(32))).unwrap_err(),
            KeyError::SigningKeyRejected("InvalidEncoding".into())
        );
        assert_eq!(refused("k1=%%%").unwrap_err(), KeyError::SigningKeyFormat);
        assert!(matches!(refused("bad kid=AAAA"), Err(KeyError::KeyId(_))));
        let keys = generate_keys();
        let (_, der) = keys.signing_key.expose_secret().split_once('=').unwrap();
        assert!(refused(&format!("k1={der}")).is_ok());
        // The message never carries the key.
        let message = refused(&format!("k1={}", "a".repeat(32)))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("aaaa"), "{message}");
    }

    #[test]
    fn an_openssl_pkcs8_v1_key_is_read() {
        // `openssl genpkey -algorithm ed25519 -outform DER | base64`: no public key inside.
        let v1 = "MC4CAQAwBQYDK2VwBCIEIGf9LkU3Ha/8Tmq3wB7isFOsKkdXPDIsRzVsgXMesTt7";
        let signer = TokenSigner::from_secret(&SecretString::from(format!("ossl={v1}"))).unwrap();
        let public = format!("ossl={}", STANDARD.encode(signer.public_key()));
        let (t, _) = signer.issue_at("u1", 1_000, Duration::from_secs(60));
        assert!(
            TokenVerifier::parse(&public)
                .unwrap()
                .verify_at(&t, 1_001)
                .is_ok()
        );
    }

    #[test]
    fn public_keys_of_the_wrong_length_small_order_or_given_twice_are_refused() {
        let keys = generate_keys();
        assert_eq!(
            TokenVerifier::parse("").unwrap_err(),
            KeyError::NoPublicKeys
        );
        assert_eq!(
            TokenVerifier::parse(&format!("k1={}", STANDARD.encode([7u8; 31]))).unwrap_err(),
            KeyError::PublicKeyLength {
                kid: "k1".into(),
                len: 31
            }
        );
        assert!(matches!(
            TokenVerifier::parse("k1"),
            Err(KeyError::PublicKeyFormat(_))
        ));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for weak in [[0u8; 32], identity, {
            identity[31] = 0x80;
            identity
        }] {
            assert_eq!(
                TokenVerifier::parse(&format!("w={}", STANDARD.encode(weak))).unwrap_err(),
                KeyError::WeakPublicKey("w".into())
            );
        }
        assert_eq!(
            TokenVerifier::parse(&format!("{0},{0}", keys.public_key)).unwrap_err(),
            KeyError::DuplicateKeyId(keys.kid.clone())
        );
        // URL-safe and unpadded spellings of a good key are fine.
        let (kid, b) = keys.public_key.split_once('=').unwrap();
        let url = URL_SAFE_NO_PAD.encode(STANDARD.decode(b).unwrap());
        assert!(TokenVerifier::parse(&format!(" {kid}={url} ,")).is_ok());
    }

    #[test]
    fn under_the_identity_as_public_key_anyone_could_forge_a_signature() {
        // Why small-order keys are refused: ring verifies (R = identity, S = 0) for any message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(
            UnparsedPublicKey::new(&ED25519, identity)
                .verify(b"any message", &sig)
                .is_ok()
        );
        assert!(has_small_order(&identity));
        let (signer, _, _) = pair();
        assert!(!has_small_order(signer.public_key().try_into().unwrap()));
    }

    #[test]
    fn a_verifier_knows_whether_it_holds_a_signers_key() {
        let (signer, verifier, _) = pair();
        let (other, other_verifier, _) = pair();
        assert!(verifier.check_holds(&signer).is_ok());
        assert_eq!(
            other_verifier.check_holds(&signer).unwrap_err(),
            KeyError::SigningKeyNotPublished(signer.kid().into())
        );
        assert!(other_verifier.check_holds(&other).is_ok());
    }

    #[test]
    fn debug_output_shows_key_ids_and_no_key() {
        let (signer, verifier, keys) = pair();
        let (_, der) = keys.signing_key.expose_secret().split_once('=').unwrap();
        let shown = format!("{signer:?} {verifier:?}");
        assert!(shown.contains(&keys.kid), "{shown}");
        assert!(!shown.contains(&der[..20]), "{shown}");
    }

    #[test]
    fn a_revoked_session_or_user_is_refused_and_others_are_not() {
        let (k, verifier, _) = pair();
        let revocations = Revocations::default();
        let mut i = AuthInterceptor::with_revocations(verifier, revocations.clone());
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
    fn the_interceptor_turns_a_good_token_into_a_caller_and_refuses_a_bad_one() {
        let (k, verifier, _) = pair();
        let (t, _) = k.issue("u7", Duration::from_secs(60));
        let mut i = AuthInterceptor::new(verifier);

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

        let (stranger, _, _) = pair();
        let (foreign, _) = stranger.issue("u7", Duration::from_secs(60));
        let mut bad = Request::new(());
        bad.metadata_mut().insert(
            "authorization",
            format!("Bearer {foreign}").parse().unwrap(),
        );
        let refused = i.call(bad).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(
            refused.message().contains("does not know"),
            "{}",
            refused.message()
        );
    }
}
