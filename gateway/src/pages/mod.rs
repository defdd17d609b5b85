//! The marketplace pages, rendered on the server from maud templates and usable without
//! JavaScript: `/` (search, paginated grid, a "for you" or "popular now" panel, sign-up and
//! sign-in), `/books/{id}` (the book, its rating form, "readers who liked this also liked") and
//! the forms' POST routes. Each page is one concurrent fan-out; an optional section whose service
//! fails is left out instead of failing the page.

mod account;
mod book;
mod cards;
pub mod csrf;
mod forms;
mod home;
mod layout;
mod notice;
mod respond;
mod session;
mod text;

use axum::{
    Router,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use self::respond::asset;
pub use self::session::{PageSession, SessionUser};
use crate::{error::ApiError, state::AppState};

const CSS: &str = include_str!("../../static/site.css");
const LIVE_JS: &str = include_str!("../../static/live.js");
async fn not_found_page(forms: forms::FormGuard, headers: HeaderMap, uri: Uri) -> Response {
    if crate::error::is_api_path(uri.path()) {
        return crate::api::not_found().await.into_response();
    }
    layout::error_page(
        &ApiError::new(StatusCode::NOT_FOUND, "There is no page here."),
        session::from_cookies(&headers).as_ref(),
        &forms,
    )
}

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/books/{id}", get(book::book))
        .route("/books/{id}/rating", post(book::rate))
        .route("/books/{id}/rating/delete", post(book::unrate))
        .route("/signin", post(account::sign_in))
        .route("/signup", post(account::sign_up))
        .route("/signout", post(account::sign_out))
        .route(
            "/static/site.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
        .fallback(not_found_page)
}
