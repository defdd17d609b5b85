//! The gRPC face of the catalog: validates requests, turns catalog books into proto messages.

use std::sync::{Arc, OnceLock};

use platform::page_token::{PageTokens, page_size};
use protos::marketplace::v1::{self as pb, marketplace_service_server::MarketplaceService};
use rules::{
    books::{BATCH_MAX, QUERY_MAX, book_id},
    paging::LISTING,
};
use tonic::{Request, Response, Status};

use crate::catalog::{Book, Catalog};

/// The service; answers UNAVAILABLE until the catalog has loaded.
#[derive(Clone)]
pub struct Marketplace {
    catalog: Arc<OnceLock<Catalog>>,
    tokens: PageTokens,
}

impl Marketplace {
    pub fn new(catalog: Arc<OnceLock<Catalog>>, tokens: PageTokens) -> Self {
        Self { catalog, tokens }
    }

    fn catalog(&self) -> Result<&Catalog, Status> {
        self.catalog
            .get()
            .ok_or_else(|| Status::unavailable("the catalog is still loading"))
    }

    fn page<B: std::borrow::Borrow<Book>>(
        &self,
        scope: &str,
        all: &[B],
        size: i32,
        token: &str,
        view: i32,
    ) -> Result<(Vec<pb::Book>, String), Status> {
        let size = page_size(size, LISTING)?;
        let start = self.tokens.start(scope, token)? as usize;
        let end = (start + size).min(all.len());
        let books = all.get(start..end).unwrap_or_default();
        let next = if end < all.len() {
            self.tokens.encode(scope, end as u64)
        } else {
            String::new()
        };
        let view = book_view(view)?;
        Ok((
            books
                .iter()
                .map(|b| to_proto_view(b.borrow(), view))
                .collect(),
            next,
        ))
    }
}

fn check_id(id: i64, field: &str) -> Result<i64, Status> {
    book_id(field, id).map_err(|e| Status::invalid_argument(e.0))
}

fn not_found(id: i64) -> Status {
    Status::not_found(format!("book {id} not found"))
}

// Each call already has its `grpc.server` span (platform::observe::RpcSpan); a handler's own
// span, with its argument, is a second span per call for an in-memory lookup (5% of the
// marketplace's instructions per GetBook under callgrind), so it is kept for `RUST_LOG=debug`.
#[tonic::async_trait]
impl MarketplaceService for Marketplace {
    #[tracing::instrument(level = "debug", skip_all, fields(page_size = request.get_ref().page_size))]
    async fn list_books(
        &self,
        request: Request<pb::ListBooksRequest>,
    ) -> Result<Response<pb::ListBooksResponse>, Status> {
        let req = request.into_inner();
        let catalog = self.catalog()?;
        let all = catalog.by_popularity();
        let (books, next_page_token) =
            self.page("books", all, req.page_size, &req.page_token, req.view)?;
        Ok(Response::new(pb::ListBooksResponse {
            books,
            next_page_token,
            total_size: all.len() as i32,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(query_len = request.get_ref().query.len()))]
    async fn search_books(
        &self,
        request: Request<pb::SearchBooksRequest>,
    ) -> Result<Response<pb::SearchBooksResponse>, Status> {
        let req = request.into_inner();
        if rules::length(&req.query) > QUERY_MAX {
            return Err(Status::invalid_argument(format!(
                "query must be at most {QUERY_MAX} characters"
            )));
        }
        let normalized = ::catalog::search::normalize(&req.query);
        if normalized.is_empty() {
            return Err(Status::invalid_argument(
                "query must contain at least one letter or digit",
            ));
        }
        let catalog = self.catalog()?;
        let hits = catalog.search(&normalized);
        let scope = format!("search:{normalized}");
        let (books, next_page_token) =
            self.page(&scope, &hits, req.page_size, &req.page_token, req.view)?;
        Ok(Response::new(pb::SearchBooksResponse {
            books,
            next_page_token,
            total_size: hits.len() as i32,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(book_id = request.get_ref().id))]
    async fn get_book(
        &self,
        request: Request<pb::GetBookRequest>,
    ) -> Result<Response<pb::GetBookResponse>, Status> {
        let id = check_id(request.get_ref().id, "id")?;
        let book = self.catalog()?.get(id).ok_or_else(|| not_found(id))?;
        Ok(Response::new(pb::GetBookResponse {
            book: Some(to_proto(book)),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = request.get_ref().ids.len()))]
    async fn batch_get_books(
        &self,
        request: Request<pb::BatchGetBooksRequest>,
    ) -> Result<Response<pb::BatchGetBooksResponse>, Status> {
        let ids = &request.get_ref().ids;
        if ids.is_empty() || ids.len() > BATCH_MAX {
            return Err(Status::invalid_argument(format!(
                "ids must name 1 to {BATCH_MAX} books, got {}",
                ids.len()
            )));
        }
        let view = book_view(request.get_ref().view)?;
        let catalog = self.catalog()?;
        let books = ids
            .iter()
            .map(|&id| {
                check_id(id, "ids")?;
                catalog
                    .get(id)
                    .map(|b| to_proto_view(b, view))
                    .ok_or_else(|| not_found(id))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(pb::BatchGetBooksResponse { books }))
    }
}

/// The view a request names; unknown values are refused rather than guessed.
fn book_view(view: i32) -> Result<pb::BookView, Status> {
    pb::BookView::try_from(view)
        .map_err(|_| Status::invalid_argument(format!("view {view} is not a BookView")))
}

/// A catalog book in the fields `view` asks for.
pub fn to_proto_view(b: &Book, view: pb::BookView) -> pb::Book {
    match view {
        pb::BookView::Basic => pb::Book {
            id: b.id,
            title: b.title.clone(),
            authors: b.authors.clone(),
            average_rating: b.average_rating,
            ratings_count: b.ratings_count,
            image_url: b.image_url.clone(),
            ..Default::default()
        },
        pb::BookView::Unspecified | pb::BookView::Full => to_proto(b),
    }
}

/// A catalog book as the contract sends it, whole.
pub fn to_proto(b: &Book) -> pb::Book {
    pb::Book {
        id: b.id,
        title: b.title.clone(),
        original_title: b.original_title.clone(),
        authors: b.authors.clone(),
        original_publication_year: b.original_publication_year,
        isbn: b.isbn.clone(),
        isbn13: b.isbn13.clone(),
        language_code: b.language_code.clone(),
        average_rating: b.average_rating,
        ratings_count: b.ratings_count,
        rating_histogram: b.rating_histogram.to_vec(),
        image_url: b.image_url.clone(),
        small_image_url: b.small_image_url.clone(),
    }
}
