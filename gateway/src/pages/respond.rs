//! How a page answers: HTML with the pages' security headers, a redirect after a form, or a
//! static file.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::Markup;

/// Nothing inline, nothing from elsewhere but the covers' CDN.
const CSP: &str = "default-src 'self'; img-src 'self' https://images.gr-assets.com https://s.gr-assets.com; \
     style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page with `status` and the pages' security headers.
pub fn html_response(status: StatusCode, page: Markup) -> Response {
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
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A static file: served as a file so that pages need nothing inline (see [`CSP`]).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
