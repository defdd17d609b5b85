//! Key material: reading keys from configuration, naming them, refusing weak ones, making new ones.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use ring::signature::{Ed25519KeyPair, KeyPair};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::{KeyError, PUBLIC_KEY_LEN};

/// Keys in configuration: standard or URL-safe base64, padded or not.
pub(super) fn decode_key(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text))
        .ok()
}

pub(super) fn check_kid(kid: &str) -> Result<(), KeyError> {
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
pub(super) fn has_small_order(point: &[u8; PUBLIC_KEY_LEN]) -> bool {
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
