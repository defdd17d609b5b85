//! The gRPC face of ratings and recommendations: validates requests, stores ratings (each with
//! its change logged), and answers from the index that the change log keeps in step.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;
use platform::{
    auth::{Revocations, USERS_SERVICE, caller},
    page_token::{PageTokens, page_size},
};
use prometheus::IntCounterVec;
use protos::recommendations::v1::{
    self as pb, recommendations_service_server::RecommendationsService,
};
use rules::{
    Stars,
    paging::{LISTING, RECOMMENDATIONS},
};
use tokio::sync::watch;
use tokio_stream::{StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

use crate::{
    changelog::Follower,
    recommender::{Engine, Recommendation, Recommender, Source},
    store::{Change, RatingRow, RatingStore, StoreError, Written},
};

/// How long a deleted user's tokens are refused: longer than any token lives.
pub const MAX_TOKEN_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;
/// How long a write waits for its change to reach this replica's index, so that the caller's
/// next read here sees it; the write is stored either way.
pub const OWN_WRITE_WAIT: Duration = Duration::from_secs(1);

/// A request that breaks an input rule.
fn invalid(e: rules::RuleError) -> Status {
    Status::invalid_argument(e.0)
}

/// The service; answers UNAVAILABLE until the catalog and the ratings are loaded.
#[derive(Clone)]
pub struct Recommendations {
    store: Arc<dyn RatingStore>,
    engine: Engine,
    /// Applies every logged change to `engine` and carries it to the live feed.
    log: Arc<Follower>,
    tokens: PageTokens,
    draining: watch::Receiver<bool>,
    ratings_total: IntCounterVec,
    served_total: IntCounterVec,
    /// Ended tokens, refused by the interceptor; written here when users says so.
    revocations: Revocations,
}

impl Recommendations {
    pub fn new(
        store: Arc<dyn RatingStore>,
        engine: Engine,
        log: Arc<Follower>,
        tokens: PageTokens,
        draining: watch::Receiver<bool>,
        metrics: &platform::metrics::Metrics,
    ) -> Self {
        Self {
            store,
            engine,
            log,
            tokens,
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

    fn engine(&self) -> Result<Arc<Recommender>, Status> {
        self.engine
            .get()
            .ok_or_else(|| Status::unavailable("recommendations are still loading"))
    }

    /// Waits (bounded) until this replica's index holds the write at `position`.
    async fn own_write(&self, position: i64) {
        if !self.log.wait_applied(position, OWN_WRITE_WAIT).await {
            tracing::warn!(
                position,
                "a write is stored but not yet in this replica's index"
            );
        }
    }

    /// A positive id of a book in the catalog.
    fn known_book(&self, id: i64, field: &str) -> Result<i64, Status> {
        rules::books::book_id(field, id).map_err(invalid)?;
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
        let engine = self.engine.get();
        let catalog = engine.as_deref().map(Recommender::catalog);
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

/// A change of the log as the live feed shows it: no user, the book's title.
fn feed_event(engine: &Engine, c: Change) -> pb::WatchRatingsResponse {
    let (kind, stars) = match c.stars {
        Some(stars) => (pb::RatingEventKind::Rated, stars),
        None => (pb::RatingEventKind::Deleted, c.previous.unwrap_or_default()),
    };
    let title = engine
        .get()
        .and_then(|e| e.catalog().title_of(c.book_id).map(str::to_owned))
        .unwrap_or_default();
    pb::WatchRatingsResponse {
        kind: kind as i32,
        rating: Some(pb::Rating {
            user_id: String::new(),
            book_id: c.book_id,
            stars: stars as i32,
            update_time_unix_ms: c.at_ms,
        }),
        title,
    }
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
        let stars = Stars::try_from(req.stars).map_err(invalid)?;
        let row = RatingRow {
            user_id: me.user_id,
            book_id,
            stars: stars.into(),
            updated_at_ms: platform::now_unix_ms(),
        };
        // Stored with its change logged in one transaction: once committed, every replica's
        // index and feed get it from the log, even if this call is cancelled now.
        let Written { previous, position } = self.store.upsert(&row).await?;
        self.ratings_total.with_label_values(&["rated"]).inc();
        self.own_write(position).await;
        Ok(Response::new(pb::RateBookResponse {
            rating: Some(rating_proto(row)),
            created: previous.is_none(),
        }))
    }

    #[tracing::instrument(skip_all, fields(book_id = request.get_ref().book_id), err(level = "info"))]
    async fn delete_rating(
        &self,
        request: Request<pb::DeleteRatingRequest>,
    ) -> Result<Response<pb::DeleteRatingResponse>, Status> {
        let me = caller(&request)?;
        let book_id = self.known_book(request.get_ref().book_id, "book_id")?;
        let Some(written) = self
            .store
            .delete(&me.user_id, book_id, platform::now_unix_ms())
            .await?
        else {
            return Err(Status::not_found(format!(
                "you have not rated book {book_id}"
            )));
        };
        self.ratings_total.with_label_values(&["deleted"]).inc();
        self.own_write(written.position).await;
        Ok(Response::new(pb::DeleteRatingResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn list_my_ratings(
        &self,
        request: Request<pb::ListMyRatingsRequest>,
    ) -> Result<Response<pb::ListMyRatingsResponse>, Status> {
        let me = caller(&request)?;
        let req = request.into_inner();
        let size = page_size(req.page_size, LISTING)?;
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
        let size = page_size(req.page_size, LISTING)?;
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
        let size = page_size(req.page_size, RECOMMENDATIONS)?;
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
        let size = page_size(request.get_ref().page_size, RECOMMENDATIONS)?;
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
        let now = platform::now_unix_ms();
        let until_ms = now + MAX_TOKEN_LIFETIME_MS;
        let key = Revocations::user_key(&user_id);
        self.store.revoke(&key, until_ms).await?;
        self.revocations.insert(key, until_ms / 1000 + 1);
        let positions = self.store.delete_user(&user_id, now).await?;
        self.ratings_total
            .with_label_values(&["deleted"])
            .inc_by(positions.len() as u64);
        if let Some(&last) = positions.iter().max() {
            self.own_write(last).await;
        }
        tracing::info!(user_id = %user_id, deleted = positions.len(), "ratings of a deleted account removed");
        Ok(Response::new(pb::DeleteUserRatingsResponse {
            deleted_count: positions.len() as i64,
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
        let engine = self.engine.clone();
        let stream =
            BroadcastStream::new(self.log.subscribe()).filter_map(move |event| match event {
                Ok(c) if filter == 0 || c.book_id == filter => Some(Ok(feed_event(&engine, c))),
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
