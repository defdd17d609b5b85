//! The catalog: the marketplace service's calls as the gateway uses them, answering the
//! gateway's model types.

use protos::marketplace::v1::{self as mp, marketplace_service_client::MarketplaceServiceClient};

use super::{Upstream, client::Client};
use crate::{
    error::ApiError,
    model::{Book, BookPage, BookView},
};

/// The marketplace service for one request.
pub type Marketplace = Client<MarketplaceServiceClient<Upstream>>;

impl From<mp::Book> for Book {
    fn from(b: mp::Book) -> Self {
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

impl From<BookView> for mp::BookView {
    fn from(view: BookView) -> Self {
        match view {
            BookView::Basic => Self::Basic,
            BookView::Full => Self::Full,
        }
    }
}

/// A listing's answer: an empty next-page token means the last page.
fn page(books: Vec<mp::Book>, next_page_token: String, total_size: i32) -> BookPage {
    BookPage {
        books: books.into_iter().map(Book::from).collect(),
        next_page_token: (!next_page_token.is_empty()).then_some(next_page_token),
        total_size,
    }
}

impl Marketplace {
    /// One book.
    pub async fn get_book(&self, id: i64) -> Result<Book, ApiError> {
        self.call(mp::GetBookRequest { id }, None, |mut c, r| async move {
            c.get_book(r).await
        })
        .await?
        .book
        .map(Book::from)
        .ok_or_else(|| self.missing("book"))
    }

    /// The books with these ids, in the same order (one call), in the fields `view` names
    /// (pages ask for `Basic`: what a card shows).
    pub async fn batch_get_books(
        &self,
        ids: Vec<i64>,
        view: BookView,
    ) -> Result<Vec<Book>, ApiError> {
        let r = self
            .call(
                mp::BatchGetBooksRequest {
                    ids,
                    view: mp::BookView::from(view).into(),
                },
                None,
                |mut c, r| async move { c.batch_get_books(r).await },
            )
            .await?;
        Ok(r.books.into_iter().map(Book::from).collect())
    }

    /// A page of the catalog, most read first (`page_size` 0: the service's default).
    pub async fn list_books(
        &self,
        page_size: i32,
        page_token: String,
        view: BookView,
    ) -> Result<BookPage, ApiError> {
        let r = self
            .call(
                mp::ListBooksRequest {
                    page_size,
                    page_token,
                    view: mp::BookView::from(view).into(),
                },
                None,
                |mut c, r| async move { c.list_books(r).await },
            )
            .await?;
        Ok(page(r.books, r.next_page_token, r.total_size))
    }

    /// A page of the books whose titles or authors hold the words of `query`.
    pub async fn search_books(
        &self,
        query: String,
        page_size: i32,
        page_token: String,
        view: BookView,
    ) -> Result<BookPage, ApiError> {
        let r = self
            .call(
                mp::SearchBooksRequest {
                    query,
                    page_size,
                    page_token,
                    view: mp::BookView::from(view).into(),
                },
                None,
                |mut c, r| async move { c.search_books(r).await },
            )
            .await?;
        Ok(page(r.books, r.next_page_token, r.total_size))
    }
}
