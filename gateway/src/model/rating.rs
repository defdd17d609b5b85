//! Ratings: a reader's own, and the changes the live feed carries.

/// One of the caller's ratings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub book_id: i64,
    pub stars: i32,
    pub update_time_unix_ms: i64,
}

/// A page of the caller's ratings, most recent first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingPage {
    pub ratings: Vec<Rating>,
    pub next_page_token: Option<String>,
}

/// What happened to a rating on the live feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingChangeKind {
    Rated,
    Deleted,
}

impl RatingChangeKind {
    /// The kind's name on the wire of the gateway's own answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rated => "rated",
            Self::Deleted => "deleted",
        }
    }
}

/// One event of the live ratings feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingChange {
    pub kind: RatingChangeKind,
    pub rating: Rating,
    /// The book's title; `None` from a recommendations replica older than that field.
    pub title: Option<String>,
}
