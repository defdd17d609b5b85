//! Issuing tokens (the users service's [`TokenSigner`]) and checking them ([`TokenVerifier`]).

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    ALGORITHM, Claims, KeyError, MAX_TOKEN_LEN, PUBLIC_KEY_LEN, TokenError,
    keys::{check_kid, decode_key, has_small_order},
    verified::VerifiedTokens,
};

/// A token's header: which algorithm and which key. Anything else in it (`crit`, `jku`, ...)
/// makes the token malformed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
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
    /// Tokens these keys verified, until they expire.
    verified: Arc<VerifiedTokens>,
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
            verified: Arc::default(),
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

    /// Checks algorithm, key, signature and expiry at `now` (seconds since the epoch); a token
    /// these keys verified before is only checked for expiry.
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let claims = self.check(token, now)?;
        self.verified.insert(token, &claims, now);
        Ok(claims)
    }

    fn check(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
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

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_token_verified_once_is_found_verified_the_next_time() {
        let keys = crate::auth::generate_keys();
        let signer = TokenSigner::from_secret(&keys.signing_key).unwrap();
        let verifier = TokenVerifier::parse(&keys.public_key).unwrap();
        let (token, claims) = signer.issue("user-1", Duration::from_secs(600));
        let now = claims.iat;
        assert!(verifier.verified.get(&token, now).is_none());
        assert_eq!(verifier.verify_at(&token, now).unwrap(), claims);
        assert_eq!(verifier.clone().verified.get(&token, now), Some(claims));
    }
}
