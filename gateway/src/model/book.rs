//! Books of the catalog, as the marketplace service answers them.

/// A book of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub id: i64,
    pub title: String,
    pub original_title: String,
    pub authors: Vec<String>,
    pub original_publication_year: Option<i32>,
    pub isbn: String,
    pub isbn13: String,
    pub language_code: String,
    pub average_rating: f64,
    pub ratings_count: i64,
    /// Counts of 1, 2, 3, 4 and 5 star ratings.
    pub rating_histogram: Vec<i64>,
    /// Cover on an external CDN; may be unreachable.
    pub image_url: String,
    pub small_image_url: String,
}

/// A page of books.
#[derive(Debug, Clone, PartialEq)]
pub struct BookPage {
    pub books: Vec<Book>,
    /// The next page's token; `None` on the last page.
    pub next_page_token: Option<String>,
    pub total_size: i32,
}

impl BookPage {
    /// A page with no books and nothing after it.
    pub fn empty() -> Self {
        Self {
            books: Vec::new(),
            next_page_token: None,
            total_size: 0,
        }
    }
}

/// How much of a book to fetch: pages ask for `Basic` (what a card shows), the API for `Full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookView {
    Basic,
    Full,
}
