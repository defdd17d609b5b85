//! Passwords at rest: hashed with argon2id and the OWASP parameters, and checked. What a valid
//! email, display name and password are is the `rules` crate's, shared with the gateway.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_PARALLELISM: u32 = 1;

fn params() -> Params {
    Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("OWASP parameters are valid")
}

/// The working memory of one hash (19 MiB), kept and reused: a fresh allocation per sign-in is
/// returned to the allocator in ways that let a busy process grow to hundreds of MiB.
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    pub fn new() -> Self {
        Self(vec![Block::default(); params().block_count()])
    }

    fn fit(&mut self, p: &Params) -> &mut [Block] {
        self.0.resize(p.block_count(), Block::default());
        &mut self.0
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`, with a fresh salt.
/// CPU-heavy: call it off the async runtime.
pub fn hash_password(password: &str, memory: &mut HashMemory) -> String {
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt
        .decode_b64(&mut raw_salt)
        .expect("a generated salt decodes");
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            raw_salt,
            &mut out,
            memory.fit(&params),
        )
        .expect("hashing with valid parameters cannot fail");
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    }
    .to_string()
}

/// Whether `password` matches the PHC string `hash` (any argon2 variant and parameters it names).
/// CPU-heavy: call it off the async runtime.
pub fn verify_password(password: &str, hash: &str, memory: &mut HashMemory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut raw_salt = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut raw_salt) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password.as_bytes(),
        raw_salt,
        &mut out,
        memory.fit(&params),
    );
    // Output's equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    use argon2::{PasswordHasher, PasswordVerifier};

    #[test]
    fn passwords_are_hashed_with_argon2id_and_the_owasp_parameters() {
        let mut m = HashMemory::new();
        let h = hash_password("correct horse battery", &mut m);
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h, &mut m));
        assert!(!verify_password("correct horse battery!", &h, &mut m));
    }

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        let mut m = HashMemory::new();
        let ours = hash_password("interoperable", &mut m);
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interoperable", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"interoperable", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("interoperable", &theirs, &mut m));
        assert!(!verify_password("other", &theirs, &mut m));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        let mut m = HashMemory::new();
        assert_ne!(
            hash_password("same password", &mut m),
            hash_password("same password", &mut m)
        );
    }

    #[test]
    fn a_garbage_hash_never_verifies() {
        let mut m = HashMemory::new();
        assert!(!verify_password("x", "not a phc string", &mut m));
        assert!(!verify_password(
            "x",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            &mut m
        ));
    }
}
