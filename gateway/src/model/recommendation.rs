//! Recommendations: joined with their full books (the API), or naming their books
//! themselves (a list of picks on a page).

use super::book::Book;

/// Why a book was recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecommendationSource {
    Popular,
    Similar,
    Personal,
    Unspecified,
}

impl RecommendationSource {
    /// The source's name on the wire of the gateway's own answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Popular => "popular",
            Self::Similar => "similar",
            Self::Personal => "personal",
            Self::Unspecified => "unspecified",
        }
    }
}

/// A recommended book, with the book itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub book: Book,
    pub score: f64,
    pub source: RecommendationSource,
    /// A short reason, e.g. "Because you liked Dune".
    pub reason: String,
    pub because_book_id: Option<i64>,
}

/// A pick as a list of picks on a page shows it: its book's id, title and authors, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub book_id: i64,
    pub title: String,
    pub authors: Vec<String>,
    /// A short reason, e.g. "Because you liked Dune".
    pub reason: String,
}
