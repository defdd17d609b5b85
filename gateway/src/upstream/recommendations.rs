//! Ratings and recommendations: the recommendations service's calls as the gateway uses them.
//! Recommendations come back as [`Picks`], which one BatchGetBooks call joins with their books
//! (full books), or which name their books themselves as [`Pick`]s (what a list of picks on a
//! page shows).

use protos::recommendations::v1::{
    self as rec, recommendations_service_client::RecommendationsServiceClient,
};
use tonic::Streaming;

use super::{Bearer, Upstream, client::Client, marketplace::Marketplace};
use crate::{
    error::ApiError,
    model::{
        BookView, Pick, Rating, RatingChange, RatingChangeKind, RatingPage, Recommendation,
        RecommendationSource,
    },
};

/// The recommendations service for one request.
pub type Recommendations = Client<RecommendationsServiceClient<Upstream>>;

fn token(t: String) -> Option<String> {
    (!t.is_empty()).then_some(t)
}

/// Recommended book ids, best first, before their books are fetched.
#[derive(Debug, Default)]
pub struct Picks {
    recs: Vec<rec::Recommendation>,
    /// The next page's token, for listings that have pages.
    pub next_page_token: Option<String>,
}

fn source(source: i32) -> RecommendationSource {
    match rec::RecommendationSource::try_from(source) {
        Ok(rec::RecommendationSource::Popular) => RecommendationSource::Popular,
        Ok(rec::RecommendationSource::Similar) => RecommendationSource::Similar,
        Ok(rec::RecommendationSource::Personal) => RecommendationSource::Personal,
        _ => RecommendationSource::Unspecified,
    }
}

impl From<rec::Rating> for Rating {
    fn from(r: rec::Rating) -> Self {
        Self {
            book_id: r.book_id,
            stars: r.stars,
            update_time_unix_ms: r.update_time_unix_ms,
        }
    }
}

impl From<rec::WatchRatingsResponse> for RatingChange {
    fn from(e: rec::WatchRatingsResponse) -> Self {
        let kind = match rec::RatingEventKind::try_from(e.kind) {
            Ok(rec::RatingEventKind::Deleted) => RatingChangeKind::Deleted,
            _ => RatingChangeKind::Rated,
        };
        Self {
            kind,
            rating: e.rating.unwrap_or_default().into(),
            title: (!e.title.is_empty()).then_some(e.title),
        }
    }
}

/// The live feed of ratings, as [`Recommendations::watch_ratings`] opened it.
pub struct RatingFeed(Streaming<rec::WatchRatingsResponse>);

impl RatingFeed {
    /// The next change; `None` when the feed has ended.
    pub async fn next(&mut self) -> Result<Option<RatingChange>, tonic::Status> {
        Ok(self.0.message().await?.map(RatingChange::from))
    }
}

impl Picks {
    /// The picks as a page lists them, named by the recommendations service itself (each pick
    /// carries its book's title and authors): no call to the marketplace. When a pick comes
    /// without its title (a replica older than those fields, during a rolling upgrade), the
    /// answer is joined through `catalog` after all (BatchGetBooks, view BASIC), so a page never
    /// shows a pick without its title.
    pub async fn for_pages(self, catalog: &Marketplace) -> Result<Vec<Pick>, ApiError> {
        if self.recs.iter().any(|r| r.title.is_empty()) {
            let joined = self.with_books(catalog, BookView::Basic).await?;
            return Ok(joined
                .into_iter()
                .map(|r| Pick {
                    book_id: r.book.id,
                    title: r.book.title,
                    authors: r.book.authors,
                    reason: r.reason,
                })
                .collect());
        }
        Ok(self
            .recs
            .into_iter()
            .map(|r| Pick {
                book_id: r.book_id,
                title: r.title,
                authors: r.authors,
                reason: r.reason,
            })
            .collect())
    }

    /// The picks joined with their books, fetched from `catalog` in one call.
    pub async fn with_books(
        self,
        catalog: &Marketplace,
        view: BookView,
    ) -> Result<Vec<Recommendation>, ApiError> {
        if self.recs.is_empty() {
            return Ok(Vec::new());
        }
        let books = catalog
            .batch_get_books(self.recs.iter().map(|r| r.book_id).collect(), view)
            .await?;
        Ok(self
            .recs
            .into_iter()
            .zip(books)
            .map(|(r, book)| Recommendation {
                book,
                score: r.score,
                source: source(r.source),
                reason: r.reason,
                because_book_id: (r.because_book_id > 0).then_some(r.because_book_id),
            })
            .collect())
    }
}

impl Recommendations {
    /// "Readers who liked `book_id` also liked".
    pub async fn similar(&self, book_id: i64, page_size: i32) -> Result<Picks, ApiError> {
        let message = rec::ListSimilarBooksRequest { book_id, page_size };
        let r = self
            .call(message, None, |mut c, r| async move {
                c.list_similar_books(r).await
            })
            .await?;
        Ok(Picks {
            recs: r.recommendations,
            next_page_token: None,
        })
    }

    /// Popular books for nobody in particular, a page at a time.
    pub async fn popular(&self, page_size: i32, page_token: String) -> Result<Picks, ApiError> {
        let message = rec::ListPopularBooksRequest {
            page_size,
            page_token,
        };
        let r = self
            .call(message, None, |mut c, r| async move {
                c.list_popular_books(r).await
            })
            .await?;
        Ok(Picks {
            recs: r.recommendations,
            next_page_token: token(r.next_page_token),
        })
    }

    /// The signed-in caller's own recommendations.
    pub async fn for_me(&self, auth: Option<&Bearer>, page_size: i32) -> Result<Picks, ApiError> {
        let message = rec::ListRecommendationsForMeRequest { page_size };
        let r = self
            .call(message, auth, |mut c, r| async move {
                c.list_recommendations_for_me(r).await
            })
            .await?;
        Ok(Picks {
            recs: r.recommendations,
            next_page_token: None,
        })
    }

    /// Rates a book; `true` when it is the caller's first rating of it.
    pub async fn rate(
        &self,
        auth: Option<&Bearer>,
        book_id: i64,
        stars: i32,
    ) -> Result<(Rating, bool), ApiError> {
        let message = rec::RateBookRequest { book_id, stars };
        let r = self
            .call(
                message,
                auth,
                |mut c, r| async move { c.rate_book(r).await },
            )
            .await?;
        let rating = r.rating.ok_or_else(|| self.missing("rating"))?;
        Ok((rating.into(), r.created))
    }

    /// Deletes the caller's rating of a book.
    pub async fn delete_rating(&self, auth: Option<&Bearer>, book_id: i64) -> Result<(), ApiError> {
        let message = rec::DeleteRatingRequest { book_id };
        self.call(
            message,
            auth,
            |mut c, r| async move { c.delete_rating(r).await },
        )
        .await
        .map(drop)
    }

    /// A page of the caller's ratings, most recent first.
    pub async fn my_ratings(
        &self,
        auth: Option<&Bearer>,
        page_size: i32,
        page_token: String,
    ) -> Result<RatingPage, ApiError> {
        let message = rec::ListMyRatingsRequest {
            page_size,
            page_token,
        };
        let r = self
            .call(message, auth, |mut c, r| async move {
                c.list_my_ratings(r).await
            })
            .await?;
        Ok(RatingPage {
            ratings: r.ratings.into_iter().map(Rating::from).collect(),
            next_page_token: token(r.next_page_token),
        })
    }

    /// Opens the live feed of ratings (of one book, or of all when `book_id` is 0). The feed is
    /// long-lived: only opening it is bounded by the deadline.
    pub async fn watch_ratings(&self, book_id: i64) -> Result<RatingFeed, ApiError> {
        let open = self.remaining()?;
        let mut client = self.inner();
        tokio::time::timeout(
            open,
            client.watch_ratings(rec::WatchRatingsRequest { book_id }),
        )
        .await
        .map_err(|_| self.failed(&tonic::Status::deadline_exceeded("opening the feed")))?
        .map(|r| RatingFeed(r.into_inner()))
        .map_err(|s| self.failed(&s))
    }
}
