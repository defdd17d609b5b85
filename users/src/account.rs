//! Account rules as plain Rust: what a valid email, display name and password are, and how
//! passwords are hashed (argon2id with the OWASP parameters) and checked.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 64;
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_PARALLELISM: u32 = 1;

/// A field that failed validation; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A trimmed, plausible email address, and its lower-cased form for uniqueness.
pub fn check_email(raw: &str) -> Result<(String, String), Invalid> {
    let email = raw.trim();
    let bad = || Invalid("email must be an address like name@example.com".into());
    if email.is_empty() {
        return Err(Invalid("email is required".into()));
    }
    if email.chars().count() > MAX_EMAIL_LEN {
        return Err(Invalid(format!(
            "email must be at most {MAX_EMAIL_LEN} characters"
        )));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok((email.to_owned(), email.to_lowercase()))
}

/// A trimmed display name of 1..=64 printable characters.
pub fn check_display_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid("display_name is required".into()));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Invalid(format!(
            "display_name must be at most {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid(
            "display_name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A password of 8..=128 characters (kept as typed: spaces count).
pub fn check_password(raw: &str) -> Result<(), Invalid> {
    let n = raw.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(Invalid(format!(
            "password must be at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

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

    #[test]
    fn emails_are_trimmed_and_compared_lower_cased() {
        assert_eq!(
            check_email("  Ada@Example.ORG ").unwrap(),
            ("Ada@Example.ORG".to_owned(), "ada@example.org".to_owned())
        );
    }

    #[test]
    fn implausible_emails_are_rejected_naming_the_field() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "ada@@x.org",
            "ada@x..org",
        ] {
            let e = check_email(bad).unwrap_err();
            assert!(e.0.contains("email"), "{bad}: {e}");
        }
        assert!(check_email(&format!("{}@example.org", "a".repeat(300))).is_err());
    }

    #[test]
    fn display_names_must_be_present_and_short() {
        assert_eq!(check_display_name(" Ada ").unwrap(), "Ada");
        assert!(check_display_name("   ").is_err());
        assert!(check_display_name(&"x".repeat(65)).is_err());
        assert!(check_display_name("a\u{7}b").is_err());
    }

    #[test]
    fn passwords_must_be_eight_to_128_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"p".repeat(129)).is_err());
    }
}
