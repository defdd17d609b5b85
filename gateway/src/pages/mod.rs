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
mod session;
mod text;

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::Markup;

pub use self::session::{PageSession, SessionUser};
use crate::{error::ApiError, state::AppState};

/// Books in one page of the home grid.
const GRID_PAGE: i32 = 24;
/// Books in a side panel or an "also liked" grid.
const PANEL_SIZE: i32 = 8;

const CSS: &str = include_str!("../../static/site.css");
const LIVE_JS: &str = include_str!("../../static/live.js");
/// Nothing inline, nothing from elsewhere but the covers' CDN.
const CSP: &str = "default-src 'self'; img-src 'self' https://images.gr-assets.com https://s.gr-assets.com; \
     style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page with `status` and the pages' security headers.
fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut r = (status, page.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 303 to `to` (after a form's POST).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Percent-encodes a query-string value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A static file: served as a file so that pages need nothing inline (see [`CSP`]).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_encode("Az09-_.~"), "Az09-_.~");
    }
}
