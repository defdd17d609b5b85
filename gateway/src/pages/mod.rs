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
use crate::{AppState, error::ApiError, model::Pick};

/// Books in one page of the home grid.
const GRID_PAGE: i32 = 24;
/// Books in a side panel or an "also liked" grid.
const PANEL_SIZE: i32 = 8;

const CSS: &str = include_str!("../../static/site.css");
const LIVE_JS: &str = include_str!("../../static/live.js");
/// Nothing inline, nothing from elsewhere but the covers' CDN.
const CSP: &str = "default-src 'self'; img-src 'self' https://images.gr-assets.com https://s.gr-assets.com; \
     style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The "Popular now" panel: the same for every visitor and slow to change, so it is kept for a
/// short while (`POPULAR_CACHE_MS`) instead of asking recommendations again on every page view.
/// A reader's own picks are never kept. Only answers are kept, never a failure, so a panel whose
/// service is down is left out as soon as the kept one is too old.
pub struct PopularPanel {
    ttl: std::time::Duration,
    kept: std::sync::RwLock<Option<(std::time::Instant, std::sync::Arc<[Pick]>)>>,
}

impl PopularPanel {
    /// A panel kept for `ttl` (zero: never kept).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            kept: std::sync::RwLock::new(None),
        }
    }

    /// The kept panel, if younger than its time to live.
    fn fresh(&self) -> Option<std::sync::Arc<[Pick]>> {
        if self.ttl.is_zero() {
            return None;
        }
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        kept.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, recs)| recs.clone())
    }

    /// Keeps `recs`, just fetched.
    fn keep(&self, recs: Vec<Pick>) -> std::sync::Arc<[Pick]> {
        let recs: std::sync::Arc<[_]> = recs.into();
        if !self.ttl.is_zero() {
            *self.kept.write().unwrap_or_else(|e| e.into_inner()) =
                Some((std::time::Instant::now(), recs.clone()));
        }
        recs
    }

    /// The panel: kept, or fetched with `fetch` (and kept).
    async fn get<F>(&self, fetch: F) -> Result<std::sync::Arc<[Pick]>, ApiError>
    where
        F: Future<Output = Result<Vec<Pick>, ApiError>>,
    {
        match self.fresh() {
            Some(recs) => Ok(recs),
            None => Ok(self.keep(fetch.await?)),
        }
    }
}

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
    if crate::api::is_api_path(uri.path()) {
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

    fn pick(id: i64) -> Pick {
        Pick {
            book_id: id,
            title: format!("Book {id}"),
            authors: Vec::new(),
            reason: String::new(),
        }
    }

    /// Fetches book `id`, counting the fetches; fails when `id` is 0.
    async fn fetch(calls: &std::sync::atomic::AtomicUsize, id: i64) -> Result<Vec<Pick>, ApiError> {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if id == 0 {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "down"));
        }
        Ok(vec![pick(id)])
    }

    #[tokio::test]
    async fn the_popular_panel_is_kept_for_its_time_to_live_and_failures_never() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let panel = PopularPanel::new(std::time::Duration::from_millis(200));
        assert_eq!(panel.get(fetch(&calls, 1)).await.unwrap()[0].book_id, 1);
        // Kept: the second view asks nobody.
        assert_eq!(panel.get(fetch(&calls, 2)).await.unwrap()[0].book_id, 1);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        // Too old: asked again, and a failure is passed on, not kept.
        assert!(panel.get(fetch(&calls, 0)).await.is_err());
        assert_eq!(panel.get(fetch(&calls, 3)).await.unwrap()[0].book_id, 3);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_zero_time_to_live_keeps_nothing() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let panel = PopularPanel::new(std::time::Duration::ZERO);
        panel.get(fetch(&calls, 1)).await.unwrap();
        assert_eq!(panel.get(fetch(&calls, 2)).await.unwrap()[0].book_id, 2);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
