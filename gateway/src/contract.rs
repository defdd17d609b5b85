//! The API's input constraints: the rules of the `rules` crate (which the services enforce too),
//! checked here before any upstream call with the API's own messages, and placed where the OpenAPI
//! document states them (lengths, ranges, patterns, required fields, no unknown fields), so a
//! request the document calls valid is never refused as malformed, and one it calls invalid never
//! gets through.

use rules::{account, books, paging};

use crate::error::ApiError;

pub use rules::account::{
    DISPLAY_NAME_MAX, DISPLAY_NAME_PATTERN, EMAIL_MAX, EMAIL_PATTERN, PASSWORD_MAX, PASSWORD_MIN,
    USER_ID_PATTERN,
};
pub use rules::books::{QUERY_MAX, QUERY_MIN, STARS_MAX, STARS_MIN};
pub use rules::paging::{PAGE_TOKEN_MAX, PAGE_TOKEN_PATTERN};
/// Page sizes of listings and of recommendations.
pub const PAGE_SIZE_MAX: i32 = paging::LISTING.max as i32;
pub const RECS_SIZE_MAX: i32 = paging::RECOMMENDATIONS.max as i32;

fn bad(detail: String) -> ApiError {
    ApiError::bad_request(detail)
}

pub fn email(field: &str, value: &str) -> Result<(), ApiError> {
    if !account::is_api_email(value) {
        return Err(bad(format!(
            "{field} must be an address like name@example.com (printable ASCII, at most {EMAIL_MAX} characters)"
        )));
    }
    Ok(())
}

pub fn display_name(value: &str) -> Result<(), ApiError> {
    if !account::is_api_display_name(value) {
        return Err(bad(format!(
            "display_name must be 1 to {DISPLAY_NAME_MAX} characters, not all white space, without control characters"
        )));
    }
    Ok(())
}

pub fn password(field: &str, value: &str, min: usize) -> Result<(), ApiError> {
    if !account::password_fits(value, min) {
        return Err(bad(format!(
            "{field} must be {min} to {PASSWORD_MAX} characters"
        )));
    }
    Ok(())
}

/// The fields of an account change of which at least one must be given (`anyOf` in the
/// document).
pub const UPDATE_USER_CHANGES: [&str; 2] = ["display_name", "password"];
/// A field of an account change and the field it needs (`dependentRequired` in the document):
/// a new password needs the current one.
pub const UPDATE_USER_NEEDS: (&str, &str) = ("password", "current_password");

/// An account change: at least one change, the current password with a new one, and each
/// field's own constraints.
pub fn update_user(
    name: Option<&str>,
    new_password: Option<&str>,
    current_password: Option<&str>,
) -> Result<(), ApiError> {
    if name.is_none() && new_password.is_none() {
        return Err(bad(
            "nothing to update: set display_name and/or password".to_owned()
        ));
    }
    if new_password.is_some() && current_password.is_none() {
        return Err(bad(
            "current_password is required to change the password".to_owned()
        ));
    }
    if let Some(name) = name {
        display_name(name)?;
    }
    if let Some(p) = new_password {
        password("password", p, PASSWORD_MIN)?;
    }
    if let Some(p) = current_password {
        password("current_password", p, 1)?;
    }
    Ok(())
}

pub fn user_id(value: &str) -> Result<(), ApiError> {
    if !account::is_user_id(value) {
        return Err(bad(format!(
            "id must be a user id (a UUID such as 0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61), got {value:?}"
        )));
    }
    Ok(())
}

pub fn book_id(field: &str, value: i64) -> Result<(), ApiError> {
    books::book_id(field, value).map(drop).map_err(|e| bad(e.0))
}

/// A page size given by the caller, `1..=max`; absent means the service's default (sent as 0).
pub fn page_size(value: Option<i32>, max: i32) -> Result<i32, ApiError> {
    match value {
        None => Ok(0),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad(format!(
            "page_size must be between 1 and {max}, got {n}"
        ))),
    }
}

pub fn page_token(value: Option<String>) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    if !paging::is_page_token(&value) {
        return Err(bad(
            "page_token must be a next_page_token from the previous page".to_owned(),
        ));
    }
    Ok(value)
}

pub fn query(value: &str) -> Result<(), ApiError> {
    if !books::query_fits(value) {
        return Err(bad(format!(
            "q must be {QUERY_MIN} to {QUERY_MAX} characters"
        )));
    }
    Ok(())
}

pub fn stars(value: i32) -> Result<(), ApiError> {
    rules::Stars::try_from(value)
        .map(drop)
        .map_err(|e| bad(e.0))
}

/// A body or query type whose fields carry constraints beyond their JSON types.
pub trait Validate {
    fn validate(&self) -> Result<(), ApiError>;
}

/// A JSON Schema string constraint (`minLength`, `maxLength`, `pattern`).
pub struct Text {
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub pattern: Option<&'static str>,
}

/// A JSON Schema integer range.
pub struct Range {
    pub min: i64,
    pub max: Option<i64>,
}

/// Where each constraint applies in the document: `(schema, property)` for bodies,
/// `(path template, parameter)` for parameters.
pub fn body_constraints() -> Vec<(&'static str, &'static str, Text)> {
    let text = |min, max, pattern| Text { min, max, pattern };
    vec![
        (
            "CreateUser",
            "email",
            text(None, Some(EMAIL_MAX), Some(EMAIL_PATTERN)),
        ),
        (
            "CreateUser",
            "display_name",
            text(None, Some(DISPLAY_NAME_MAX), Some(DISPLAY_NAME_PATTERN)),
        ),
        (
            "CreateUser",
            "password",
            text(Some(PASSWORD_MIN), Some(PASSWORD_MAX), None),
        ),
        (
            "UpdateUser",
            "display_name",
            text(None, Some(DISPLAY_NAME_MAX), Some(DISPLAY_NAME_PATTERN)),
        ),
        (
            "UpdateUser",
            "password",
            text(Some(PASSWORD_MIN), Some(PASSWORD_MAX), None),
        ),
        (
            "UpdateUser",
            "current_password",
            text(Some(1), Some(PASSWORD_MAX), None),
        ),
        (
            "SignIn",
            "email",
            text(None, Some(EMAIL_MAX), Some(EMAIL_PATTERN)),
        ),
        (
            "SignIn",
            "password",
            text(Some(1), Some(PASSWORD_MAX), None),
        ),
    ]
}

/// Integer ranges of body properties.
pub fn body_ranges() -> Vec<(&'static str, &'static str, Range)> {
    vec![(
        "RateBook",
        "stars",
        Range {
            min: STARS_MIN.into(),
            max: Some(STARS_MAX.into()),
        },
    )]
}

/// String constraints of parameters, by name, wherever they appear.
pub fn parameter_text(name: &str, path: &str) -> Option<Text> {
    match name {
        "page_token" => Some(Text {
            min: None,
            max: Some(PAGE_TOKEN_MAX),
            pattern: Some(PAGE_TOKEN_PATTERN),
        }),
        "q" => Some(Text {
            min: Some(QUERY_MIN),
            max: Some(QUERY_MAX),
            pattern: None,
        }),
        "id" if path.starts_with("/api/v1/users/") => Some(Text {
            min: None,
            max: None,
            pattern: Some(USER_ID_PATTERN),
        }),
        _ => None,
    }
}

/// Integer ranges of parameters, by name, wherever they appear.
pub fn parameter_range(name: &str, path: &str) -> Option<Range> {
    let recs = path.ends_with("/similar") || path == "/api/v1/me/recommendations";
    match name {
        "page_size" if recs => Some(Range {
            min: 1,
            max: Some(RECS_SIZE_MAX.into()),
        }),
        "page_size" => Some(Range {
            min: 1,
            max: Some(PAGE_SIZE_MAX.into()),
        }),
        "id" | "book_id" if !path.starts_with("/api/v1/users/") => Some(Range {
            min: books::BOOK_ID_MIN,
            max: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_ascii_addresses_pass_and_others_do_not() {
        for ok in [
            "a@b.c",
            "ada.lovelace+books@example.org",
            "x@sub.example.co",
        ] {
            assert!(email("email", ok).is_ok(), "{ok}");
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
            assert!(email("email", no).is_err(), "{no:?}");
        }
        assert!(email("email", &format!("{}@example.org", "a".repeat(65))).is_err());
        assert!(email("email", &format!("a@{}.org", "b".repeat(250))).is_err());
    }

    #[test]
    fn a_display_name_needs_one_visible_character_and_no_control_characters() {
        for ok in ["Ada", " Ada ", "é", "李", "a\u{a0}b"] {
            assert!(display_name(ok).is_ok(), "{ok:?}");
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
            assert!(display_name(no).is_err(), "{no:?}");
        }
        assert!(display_name(&"x".repeat(64)).is_ok());
        assert!(display_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn what_the_display_name_pattern_accepts_the_users_service_accepts_after_trimming() {
        // Every character Rust's `trim` removes is excluded from the pattern's required one.
        for c in (0u32..0x3001).filter_map(char::from_u32) {
            let s = c.to_string();
            if display_name(&s).is_ok() {
                assert!(!s.trim().is_empty(), "U+{:04X}", c as u32);
                assert!(!c.is_control(), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn page_sizes_are_checked_against_their_own_maximum() {
        assert_eq!(page_size(None, 100).unwrap(), 0);
        assert_eq!(page_size(Some(100), 100).unwrap(), 100);
        assert!(page_size(Some(0), 100).is_err());
        assert!(page_size(Some(51), 50).is_err());
        assert!(page_size(Some(-1), 50).is_err());
    }

    #[test]
    fn page_tokens_must_look_like_tokens() {
        assert_eq!(page_token(None).unwrap(), "");
        assert!(page_token(Some("AbC-_09".into())).is_ok());
        assert!(page_token(Some("a b".into())).is_err());
        assert!(page_token(Some("x".repeat(65))).is_err());
    }

    #[test]
    fn user_ids_are_hyphenated_uuids() {
        assert!(user_id("0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61").is_ok());
        assert!(user_id("0b0e5b4e9a3c4d558c1e2f1e0c9d7a61").is_err());
        assert!(user_id("{0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61}").is_err());
        assert!(user_id("me").is_err());
    }
}
