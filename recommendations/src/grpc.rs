//! The gRPC face of ratings and recommendations: validates requests, stores ratings, keeps the
//! recommender and the live feed in step with what was stored.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
};

use futures_util::Stream;
use platform::{
    auth::{Revocations, USERS_SERVICE, caller},
    page_token::{PageTokens, page_size},
};
use prometheus::IntCounterVec;
use protos::recommendations::v1::{
    self as pb, recommendations_service_server::RecommendationsService,
};
use tokio::sync::{Mutex, broadcast, watch};
use tokio_stream::{StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{
    recommender::{Recommendation, Recommender, Source},
    store::{RatingRow, RatingStore, StoreError},
};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
pub const DEFAULT_RECS: usize = 10;
pub const MAX_RECS: usize = 50;
/// How long a deleted user's tokens are refused: longer than any token lives.
pub const MAX_TOKEN_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// The service; answers UNAVAILABLE until the catalog and the ratings are loaded.
#[derive(Clone)]
pub struct Recommendations {
    store: Arc<dyn RatingStore>,
    engine: Arc<OnceLock<Recommender>>,
    tokens: PageTokens,
    /// Serialises writes so the database and the in-memory index apply them in one order.
    writes: Arc<Mutex<()>>,
    feed: broadcast::Sender<pb::WatchRatingsResponse>,
    draining: watch::Receiver<bool>,
    ratings_total: IntCounterVec,
    served_total: IntCounterVec,
    /// Ended tokens, refused by the interceptor; written here when users says so.
    revocations: Revocations,
}

impl Recommendations {
    pub fn new(
        store: Arc<dyn RatingStore>,
        engine: Arc<OnceLock<Recommender>>,
        tokens: PageTokens,
        draining: watch::Receiver<bool>,
        metrics: &platform::metrics::Metrics,
    ) -> Self {
        Self {
            store,
            engine,
            tokens,
            writes: Arc::new(Mutex::new(())),
            feed: broadcast::Sender::new(256),
            draining,
            ratings_total: metrics.counter_vec(
                "recommendations_ratings_total",
                "Ratings stored, by action (rated, deleted).",
                &["action"],
            ),
            served_total: metrics.counter_vec(
                "recommendations_served_total",
                "Recommendations served, by source (popular, similar, personal).",
                &["source"],
            ),
            revocations: Revocations::default(),
        }
    }

    /// The list of ended tokens this service writes (give the same one to the interceptor).
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = revocations;
        self
    }

    fn engine(&self) -> Result<&Recommender, Status> {
        self.engine
            .get()
            .ok_or_else(|| Status::unavailable("recommendations are still loading"))
    }

    /// A positive id of a book in the catalog.
    fn known_book(&self, id: i64, field: &str) -> Result<i64, Status> {
        if id <= 0 {
            return Err(Status::invalid_argument(format!(
                "{field} must be a positive book id, got {id}"
            )));
        }
        if !self.engine()?.catalog().contains(id) {
            return Err(Status::not_found(format!("book {id} not found")));
        }
        Ok(id)
    }

    fn to_proto(&self, recs: Vec<Recommendation>) -> Vec<pb::Recommendation> {
        // One series lookup per source in the list, not one per recommendation.
        for source in Source::ALL {
            let n = recs.iter().filter(|r| r.source == source).count();
            if n > 0 {
                self.served_total
                    .with_label_values(&[source.label()])
                    .inc_by(n as u64);
            }
        }
        // Recommendations come from a loaded engine, so its catalog is there.
        let catalog = self.engine.get().map(Recommender::catalog);
        recs.into_iter()
            .map(|r| {
                let book = catalog.and_then(|c| Some((c, c.position(r.book_id)?)));
                pb::Recommendation {
                    title: book.map_or_else(String::new, |(c, p)| c.title(p).to_owned()),
                    authors: book
                        .map_or_else(Vec::new, |(c, p)| c.authors(p).map(str::to_owned).collect()),
                    book_id: r.book_id,
                    score: r.score,
                    source: match r.source {
                        Source::Popular => pb::RecommendationSource::Popular,
                        Source::Similar => pb::RecommendationSource::Similar,
                        Source::Personal => pb::RecommendationSource::Personal,
                    } as i32,
                    reason: r.reason,
                    because_book_id: r.because_book_id.unwrap_or(0),
                }
            })
            .collect()
    }

    fn publish(&self, kind: pb::RatingEventKind, book_id: i64, stars: i64, at: i64) {
        let title = self
            .engine
            .get()
            .and_then(|e| e.catalog().title_of(book_id))
            .unwrap_or_default();
        // No receivers is fine: nobody is watching.
        let _ = self.feed.send(pb::WatchRatingsResponse {
            kind: kind as i32,
            rating: Some(pb::Rating {
                user_id: String::new(),
                book_id,
                stars: stars as i32,
                update_time_unix_ms: at,
            }),
            title: title.to_owned(),
        });
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotReady(_) => Status::unavailable(e.to_string()),
            StoreError::Database(error) => {
                tracing::error!(%error, "ratings database failed");
                Status::unavailable("the ratings database is unavailable; try again")
            }
        }
    }
}

fn rating_proto(r: RatingRow) -> pb::Rating {
    pb::Rating {
        user_id: r.user_id,
        book_id: r.book_id,
        stars: r.stars as i32,
        update_time_unix_ms: r.updated_at_ms,
    }
}

/// Runs `work` in a task of its own and waits for it: dropping the waiting future (a cancelled
/// call) leaves the task running to its end, so a committed write always reaches the index and
/// the feed. The task carries the caller's span.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(work.instrument(tracing::Span::current()))
        .await
        .map_err(|error| {
            tracing::error!(%error, "a write task failed");
            Status::internal("the write did not complete")
        })?
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRatingsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RecommendationsService for Recommendations {
    #[tracing::instrument(skip_all, fields(book_id = request.get_ref().book_id), err(level = "info"))]
    async fn rate_book(
        &self,
        request: Request<pb::RateBookRequest>,
    ) -> Result<Response<pb::RateBookResponse>, Status> {
        let me = caller(&request)?;
        let req = request.into_inner();
        let book_id = self.known_book(req.book_id, "book_id")?;
        if !(1..=5).contains(&req.stars) {
            return Err(Status::invalid_argument(format!(
                "stars must be between 1 and 5, got {}",
                req.stars
            )));
        }
        let row = RatingRow {
            user_id: me.user_id,
            book_id,
            stars: i64::from(req.stars),
            updated_at_ms: platform::now_unix_ms(),
        };
        // Store, index and publish run to the end in their own task even when the caller goes
        // away (its future dropped) after the database committed.
        let this = self.clone();
        let (row, old) = run_to_completion(async move {
            let _write = this.writes.lock().await;
            let old = this.store.upsert(&row).await?;
            this.engine()?
                .record(&row.user_id, book_id, Some(row.stars));
            this.ratings_total.with_label_values(&["rated"]).inc();
            this.publish(
                pb::RatingEventKind::Rated,
                book_id,
                row.stars,
                row.updated_at_ms,
            );
            Ok((row, old))
        })
        .await?;
        Ok(Response::new(pb::RateBookResponse {
            rating: Some(rating_proto(row)),
            created: old.is_none(),
        }))
    }

    #[tracing::instrument(skip_all, fields(book_id = request.get_ref().book_id), err(level = "info"))]
    async fn delete_rating(
        &self,
        request: Request<pb::DeleteRatingRequest>,
    ) -> Result<Response<pb::DeleteRatingResponse>, Status> {
        let me = caller(&request)?;
        let book_id = self.known_book(request.get_ref().book_id, "book_id")?;
        let this = self.clone();
        let old = run_to_completion(async move {
            let _write = this.writes.lock().await;
            let old = this.store.delete(&me.user_id, book_id).await?;
            if let Some(stars) = old {
                this.engine()?.record(&me.user_id, book_id, None);
                this.ratings_total.with_label_values(&["deleted"]).inc();
                this.publish(
                    pb::RatingEventKind::Deleted,
                    book_id,
                    stars,
                    platform::now_unix_ms(),
                );
            }
            Ok(old)
        })
        .await?;
        if old.is_none() {
            return Err(Status::not_found(format!(
                "you have not rated book {book_id}"
            )));
        }
        Ok(Response::new(pb::DeleteRatingResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn list_my_ratings(
        &self,
        request: Request<pb::ListMyRatingsRequest>,
    ) -> Result<Response<pb::ListMyRatingsResponse>, Status> {
        let me = caller(&request)?;
        let req = request.into_inner();
        let size = page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        let scope = format!("ratings:{}", me.user_id);
        let start = self.tokens.start(&scope, &req.page_token)?;
        // One extra row tells whether another page follows.
        let mut rows = self
            .store
            .list_by_user(&me.user_id, start, size as u64 + 1)
            .await?;
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            self.tokens.encode(&scope, start + size as u64)
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMyRatingsResponse {
            ratings: rows.into_iter().map(rating_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn list_popular_books(
        &self,
        request: Request<pb::ListPopularBooksRequest>,
    ) -> Result<Response<pb::ListPopularBooksResponse>, Status> {
        let req = request.into_inner();
        let size = page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        let start = self.tokens.start("popular", &req.page_token)? as usize;
        let (recs, total) = self.engine()?.popular(start, size);
        let end = start + recs.len();
        let next_page_token = if end < total {
            self.tokens.encode("popular", end as u64)
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListPopularBooksResponse {
            recommendations: self.to_proto(recs),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(book_id = request.get_ref().book_id), err(level = "info"))]
    async fn list_similar_books(
        &self,
        request: Request<pb::ListSimilarBooksRequest>,
    ) -> Result<Response<pb::ListSimilarBooksResponse>, Status> {
        let req = request.into_inner();
        let book_id = self.known_book(req.book_id, "book_id")?;
        let size = page_size(req.page_size, DEFAULT_RECS, MAX_RECS)?;
        let recs = self.engine()?.similar(book_id, size);
        Ok(Response::new(pb::ListSimilarBooksResponse {
            recommendations: self.to_proto(recs),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn list_recommendations_for_me(
        &self,
        request: Request<pb::ListRecommendationsForMeRequest>,
    ) -> Result<Response<pb::ListRecommendationsForMeResponse>, Status> {
        let me = caller(&request)?;
        let size = page_size(request.get_ref().page_size, DEFAULT_RECS, MAX_RECS)?;
        let recs = self.engine()?.for_user(&me.user_id, size);
        Ok(Response::new(pb::ListRecommendationsForMeResponse {
            recommendations: self.to_proto(recs),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn delete_user_ratings(
        &self,
        request: Request<pb::DeleteUserRatingsRequest>,
    ) -> Result<Response<pb::DeleteUserRatingsResponse>, Status> {
        let me = caller(&request)?;
        let user_id = request.into_inner().user_id;
        if user_id.is_empty() {
            return Err(Status::invalid_argument("user_id is required"));
        }
        if me.user_id != USERS_SERVICE && me.user_id != user_id {
            return Err(Status::permission_denied(
                "only the users service or the user may delete a user's ratings",
            ));
        }
        // A token of the deleted user may still be valid for up to a token lifetime: it is
        // ended here first, so no rating can be added after the purge below.
        let until_ms = platform::now_unix_ms() + MAX_TOKEN_LIFETIME_MS;
        let this = self.clone();
        let deleted = run_to_completion(async move {
            let _write = this.writes.lock().await;
            let key = Revocations::user_key(&user_id);
            this.store.revoke(&key, until_ms).await?;
            this.revocations.insert(key, until_ms / 1000 + 1);
            let gone = this.store.delete_user(&user_id).await?;
            let engine = this.engine()?;
            let now = platform::now_unix_ms();
            for &(book_id, stars) in &gone {
                engine.record(&user_id, book_id, None);
                this.ratings_total.with_label_values(&["deleted"]).inc();
                this.publish(pb::RatingEventKind::Deleted, book_id, stars, now);
            }
            tracing::info!(user_id = %user_id, deleted = gone.len(), "ratings of a deleted account removed");
            Ok(gone.len() as i64)
        })
        .await?;
        Ok(Response::new(pb::DeleteUserRatingsResponse {
            deleted_count: deleted,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let me = caller(&request)?;
        if me.user_id != USERS_SERVICE {
            return Err(Status::permission_denied(
                "only the users service may revoke sessions",
            ));
        }
        let req = request.into_inner();
        if req.session_id.is_empty() {
            return Err(Status::invalid_argument("session_id is required"));
        }
        let key = Revocations::session_key(&req.session_id);
        self.store.revoke(&key, req.expire_time_unix_ms).await?;
        self.revocations
            .insert(key, req.expire_time_unix_ms / 1000 + 1);
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    type WatchRatingsStream = FeedStream;

    #[tracing::instrument(skip_all, fields(book_id = request.get_ref().book_id), err(level = "info"))]
    async fn watch_ratings(
        &self,
        request: Request<pb::WatchRatingsRequest>,
    ) -> Result<Response<Self::WatchRatingsStream>, Status> {
        let filter = request.get_ref().book_id;
        if filter != 0 {
            self.known_book(filter, "book_id")?;
        }
        let mut draining = self.draining.clone();
        let stream =
            BroadcastStream::new(self.feed.subscribe()).filter_map(move |event| match event {
                Ok(e) if filter == 0 || e.rating.as_ref().is_some_and(|r| r.book_id == filter) => {
                    Some(Ok(e))
                }
                Ok(_) => None,
                Err(lagged) => {
                    tracing::warn!(%lagged, "a feed watcher fell behind; events skipped");
                    None
                }
            });
        // The feed ends when the server starts draining, so shutdown is not held up.
        let stream = futures_util::StreamExt::take_until(stream, async move {
            let _ = draining.wait_for(|d| *d).await;
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use catalog::Digest;
    use platform::auth::Caller;
    use tokio::sync::Notify;

    use super::*;

    /// A store whose writes wait at a gate, then commit.
    #[derive(Default)]
    struct GatedStore {
        entered: Notify,
        gate: Notify,
        rows: std::sync::Mutex<Vec<RatingRow>>,
    }

    #[tonic::async_trait]
    impl RatingStore for GatedStore {
        async fn upsert(&self, rating: &RatingRow) -> Result<Option<i64>, StoreError> {
            self.entered.notify_one();
            self.gate.notified().await;
            self.rows.lock().unwrap().push(rating.clone());
            Ok(None)
        }
        async fn delete(&self, _: &str, _: i64) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        async fn list_by_user(
            &self,
            _: &str,
            _: u64,
            _: u64,
        ) -> Result<Vec<RatingRow>, StoreError> {
            Ok(Vec::new())
        }
        fn stream_all(&self) -> futures_util::stream::BoxStream<'_, Result<RatingRow, StoreError>> {
            Box::pin(futures_util::stream::empty())
        }
        async fn delete_user(&self, _: &str) -> Result<Vec<(i64, i64)>, StoreError> {
            Ok(Vec::new())
        }
        async fn revoke(&self, _: &str, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_rating_whose_call_is_cancelled_still_reaches_the_index_and_the_feed() {
        let store = Arc::new(GatedStore::default());
        let engine = Arc::new(OnceLock::new());
        let _ = engine.set(Recommender::new(Digest::builtin().unwrap()));
        let (_drain, draining) = watch::channel(false);
        let service = Recommendations::new(
            store.clone(),
            engine.clone(),
            PageTokens::from_secret(None),
            draining,
            &platform::metrics::Metrics::new(),
        );
        let mut feed = service.feed.subscribe();
        let mut request = Request::new(pb::RateBookRequest {
            book_id: 1,
            stars: 5,
        });
        request.extensions_mut().insert(Caller {
            user_id: "ada".into(),
            session_id: "s".into(),
            expires_at: i64::MAX,
        });
        let call = service.rate_book(request);
        tokio::select! {
            _ = call => panic!("the store is gated: the call cannot finish"),
            _ = store.entered.notified() => {}
        }
        // The call's future is gone; the database now commits.
        store.gate.notify_one();
        let event = tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.rating.unwrap().book_id, 1);
        assert_eq!(store.rows.lock().unwrap().len(), 1);
        let engine = engine.get().unwrap();
        assert_eq!(engine.stats().ratings, 1);
        assert!(engine.for_user("ada", 3).iter().all(|r| r.book_id != 1));
    }
}
