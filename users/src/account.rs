//! Account rules as plain Rust: what a valid email, display name and password are, and how
//! passwords are hashed (argon2id with the OWASP parameters) and checked.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
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

fn argon2() -> Argon2<'static> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`, with a fresh salt.
/// CPU-heavy: call it off the async runtime.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters cannot fail")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`. CPU-heavy: call it off the async runtime.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_the_owasp_parameters() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse battery!", &h));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        assert_ne!(
            hash_password("same password"),
            hash_password("same password")
        );
    }

    #[test]
    fn a_garbage_hash_never_verifies() {
        assert!(!verify_password("x", "not a phc string"));
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
