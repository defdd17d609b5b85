//! The REST JSON API under `/api/v1`, one module per resource, each with its own `router()`;
//! every handler is one translation to the upstream calls, and of their model answers into the
//! REST types here. The OpenAPI document ([`crate::openapi`]) is generated from these handlers
//! and types.

pub mod books;
pub mod ratings;
pub mod recommendations;
pub mod sessions;
pub mod users;

use axum::{Router, http::StatusCode, routing::any};

pub use self::{
    books::{Book, BookPage},
    ratings::{Rating, RatingEvent, RatingPage},
    recommendations::{Recommendation, RecommendationList},
    sessions::Session,
    users::User,
};
use crate::{error::ApiError, state::AppState};

/// 404 for an unknown path under `/api/`.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API route")
}

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(books::router())
        .merge(recommendations::router())
        .merge(users::router())
        .merge(sessions::router())
        .merge(ratings::router())
        .route("/api/v1/{*rest}", any(not_found))
}
