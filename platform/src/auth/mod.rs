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

use serde::{Deserialize, Serialize};

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

mod interceptor;
mod keys;
mod revoked;
mod tokens;
mod verified;

pub use self::{
    interceptor::{AuthInterceptor, Caller, caller},
    keys::{GeneratedKeys, generate_keys, key_id_of},
    revoked::Revocations,
    tokens::{TokenSigner, TokenVerifier},
};

#[cfg(test)]
mod tests;
