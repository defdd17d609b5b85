//! Opaque, tamper-evident page tokens: a position in a listing, bound to the listing it came
//! from and signed, so a forged, foreign or stale token is INVALID_ARGUMENT and never a crash.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + 8 + 8;
/// How long a page token stays valid, in seconds.
pub const MAX_AGE_SECS: u64 = 3600;

/// Why a page token was refused; the message names the field for the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageTokenError {
    #[error("page_token is not a token this service issued")]
    Malformed,
    #[error("page_token does not belong to this request (forged, or issued for another query)")]
    Mismatch,
    #[error("page_token has expired; start again from the first page")]
    Expired,
}

impl From<PageTokenError> for tonic::Status {
    fn from(e: PageTokenError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Signs and checks page tokens with one key.
#[derive(Clone)]
pub struct PageTokens {
    mac: Hmac<Sha256>,
}

impl PageTokens {
    /// A codec keyed with `secret`; replicas that share it accept each other's tokens.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    /// A codec keyed with the configured secret, or a random key (tokens valid only in this
    /// process) when none is configured.
    pub fn from_secret(secret: Option<&secrecy::SecretString>) -> Self {
        use secrecy::ExposeSecret;
        match secret {
            Some(s) => Self::new(s.expose_secret().as_bytes()),
            None => Self::random(),
        }
    }

    /// A codec with a random key: tokens are valid only in this process.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS has a random source");
        Self::new(&key)
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A token for `offset` in the listing named `scope`, issued at `now` (seconds).
    pub fn encode_at(&self, scope: &str, offset: u64, now: u64) -> String {
        let mut buf = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
        buf.push(VERSION);
        buf.extend_from_slice(&now.to_be_bytes());
        buf.extend_from_slice(&offset.to_be_bytes());
        let tag = self.tag(scope, &buf);
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(buf)
    }

    pub fn encode(&self, scope: &str, offset: u64) -> String {
        self.encode_at(scope, offset, now_secs())
    }

    /// The offset in `token`, if it was issued by this key for `scope` and is fresh at `now`.
    pub fn decode_at(&self, scope: &str, token: &str, now: u64) -> Result<u64, PageTokenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Malformed)?;
        if raw.len() != PAYLOAD_LEN + MAC_LEN || raw[0] != VERSION {
            return Err(PageTokenError::Malformed);
        }
        let (payload, tag) = raw.split_at(PAYLOAD_LEN);
        let mut mac = self.mac.clone();
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| PageTokenError::Mismatch)?;
        let issued = u64::from_be_bytes(payload[1..9].try_into().expect("8 bytes"));
        let offset = u64::from_be_bytes(payload[9..17].try_into().expect("8 bytes"));
        if now.saturating_sub(issued) > MAX_AGE_SECS {
            return Err(PageTokenError::Expired);
        }
        Ok(offset)
    }

    pub fn decode(&self, scope: &str, token: &str) -> Result<u64, PageTokenError> {
        self.decode_at(scope, token, now_secs())
    }

    /// The offset where a listing starts: 0 for an empty token.
    pub fn start(&self, scope: &str, token: &str) -> Result<u64, PageTokenError> {
        if token.is_empty() {
            Ok(0)
        } else {
            self.decode(scope, token)
        }
    }
}

fn now_secs() -> u64 {
    (crate::now_unix_ms() / 1000) as u64
}

/// Checks a `page_size` field against its listing's sizes (`rules::paging`): 0 means the
/// default.
pub fn page_size(value: i32, sizes: rules::PageSizes) -> Result<usize, tonic::Status> {
    sizes
        .on_the_wire(value)
        .map_err(|e| tonic::Status::invalid_argument(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_for_its_own_listing() {
        let t = PageTokens::new(b"k");
        let tok = t.encode_at("list", 40, 100);
        assert_eq!(t.decode_at("list", &tok, 101), Ok(40));
    }

    #[test]
    fn an_issued_token_has_the_form_the_api_states_for_page_tokens() {
        let tok = PageTokens::new(b"k").encode_at("search:dune", u64::MAX, u64::MAX);
        assert!(rules::paging::is_page_token(&tok), "{tok}");
    }

    #[test]
    fn a_token_for_another_query_is_refused() {
        let t = PageTokens::new(b"k");
        let tok = t.encode_at("search:dune", 20, 100);
        assert_eq!(
            t.decode_at("search:tolkien", &tok, 100),
            Err(PageTokenError::Mismatch)
        );
    }

    #[test]
    fn a_token_from_another_key_or_with_a_flipped_bit_is_refused() {
        let tok = PageTokens::new(b"k").encode_at("list", 20, 100);
        assert_eq!(
            PageTokens::new(b"other").decode_at("list", &tok, 100),
            Err(PageTokenError::Mismatch)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[12] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            PageTokens::new(b"k").decode_at("list", &forged, 100),
            Err(PageTokenError::Mismatch)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let t = PageTokens::new(b"k");
        for junk in ["", "!!!", "AAAA", &"A".repeat(500)] {
            assert_eq!(t.decode_at("list", junk, 0), Err(PageTokenError::Malformed));
        }
    }

    #[test]
    fn a_stale_token_is_refused() {
        let t = PageTokens::new(b"k");
        let tok = t.encode_at("list", 20, 100);
        assert_eq!(
            t.decode_at("list", &tok, 100 + MAX_AGE_SECS + 1),
            Err(PageTokenError::Expired)
        );
    }

    #[test]
    fn page_size_zero_means_the_default_and_out_of_range_is_invalid() {
        let sizes = rules::PageSizes {
            default: 20,
            max: 100,
        };
        assert_eq!(page_size(0, sizes).unwrap(), 20);
        assert_eq!(page_size(100, sizes).unwrap(), 100);
        assert_eq!(
            page_size(101, sizes).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(
            page_size(-1, sizes)
                .unwrap_err()
                .message()
                .contains("page_size")
        );
    }
}
