//! Listing inputs: page sizes and page tokens.

use crate::{RuleError, length};

/// The page sizes of one kind of listing: 1 to `max`, `default` when the caller names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    pub default: usize,
    pub max: usize,
}

/// Books, ratings and searches.
pub const LISTING: PageSizes = PageSizes {
    default: 20,
    max: 100,
};
/// Recommendations (similar, popular, personal).
pub const RECOMMENDATIONS: PageSizes = PageSizes {
    default: 10,
    max: 50,
};

impl PageSizes {
    /// Whether a size the caller named is allowed (1 to `max`).
    pub fn allows(self, n: i32) -> bool {
        usize::try_from(n).is_ok_and(|n| (1..=self.max).contains(&n))
    }

    /// A `page_size` field of a gRPC request, where 0 means the default.
    pub fn on_the_wire(self, n: i32) -> Result<usize, RuleError> {
        match n {
            0 => Ok(self.default),
            n if self.allows(n) => Ok(n as usize),
            n => Err(RuleError(format!(
                "page_size must be between 1 and {} (or 0 for the default {}), got {n}",
                self.max, self.default
            ))),
        }
    }
}

/// Longest page token; the services' tokens are shorter.
pub const PAGE_TOKEN_MAX: usize = 64;
/// A page token as the services issue them (base64url), or empty for the first page.
pub const PAGE_TOKEN_PATTERN: &str = r"^[A-Za-z0-9_-]*$";

/// Whether `s` can be a page token ([`PAGE_TOKEN_PATTERN`], at most [`PAGE_TOKEN_MAX`]).
pub fn is_page_token(s: &str) -> bool {
    length(s) <= PAGE_TOKEN_MAX
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    use regex::Regex;

    #[test]
    fn page_size_zero_means_the_default_and_out_of_range_is_invalid() {
        assert_eq!(LISTING.on_the_wire(0), Ok(20));
        assert_eq!(LISTING.on_the_wire(100), Ok(100));
        assert!(LISTING.on_the_wire(101).is_err());
        assert!(RECOMMENDATIONS.on_the_wire(51).is_err());
        assert_eq!(
            LISTING.on_the_wire(-1).unwrap_err().0,
            "page_size must be between 1 and 100 (or 0 for the default 20), got -1"
        );
        assert!(!LISTING.allows(0) && LISTING.allows(1) && !LISTING.allows(i32::MIN));
    }

    #[test]
    fn the_page_token_pattern_accepts_exactly_what_the_check_accepts() {
        let re = Regex::new(PAGE_TOKEN_PATTERN).unwrap();
        for c in (0u32..0x300).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("Ab{c}-_9")] {
                assert_eq!(is_page_token(&s), re.is_match(&s), "{s:?}");
            }
        }
        assert!(is_page_token(""));
        assert!(is_page_token(&"x".repeat(64)));
        assert!(!is_page_token(&"x".repeat(65)));
    }
}
