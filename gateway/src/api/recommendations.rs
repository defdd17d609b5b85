//! What to read next: `/api/v1/books/{id}/similar`, `/api/v1/recommendations/popular` and
//! `/api/v1/me/recommendations`, each joined with its books.

use axum::{Json, Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    api::books::{Book, PageQuery},
    contract::{self, Validate},
    error::{ApiError, Problem},
    extract::{ApiAuth, ApiPath, ApiQuery},
    model::{self, BookView},
    state::AppState,
};

/// A recommended book.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub book: Book,
    pub score: f64,
    /// `popular`, `similar` or `personal`.
    pub source: String,
    /// A short reason, e.g. "Because you liked Dune".
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_book_id: Option<i64>,
}

impl From<model::Recommendation> for Recommendation {
    fn from(r: model::Recommendation) -> Self {
        Self {
            book: r.book.into(),
            score: r.score,
            source: r.source.as_str().to_owned(),
            reason: r.reason,
            because_book_id: r.because_book_id,
        }
    }
}

/// Recommended books, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationList {
    pub recommendations: Vec<Recommendation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

impl RecommendationList {
    /// `recommendations`, best first, and the next page's token if there is one.
    fn new(recommendations: Vec<model::Recommendation>, next_page_token: Option<String>) -> Self {
        Self {
            recommendations: recommendations
                .into_iter()
                .map(Recommendation::from)
                .collect(),
            next_page_token,
        }
    }
}

/// How many recommendations to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1..=50 (default 10).
    pub page_size: Option<i32>,
}

impl Validate for LimitQuery {
    fn validate(&self) -> Result<(), ApiError> {
        contract::page_size(self.page_size, contract::RECS_SIZE_MAX).map(drop)
    }
}

/// "Readers who liked this also liked".
#[utoipa::path(get, path = "/api/v1/books/{id}/similar", tag = "recommendations",
    params(("id" = i64, Path), LimitQuery),
    responses((status = 200, body = RecommendationList), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn similar_books(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    contract::book_id("id", id)?;
    let recs = s.recommendations();
    let recommendations = recs
        .similar(id, q.page_size.unwrap_or(0))
        .await?
        .with_books(&s.marketplace().within(recs.deadline()), BookView::Full)
        .await?;
    Ok(Json(RecommendationList::new(recommendations, None)))
}

/// Popular books for everybody (Bayesian average).
#[utoipa::path(get, path = "/api/v1/recommendations/popular", tag = "recommendations", params(PageQuery),
    responses((status = 200, body = RecommendationList), (status = 400, body = Problem)))]
pub async fn popular_books(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    let recs = s.recommendations();
    let mut picks = recs
        .popular(q.page_size.unwrap_or(0), q.page_token.unwrap_or_default())
        .await?;
    let next_page_token = picks.next_page_token.take();
    let recommendations = picks
        .with_books(&s.marketplace().within(recs.deadline()), BookView::Full)
        .await?;
    Ok(Json(RecommendationList::new(
        recommendations,
        next_page_token,
    )))
}

/// Books for the signed-in caller.
#[utoipa::path(get, path = "/api/v1/me/recommendations", tag = "recommendations", params(LimitQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RecommendationList), (status = 401, body = Problem)))]
pub async fn my_recommendations(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    let recs = s.recommendations();
    let recommendations = recs
        .for_me(auth.as_ref(), q.page_size.unwrap_or(0))
        .await?
        .with_books(&s.marketplace().within(recs.deadline()), BookView::Full)
        .await?;
    Ok(Json(RecommendationList::new(recommendations, None)))
}

/// The recommendations' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/books/{id}/similar", get(similar_books))
        .route("/api/v1/recommendations/popular", get(popular_books))
        .route("/api/v1/me/recommendations", get(my_recommendations))
}
