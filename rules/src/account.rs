//! Account inputs: email, display name, password and user id. The services hold an account to
//! these rules; the API takes emails and display names in a stricter form its patterns state.

use crate::{RuleError, length};

/// Longest email (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Longest local part (RFC 5321).
pub const EMAIL_LOCAL_MAX: usize = 64;
/// The API's email: printable ASCII, `local@domain.tld`, a local part of at most
/// [`EMAIL_LOCAL_MAX`] characters. Accounts may hold more (the sign-up form takes non-ASCII).
pub const EMAIL_PATTERN: &str = r"^[!-?A-~]{1,64}@[!-\-/-?A-~]+(\.[!-\-/-?A-~]+)+$";
pub const DISPLAY_NAME_MAX: usize = 64;
/// The API's display name: no control characters, and at least one character that is not white
/// space (nothing the services trim away).
pub const DISPLAY_NAME_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$";
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
/// A user id: a hyphenated UUID.
pub const USER_ID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// An account's email: trimmed and plausible, kept as typed and compared lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, RuleError> {
        let email = raw.trim();
        let bad = || RuleError("email must be an address like name@example.com".into());
        if email.is_empty() {
            return Err(RuleError("email is required".into()));
        }
        if length(email) > EMAIL_MAX {
            return Err(RuleError(format!(
                "email must be at most {EMAIL_MAX} characters"
            )));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > EMAIL_LOCAL_MAX
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self {
            address: email.to_owned(),
            key: email.to_lowercase(),
        })
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The lower-cased address, under which an account is unique.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The address as typed and its lower-cased key.
    pub fn into_parts(self) -> (String, String) {
        (self.address, self.key)
    }
}

/// Whether `s` is an email in the API's form: [`EMAIL_PATTERN`] and at most [`EMAIL_MAX`].
pub fn is_api_email(s: &str) -> bool {
    let local_char = |c: char| matches!(c, '!'..='?' | 'A'..='~');
    let domain_char = |c: char| local_char(c) && c != '.';
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let mut labels = domain.split('.');
    length(s) <= EMAIL_MAX
        && (1..=EMAIL_LOCAL_MAX).contains(&length(local))
        && local.chars().all(local_char)
        && domain.contains('.')
        && labels.all(|l| !l.is_empty() && l.chars().all(domain_char))
}

/// An account's display name: trimmed, 1 to [`DISPLAY_NAME_MAX`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, RuleError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(RuleError("display_name is required".into()));
        }
        if length(name) > DISPLAY_NAME_MAX {
            return Err(RuleError(format!(
                "display_name must be at most {DISPLAY_NAME_MAX} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(RuleError(
                "display_name must not contain control characters".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// White space the pattern's one required character may not be (all that `str::trim` removes).
fn blank(c: char) -> bool {
    matches!(
        c,
        '\0'..=' '
            | '\u{7F}'..='\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Whether `s` is a display name in the API's form: [`DISPLAY_NAME_PATTERN`], at most
/// [`DISPLAY_NAME_MAX`], untrimmed.
pub fn is_api_display_name(s: &str) -> bool {
    length(s) <= DISPLAY_NAME_MAX
        && !s.chars().any(char::is_control)
        && s.chars().any(|c| !blank(c))
}

/// A new password: [`PASSWORD_MIN`] to [`PASSWORD_MAX`] characters, kept as typed (spaces count).
pub fn check_new_password(raw: &str) -> Result<(), RuleError> {
    let n = length(raw);
    if n < PASSWORD_MIN {
        return Err(RuleError(format!(
            "password must be at least {PASSWORD_MIN} characters"
        )));
    }
    if n > PASSWORD_MAX {
        return Err(RuleError(format!(
            "password must be at most {PASSWORD_MAX} characters"
        )));
    }
    Ok(())
}

/// Whether a password is `min` to [`PASSWORD_MAX`] characters: [`PASSWORD_MIN`] for a new one,
/// 1 for one being checked (sign-in, the current password).
pub fn password_fits(s: &str, min: usize) -> bool {
    (min..=PASSWORD_MAX).contains(&length(s))
}

/// Whether a password is too long to be any account's: refused before it is hashed.
pub fn password_too_long(s: &str) -> bool {
    length(s) > PASSWORD_MAX
}

/// Whether `s` is a user id ([`USER_ID_PATTERN`]).
pub fn is_user_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use regex::Regex;

    #[test]
    fn emails_are_trimmed_and_compared_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").unwrap().into_parts(),
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
            let e = Email::parse(bad).unwrap_err();
            assert!(e.0.contains("email"), "{bad}: {e}");
        }
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(300))).is_err());
    }

    #[test]
    fn plausible_ascii_addresses_are_in_the_api_form_and_others_are_not() {
        for ok in [
            "a@b.c",
            "ada.lovelace+books@example.org",
            "x@sub.example.co",
        ] {
            assert!(is_api_email(ok), "{ok}");
        }
        for no in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "ada@@x.org",
            "ada@x..org",
            "ada@.x.org",
            "ada@x.org.",
            " ada@x.org",
            "ada@x.org\n",
            "josé@example.org",
        ] {
            assert!(!is_api_email(no), "{no:?}");
        }
        assert!(!is_api_email(&format!("{}@example.org", "a".repeat(65))));
        assert!(!is_api_email(&format!("a@{}.org", "b".repeat(250))));
    }

    #[test]
    fn display_names_must_be_present_and_short() {
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn an_api_display_name_needs_one_visible_character_and_no_control_characters() {
        for ok in ["Ada", " Ada ", "é", "李", "a\u{a0}b"] {
            assert!(is_api_display_name(ok), "{ok:?}");
        }
        for no in [
            "",
            "   ",
            "\u{a0}",
            "\u{3000}\u{2003}",
            "a\u{7}b",
            "a\u{85}",
            "Ada\n",
        ] {
            assert!(!is_api_display_name(no), "{no:?}");
        }
        assert!(is_api_display_name(&"x".repeat(64)));
        assert!(!is_api_display_name(&"x".repeat(65)));
    }

    #[test]
    fn passwords_must_be_eight_to_128_characters() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"p".repeat(129)).is_err());
        assert!(password_fits("1234567", 1) && !password_fits("1234567", PASSWORD_MIN));
        assert!(password_too_long(&"p".repeat(129)) && !password_too_long(&"p".repeat(128)));
    }

    #[test]
    fn user_ids_are_hyphenated_uuids() {
        assert!(is_user_id("0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61"));
        assert!(is_user_id("0B0E5B4E-9A3C-4D55-8C1E-2F1E0C9D7A61"));
        assert!(!is_user_id("0b0e5b4e9a3c4d558c1e2f1e0c9d7a61"));
        assert!(!is_user_id("{0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61}"));
        assert!(!is_user_id("0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a6é"));
        assert!(!is_user_id("me"));
    }

    /// Strings built from `alphabet`, every one up to `len` characters long.
    fn all_strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn the_email_pattern_accepts_exactly_what_the_api_check_accepts() {
        let re = Regex::new(EMAIL_PATTERN).unwrap();
        let agree = |s: &str| {
            assert_eq!(is_api_email(s), re.is_match(s), "{s:?}");
        };
        for s in all_strings(&['a', '@', '.', ' ', '~', 'é', '\n'], 6) {
            agree(&s);
        }
        for c in (0u32..0x200).filter_map(char::from_u32) {
            agree(&format!("{c}@b.c"));
            agree(&format!("a@{c}.c"));
            agree(&format!("a@b.{c}"));
        }
        for n in [63, 64, 65] {
            agree(&format!("{}@b.c", "a".repeat(n)));
        }
    }

    #[test]
    fn every_api_email_is_an_email_the_services_accept() {
        for s in all_strings(&['a', '@', '.', '-', '~'], 6) {
            if is_api_email(&s) {
                assert_eq!(Email::parse(&s).unwrap().as_str(), s);
            }
        }
    }

    #[test]
    fn the_display_name_pattern_accepts_exactly_what_the_api_check_accepts() {
        let re = Regex::new(DISPLAY_NAME_PATTERN).unwrap();
        for c in (0u32..0x3001).filter_map(char::from_u32) {
            for s in [
                c.to_string(),
                format!("a{c}"),
                format!("{c} "),
                format!(" {c}b"),
            ] {
                assert_eq!(
                    is_api_display_name(&s),
                    re.is_match(&s),
                    "U+{:04X} in {s:?}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn what_the_api_takes_as_a_display_name_the_services_accept_after_trimming() {
        for c in (0u32..0x3001).filter_map(char::from_u32) {
            let s = c.to_string();
            if is_api_display_name(&s) {
                assert!(DisplayName::parse(&s).is_ok(), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn the_user_id_pattern_accepts_exactly_what_the_check_accepts() {
        let re = Regex::new(USER_ID_PATTERN).unwrap();
        let id = "0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61";
        assert!(re.is_match(id) && is_user_id(id));
        for i in 0..id.len() {
            for c in ['0', 'f', 'F', 'g', '-', ' ', 'é'] {
                let s = format!("{}{c}{}", &id[..i], &id[i + 1..]);
                assert_eq!(is_user_id(&s), re.is_match(&s), "{s:?}");
            }
        }
        assert_eq!(is_user_id(&id[1..]), re.is_match(&id[1..]));
    }
}
