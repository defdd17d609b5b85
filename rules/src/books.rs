//! Catalog and rating inputs: book ids, stars, search queries and batch sizes.

use crate::{RuleError, length};

/// The smallest book id; ids are positive.
pub const BOOK_ID_MIN: i64 = 1;
pub const STARS_MIN: i32 = 1;
pub const STARS_MAX: i32 = 5;
/// A search query's length in characters.
pub const QUERY_MIN: usize = 1;
pub const QUERY_MAX: usize = 200;
/// Most ids one batch lookup may name.
pub const BATCH_MAX: usize = 100;

/// A positive book id; `field` names it in the error.
pub fn book_id(field: &str, id: i64) -> Result<i64, RuleError> {
    if id >= BOOK_ID_MIN {
        Ok(id)
    } else {
        Err(RuleError(format!(
            "{field} must be a positive book id, got {id}"
        )))
    }
}

/// A rating: [`STARS_MIN`] to [`STARS_MAX`] stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars(i32);

impl TryFrom<i32> for Stars {
    type Error = RuleError;

    fn try_from(value: i32) -> Result<Self, RuleError> {
        if (STARS_MIN..=STARS_MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(RuleError(format!(
                "stars must be between {STARS_MIN} and {STARS_MAX}, got {value}"
            )))
        }
    }
}

impl From<Stars> for i64 {
    fn from(s: Stars) -> i64 {
        s.0.into()
    }
}

/// Whether a search query is [`QUERY_MIN`] to [`QUERY_MAX`] characters.
pub fn query_fits(q: &str) -> bool {
    (QUERY_MIN..=QUERY_MAX).contains(&length(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_ids_are_positive_and_the_error_names_the_field() {
        assert_eq!(book_id("id", 1), Ok(1));
        assert_eq!(
            book_id("book_id", 0).unwrap_err().0,
            "book_id must be a positive book id, got 0"
        );
        assert!(book_id("id", -7).is_err());
    }

    #[test]
    fn a_rating_outside_one_to_five_is_rejected() {
        assert_eq!(i64::from(Stars::try_from(1).unwrap()), 1);
        assert!(Stars::try_from(5).is_ok());
        assert_eq!(
            Stars::try_from(6).unwrap_err().0,
            "stars must be between 1 and 5, got 6"
        );
        assert!(Stars::try_from(0).is_err());
    }

    #[test]
    fn a_query_is_one_to_two_hundred_characters() {
        assert!(!query_fits(""));
        assert!(query_fits("é"));
        assert!(query_fits(&"é".repeat(200)));
        assert!(!query_fits(&"a".repeat(201)));
    }
}
