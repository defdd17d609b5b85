//! The key that signs the pages' form tokens (see `pages::csrf`): replicas that share
//! CSRF_SECRET check each other's forms.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key the form tokens are signed with.
#[derive(Clone)]
pub struct CsrfKey(Hmac<Sha256>);

impl CsrfKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    /// A key of 32 random bytes (one process only: replicas need a shared `CSRF_SECRET`).
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).expect("random source");
        Self::new(&secret)
    }

    /// The token of `nonce`: its HMAC, in hex.
    pub fn sign(&self, nonce: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(b"bookstore csrf v1:");
        mac.update(nonce.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `token` is this key's signature of `nonce` (compared in constant time).
    pub fn verify(&self, nonce: &str, token: &str) -> bool {
        let Some(bytes) = unhex(token) else {
            return false;
        };
        let mut mac = self.0.clone();
        mac.update(b"bookstore csrf v1:");
        mac.update(nonce.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_own_nonce_and_key() {
        let key = CsrfKey::new(b"k1");
        let token = key.sign("00112233445566778899aabbccddeeff");
        assert!(key.verify("00112233445566778899aabbccddeeff", &token));
        assert!(!key.verify("ffeeddccbbaa99887766554433221100", &token));
        assert!(!CsrfKey::new(b"k2").verify("00112233445566778899aabbccddeeff", &token));
        assert!(!key.verify("00112233445566778899aabbccddeeff", "zz"));
        assert!(!key.verify("00112233445566778899aabbccddeeff", ""));
    }
}
