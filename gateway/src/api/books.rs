//! The catalog: `/api/v1/books` (list), `/api/v1/books/search` and `/api/v1/books/{id}`.

use axum::{Json, Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    contract::{self, Validate},
    error::{ApiError, Problem},
    extract::{ApiPath, ApiQuery},
    model::{self, BookView},
    state::AppState,
};

/// A book of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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

impl From<model::Book> for Book {
    fn from(b: model::Book) -> Self {
        Self {
            id: b.id,
            title: b.title,
            original_title: b.original_title,
            authors: b.authors,
            original_publication_year: b.original_publication_year,
            isbn: b.isbn,
            isbn13: b.isbn13,
            language_code: b.language_code,
            average_rating: b.average_rating,
            ratings_count: b.ratings_count,
            rating_histogram: b.rating_histogram,
            image_url: b.image_url,
            small_image_url: b.small_image_url,
        }
    }
}

/// A page of books.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookPage {
    pub books: Vec<Book>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    pub total_size: i32,
}

impl From<model::BookPage> for BookPage {
    fn from(p: model::BookPage) -> Self {
        Self {
            books: p.books.into_iter().map(Book::from).collect(),
            next_page_token: p.next_page_token,
            total_size: p.total_size,
        }
    }
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=100 (default 20).
    pub page_size: Option<i32>,
    /// A `next_page_token` from the previous page.
    pub page_token: Option<String>,
}

impl Validate for PageQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::page_size(self.page_size, contract::PAGE_SIZE_MAX)?;
        contract::page_token(self.page_token.clone())?;
        Ok(())
    }
}

/// Search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find in titles and authors.
    pub q: String,
    /// 1..=100 (default 20).
    pub page_size: Option<i32>,
    /// A `next_page_token` from the previous page of the same search.
    pub page_token: Option<String>,
}

impl Validate for SearchQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::query(&self.q)?;
        contract::page_size(self.page_size, contract::PAGE_SIZE_MAX)?;
        contract::page_token(self.page_token.clone())?;
        Ok(())
    }
}

/// Whether `query` has a word to look for: words are runs of letters and digits, and a query
/// without one finds nothing (so it is not sent).
pub fn has_words(query: &str) -> bool {
    query.chars().any(char::is_alphanumeric)
}

/// Lists books, most popular first.
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(PageQuery),
    responses((status = 200, body = BookPage), (status = 400, body = Problem)))]
pub async fn list_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<BookPage>, ApiError> {
    let page = s
        .marketplace()
        .list_books(
            q.page_size.unwrap_or(0),
            q.page_token.unwrap_or_default(),
            BookView::Full,
        )
        .await?;
    Ok(Json(page.into()))
}

/// Searches titles and authors.
#[utoipa::path(get, path = "/api/v1/books/search", tag = "books", params(SearchQuery),
    responses((status = 200, body = BookPage), (status = 400, body = Problem)))]
pub async fn search_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<BookPage>, ApiError> {
    if !has_words(&q.q) {
        return Ok(Json(model::BookPage::empty().into()));
    }
    let page = s
        .marketplace()
        .search_books(
            q.q,
            q.page_size.unwrap_or(0),
            q.page_token.unwrap_or_default(),
            BookView::Full,
        )
        .await?;
    Ok(Json(page.into()))
}

/// Gets one book.
#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books", params(("id" = i64, Path)),
    responses((status = 200, body = Book), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_book(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Book>, ApiError> {
    contract::book_id("id", id)?;
    Ok(Json(s.marketplace().get_book(id).await?.into()))
}

/// The catalog's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/books", get(list_books))
        .route("/api/v1/books/search", get(search_books))
        .route("/api/v1/books/{id}", get(get_book))
}
