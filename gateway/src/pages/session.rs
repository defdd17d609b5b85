//! Who is signed in on the pages: two `HttpOnly`, `SameSite=Lax` cookies, the bearer token the
//! services check and the name the pages show.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{AppState, api::Session, upstream::Bearer};

const SESSION_COOKIE: &str = "bookstore_session";
const USER_COOKIE: &str = "bookstore_user";

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

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session the request's cookies carry, if they carry a well-formed one.
pub fn from_cookies(headers: &HeaderMap) -> Option<PageSession> {
    let token = Bearer::parse(cookie(headers, SESSION_COOKIE)?)?;
    let raw = URL_SAFE_NO_PAD.decode(cookie(headers, USER_COOKIE)?).ok()?;
    let user = serde_json::from_slice(&raw).ok()?;
    Some(PageSession { token, user })
}

/// The `Set-Cookie` values that start `session` (expiring with its token).
pub fn start(s: &AppState, session: &Session) -> [HeaderValue; 2] {
    let user = SessionUser {
        id: session.user.id.clone(),
        name: session.user.display_name.clone(),
    };
    let secure = if s.cookie_secure { "; Secure" } else { "" };
    let max_age = session.expires_in;
    let token = &session.access_token;
    let user = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&user).unwrap_or_default());
    [
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        ),
        format!("{USER_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"),
    ]
    .map(|c| HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("")))
}

/// The `Set-Cookie` values that end the session in the browser.
pub fn end() -> [HeaderValue; 2] {
    [SESSION_COOKIE, USER_COOKIE].map(|name| {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
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
