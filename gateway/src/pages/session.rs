//! Who is signed in on the pages: two `HttpOnly`, `SameSite=Lax` cookies, the bearer token the
//! services check and the name the pages show; `Secure` and `__Host-` prefixed (no other host
//! can set or overwrite them) when the pages are served over TLS.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{model::Session, upstream::Bearer};

const SESSION_COOKIE: &str = "bookstore_session";
const USER_COOKIE: &str = "bookstore_user";
const HOST_SESSION_COOKIE: &str = "__Host-bookstore_session";
const HOST_USER_COOKIE: &str = "__Host-bookstore_user";

/// The two cookies' names: prefixed when `secure`.
fn names(secure: bool) -> [&'static str; 2] {
    if secure {
        [HOST_SESSION_COOKIE, HOST_USER_COOKIE]
    } else {
        [SESSION_COOKIE, USER_COOKIE]
    }
}

/// Who is signed in, as the cookies say. The token is what the services check; the name is
/// only shown.
#[derive(Clone, Debug)]
pub struct PageSession {
    pub token: Bearer,
    pub user: SessionUser,
}

/// The account a session belongs to, as the pages show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
}

/// The value of the cookie `name` the request carries.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session the request's cookies carry, if they carry a well-formed one (prefixed or
/// not: a browser only sends `__Host-` cookies over TLS).
pub fn from_cookies(headers: &HeaderMap) -> Option<PageSession> {
    [true, false].into_iter().find_map(|secure| {
        let [session, user] = names(secure);
        let token = Bearer::parse(cookie(headers, session)?)?;
        let raw = URL_SAFE_NO_PAD.decode(cookie(headers, user)?).ok()?;
        let user = serde_json::from_slice(&raw).ok()?;
        Some(PageSession { token, user })
    })
}

/// The `Set-Cookie` values that start `session` (expiring with its token), `Secure` ones when
/// `secure`.
pub fn start(session: &Session, secure: bool) -> [HeaderValue; 2] {
    let user = SessionUser {
        id: session.user.id.clone(),
        name: session.user.display_name.clone(),
    };
    let [session_cookie, user_cookie] = names(secure);
    let secure = if secure { "; Secure" } else { "" };
    let max_age = session.expires_in;
    let token = &session.access_token;
    let user = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&user).unwrap_or_default());
    [
        format!(
            "{session_cookie}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        ),
        format!("{user_cookie}={user}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"),
    ]
    .map(|c| HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("")))
}

/// The `Set-Cookie` values that end the session in the browser (set as `secure` said).
pub fn end(secure: bool) -> [HeaderValue; 2] {
    let flag = if secure { "; Secure" } else { "" };
    names(secure).map(|name| {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{flag}"
        ))
        .unwrap_or(HeaderValue::from_static(""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; bookstore_session=tok"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn a_session_needs_both_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("bookstore_session=tok"),
        );
        assert!(from_cookies(&h).is_none());
        let user = URL_SAFE_NO_PAD.encode(br#"{"id":"u1","name":"Ada"}"#);
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("bookstore_user={user}")).unwrap(),
        );
        assert_eq!(from_cookies(&h).unwrap().user.name, "Ada");
    }
}
