//! The caller's ratings (`/api/v1/me/ratings`, `/api/v1/me/ratings/{book_id}`) and the live feed
//! of everybody's ratings as Server-Sent Events (`/api/v1/ratings/stream`).

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
    routing::{get, put},
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    api::books::PageQuery,
    contract::{self, Validate},
    error::{ApiError, Problem},
    extract::{ApiAuth, ApiJson, ApiPath, ApiQuery, ClientIp, integer},
    model,
    state::AppState,
    upstream::Deadline,
};

/// A rating to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBook {
    /// 1..=5.
    #[serde(deserialize_with = "integer")]
    pub stars: i32,
}

impl Validate for RateBook {
    fn validate(&self) -> Result<(), ApiError> {
        contract::stars(self.stars)
    }
}

/// One of the caller's ratings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rating {
    pub book_id: i64,
    pub stars: i32,
    pub update_time_unix_ms: i64,
}

impl From<model::Rating> for Rating {
    fn from(r: model::Rating) -> Self {
        Self {
            book_id: r.book_id,
            stars: r.stars,
            update_time_unix_ms: r.update_time_unix_ms,
        }
    }
}

/// A page of the caller's ratings, most recent first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RatingPage {
    pub ratings: Vec<Rating>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

impl From<model::RatingPage> for RatingPage {
    fn from(p: model::RatingPage) -> Self {
        Self {
            ratings: p.ratings.into_iter().map(Rating::from).collect(),
            next_page_token: p.next_page_token,
        }
    }
}

/// Feed filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only ratings of this book.
    pub book_id: Option<i64>,
}

impl Validate for FeedQuery {
    fn validate(&self) -> Result<(), ApiError> {
        match self.book_id {
            Some(id) => contract::book_id("book_id", id),
            None => Ok(()),
        }
    }
}

/// One event of the live ratings feed (SSE `event: rating`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RatingEvent {
    /// `rated` or `deleted`.
    pub kind: String,
    pub book_id: i64,
    pub stars: i32,
    /// The book's title, when the catalog answered in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub time_unix_ms: i64,
}

/// Lists the caller's ratings, most recent first.
#[utoipa::path(get, path = "/api/v1/me/ratings", tag = "ratings", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RatingPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn my_ratings(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<RatingPage>, ApiError> {
    let page = s
        .recommendations()
        .my_ratings(
            auth.as_ref(),
            q.page_size.unwrap_or(0),
            q.page_token.unwrap_or_default(),
        )
        .await?;
    Ok(Json(page.into()))
}

/// Rates a book (1-5 stars); rating again replaces the rating.
#[utoipa::path(put, path = "/api/v1/me/ratings/{book_id}", tag = "ratings",
    params(("book_id" = i64, Path)), request_body = RateBook, security(("bearer" = [])),
    responses((status = 201, body = Rating, description = "first rating of this book"),
              (status = 200, body = Rating, description = "rating replaced"),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn rate_book(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(book_id): ApiPath<i64>,
    ApiJson(body): ApiJson<RateBook>,
) -> Result<(StatusCode, Json<Rating>), ApiError> {
    contract::book_id("book_id", book_id)?;
    let (rating, created) = s
        .recommendations()
        .rate(auth.as_ref(), book_id, body.stars)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rating.into())))
}

/// Deletes the caller's rating of a book.
#[utoipa::path(delete, path = "/api/v1/me/ratings/{book_id}", tag = "ratings",
    params(("book_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_rating(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(book_id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    contract::book_id("book_id", book_id)?;
    s.recommendations()
        .delete_rating(auth.as_ref(), book_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The live feed of ratings as Server-Sent Events (`event: rating`, data: a RatingEvent).
/// A client address holds at most `FEED_LIMIT_PER_CLIENT` feeds at once, a gateway replica
/// `FEED_LIMIT`.
#[utoipa::path(get, path = "/api/v1/ratings/stream", tag = "ratings", params(FeedQuery),
    responses((status = 200, content_type = "text/event-stream", body = RatingEvent),
              (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 429, body = Problem, description = "This client address holds as many live feeds as one client may (FEED_LIMIT_PER_CLIENT), or recommendations is at its stream limit; retry after Retry-After seconds (a slot comes back when one of the client's feeds ends)."),
              (status = 503, body = Problem, description = "The gateway holds as many live feeds as it may (FEED_LIMIT) or is at its concurrency limit, or no recommendations replica is ready; retry after Retry-After seconds.")))]
pub async fn ratings_stream(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Held inside the stream: given back when the feed ends or the client goes away.
    let slot = s.feeds.admit(client)?;
    let upstream = s
        .recommendations()
        .watch_ratings(q.book_id.unwrap_or(0))
        .await?;
    let stream = futures_util::stream::unfold(
        (upstream, s.clone(), s.shutdown.clone(), slot),
        |(mut upstream, s, mut shutdown, slot)| async move {
            let next = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return None,
                next = upstream.next() => next,
            };
            let event = match next {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(status) => {
                    tracing::info!(code = ?status.code(), "ratings feed ended upstream");
                    return None;
                }
            };
            let data = feed_event(&s, event).await;
            let sse = Event::default()
                .event("rating")
                .json_data(&data)
                .unwrap_or_else(|_| Event::default().comment("unencodable event"));
            Some((Ok(sse), (upstream, s, shutdown, slot)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default().interval(Duration::from_secs(15))))
}

/// A feed event for browsers, with the book's title: the one the event carries, or (from a
/// recommendations replica older than that field) the catalog's when it answers quickly.
async fn feed_event(s: &AppState, e: model::RatingChange) -> RatingEvent {
    let rating = e.rating;
    let title = match e.title {
        Some(t) => Some(t),
        None => s
            .marketplace()
            .within(Deadline::after(Duration::from_millis(500)))
            .get_book(rating.book_id)
            .await
            .ok()
            .map(|b| b.title),
    };
    RatingEvent {
        kind: e.kind.as_str().into(),
        book_id: rating.book_id,
        stars: rating.stars,
        title,
        time_unix_ms: rating.update_time_unix_ms,
    }
}

/// The ratings' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/ratings", get(my_ratings))
        .route(
            "/api/v1/me/ratings/{book_id}",
            put(rate_book).delete(delete_rating),
        )
        .route("/api/v1/ratings/stream", get(ratings_stream))
}
