//! Cross-site request forgery defence for the pages' forms, in two independent parts:
//!
//! - **Where the post comes from.** A browser says it: `Sec-Fetch-Site` (every current browser)
//!   and `Origin` (on every POST). A form posted from another site (`cross-site`, or an `Origin`
//!   other than this host's) is refused with 403 before its body is read.
//! - **A token the other site cannot know** (signed double submit): every visitor gets a random
//!   nonce in an `HttpOnly`, `SameSite=Strict` cookie (`__Host-` prefixed and `Secure` when the
//!   pages are served over TLS, so no other host can set it), and every form carries
//!   `HMAC-SHA256(CSRF_SECRET, nonce)` in a hidden field. A POST whose field does not match its
//!   cookie is refused with 403. The page needs no server-side state, so any gateway replica
//!   can check what another rendered (they share `CSRF_SECRET`).
//!
//! The API is left alone: it takes bearer tokens only (no cookies) and JSON only as
//! `application/json`, which no page can make a browser send to another site unasked.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};

use super::{
    forms::{FIELD, FormGuard},
    layout, session,
};
use crate::{
    error::{ApiError, is_api_path},
    state::{AppState, hex},
};

const COOKIE: &str = "bookstore_csrf";
const HOST_COOKIE: &str = "__Host-bookstore_csrf";
/// Hex characters of a nonce (128 random bits).
const NONCE_LEN: usize = 32;

fn nonce_of(headers: &HeaderMap, secure: bool) -> Option<&str> {
    session::cookie(headers, if secure { HOST_COOKIE } else { COOKIE })
        .filter(|n| n.len() == NONCE_LEN && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn set_cookie(nonce: &str, secure: bool) -> HeaderValue {
    let value = if secure {
        format!("{HOST_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict; Secure")
    } else {
        format!("{COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(""))
}

/// Why a post is not from this site's own pages, if it is not.
fn foreign(headers: &HeaderMap) -> Option<&'static str> {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some("the form was posted from another site");
    }
    if let Some(origin) = get(header::ORIGIN.as_str()) {
        let host = get(header::HOST.as_str()).unwrap_or_default();
        let same = origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
        if !same {
            return Some("the form was posted from another origin");
        }
    }
    None
}

fn forbidden(why: &str, headers: &HeaderMap) -> Response {
    layout::error_page(
        &ApiError::new(StatusCode::FORBIDDEN, why),
        session::from_cookies(headers).as_ref(),
        &FormGuard::default(),
    )
}

/// The middleware: checks every page POST, and gives every page request its [`FormGuard`]
/// (setting the nonce cookie when the browser has none). API paths pass untouched.
pub async fn guard(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    // The API and gRPC-Web carry bearer tokens, not cookies: CORS governs them.
    if is_api_path(req.uri().path()) || crate::grpc_web::is_grpc_web_path(req.uri().path()) {
        return next.run(req).await;
    }
    let secure = s.secure_cookies(req.headers());
    let nonce = nonce_of(req.headers(), secure).map(str::to_owned);
    if req.method() == Method::POST {
        if let Some(why) = foreign(req.headers()) {
            return forbidden(why, req.headers());
        }
        let Some(nonce) = nonce else {
            return forbidden(
                "this form has expired: reload the page and send it again",
                req.headers(),
            );
        };
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, s.body_limit).await else {
            return forbidden("the form could not be read", &parts.headers);
        };
        let token = form_field(&bytes, FIELD);
        if !token.is_some_and(|t| s.csrf.verify(&nonce, &t)) {
            return forbidden(
                "this form has expired: reload the page and send it again",
                &parts.headers,
            );
        }
        let mut req = Request::from_parts(parts, Body::from(bytes));
        req.extensions_mut().insert(FormGuard {
            token: s.csrf.sign(&nonce),
            secure,
        });
        return next.run(req).await;
    }
    let (nonce, fresh) = match nonce {
        Some(n) => (n, false),
        None => {
            let mut raw = [0u8; NONCE_LEN / 2];
            getrandom::getrandom(&mut raw).expect("random source");
            (hex(&raw), true)
        }
    };
    req.extensions_mut().insert(FormGuard {
        token: s.csrf.sign(&nonce),
        secure,
    });
    let mut response = next.run(req).await;
    if fresh {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(&nonce, secure));
    }
    response
}

/// The first value of `name` in a `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_from_another_site_or_origin_are_foreign() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(foreign(&headers(&[("host", "shop.example")])), None);
        assert_eq!(
            foreign(&headers(&[
                ("host", "shop.example"),
                ("origin", "https://shop.example"),
                ("sec-fetch-site", "same-origin")
            ])),
            None
        );
        assert!(
            foreign(&headers(&[
                ("host", "shop.example"),
                ("sec-fetch-site", "cross-site")
            ]))
            .is_some()
        );
        assert!(
            foreign(&headers(&[
                ("host", "shop.example"),
                ("sec-fetch-site", "same-site")
            ]))
            .is_some()
        );
        assert!(
            foreign(&headers(&[
                ("host", "shop.example"),
                ("origin", "https://evil.example")
            ]))
            .is_some()
        );
        assert!(foreign(&headers(&[("host", "shop.example"), ("origin", "null")])).is_some());
    }

    #[test]
    fn the_token_is_read_from_the_form_body() {
        assert_eq!(
            form_field(b"email=a%40b&csrf=ab12&x=1", FIELD).as_deref(),
            Some("ab12")
        );
        assert_eq!(form_field(b"email=a", FIELD), None);
    }
}
