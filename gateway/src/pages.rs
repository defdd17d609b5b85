//! The marketplace pages, rendered on the server and usable without JavaScript: `/` (search,
//! paginated grid, a "for you" or "popular now" panel, sign-up and sign-in) and `/books/{id}`
//! (the book, its rating form, "readers who liked this also liked"). Each page is one concurrent
//! fan-out; an optional section whose service fails is left out instead of failing the page.

use std::fmt::Write;

use axum::{
    Form, Router,
    extract::{
        Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use protos::marketplace::v1 as mp;
use serde::{Deserialize, Serialize};
use tonic::Code;

use crate::{
    AppState,
    api::{Book, Recommendation},
    error::{self, ApiError},
    rate_limit::ClientIp,
    upstream::Bearer,
};

const SESSION_COOKIE: &str = "bookstore_session";
const USER_COOKIE: &str = "bookstore_user";
const GRID_PAGE: i32 = 24;
const PANEL_SIZE: i32 = 8;

const CSS: &str = include_str!("../static/site.css");
const LIVE_JS: &str = include_str!("../static/live.js");
const CSP: &str = "default-src 'self'; img-src 'self' https://images.gr-assets.com https://s.gr-assets.com; \
     style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Who is signed in, as the cookies say. The token is what the services check; the name is
/// only shown.
#[derive(Clone, Debug)]
pub struct PageSession {
    pub token: Bearer,
    pub user: SessionUser,
}

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

fn session(headers: &HeaderMap) -> Option<PageSession> {
    let token = Bearer::parse(cookie(headers, SESSION_COOKIE)?)?;
    let raw = URL_SAFE_NO_PAD.decode(cookie(headers, USER_COOKIE)?).ok()?;
    let user = serde_json::from_slice(&raw).ok()?;
    Some(PageSession { token, user })
}

fn session_cookies(
    s: &AppState,
    token: &str,
    user: &SessionUser,
    max_age: i64,
) -> [HeaderValue; 2] {
    let secure = if s.cookie_secure { "; Secure" } else { "" };
    let user = URL_SAFE_NO_PAD.encode(serde_json::to_vec(user).unwrap_or_default());
    [
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        ),
        format!("{USER_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"),
    ]
    .map(|c| HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("")))
}

fn clear_cookies() -> [HeaderValue; 2] {
    [SESSION_COOKIE, USER_COOKIE].map(|name| {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        ))
        .unwrap_or(HeaderValue::from_static(""))
    })
}

/// Messages a redirect can ask a page to show (fixed texts: nothing from the URL is echoed).
fn notice_text(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "signed-in" => ("Welcome back: you are signed in.", false),
        "signed-up" => ("Your account is ready and you are signed in.", false),
        "signed-out" => ("You are signed out.", false),
        "rated" => ("Thanks: your rating is saved.", false),
        "unrated" => ("Your rating is removed.", false),
        "bad-credentials" => ("Email or password is incorrect.", true),
        "email-taken" => (
            "An account with this email already exists. Sign in instead?",
            true,
        ),
        "invalid-signup" => (
            "Check the form: a valid email, a name of 1 to 64 characters and a password of 8 to 128 characters.",
            true,
        ),
        "invalid-rating" => ("Choose 1 to 5 stars.", true),
        "too-many-attempts" => (
            "Too many sign-in attempts from here: wait a minute and try again.",
            true,
        ),
        "sign-in-to-rate" => ("Sign in to rate books.", true),
        "not-rated" => ("You had not rated this book.", true),
        "unavailable" => (
            "That did not work: a service is unavailable. Try again shortly.",
            true,
        ),
        _ => return None,
    })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
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

fn layout(
    title: &str,
    session: Option<&PageSession>,
    query: &str,
    notice: Option<&str>,
    main_class: &str,
    body: &str,
) -> String {
    let account = match session {
        Some(s) => format!(
            r#"<span>Signed in as <strong>{}</strong></span><form method="post" action="/signout"><button class="secondary" type="submit">Sign out</button></form>"#,
            esc(&s.user.name)
        ),
        None => r##"<a href="/#account">Sign in or sign up</a>"##.to_owned(),
    };
    let notice = notice
        .and_then(notice_text)
        .map(|(text, is_error)| {
            format!(
                r#"<p class="notice{}" role="status">{}</p>"#,
                if is_error { " error" } else { "" },
                esc(text)
            )
        })
        .unwrap_or_default();
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Bookstore</title>
<link rel="stylesheet" href="/static/site.css">
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="site">
<a class="brand" href="/">Bookstore</a>
<form role="search" method="get" action="/"><input type="search" name="q" value="{query}" placeholder="Search titles and authors" aria-label="Search titles and authors" maxlength="200"><button type="submit">Search</button></form>
<div class="account">{account}</div>
</header>
<main id="content" class="{main_class}">
{notice}{body}
</main>
<footer>Catalog: goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0. Covers load from an external CDN when it is reachable.</footer>
<script src="/static/live.js" defer></script>
</body>
</html>
"##,
        title = esc(title),
        query = esc(query),
    )
}

/// A deterministic placeholder colour per book, so a missing cover still looks intended.
fn cover(book: &Book, class: &str) -> String {
    let hue = book.id.rem_euclid(12);
    let title = esc(short_title(&book.title));
    let img = if book.image_url.starts_with("https://") {
        format!(
            r#"<img src="{}" alt="" data-title="{title}" loading="lazy" decoding="async" referrerpolicy="no-referrer">"#,
            esc(&book.image_url)
        )
    } else {
        String::new()
    };
    format!(
        r#"<div class="cover {class} hue-{hue}" aria-hidden="true"><span>{title}</span>{img}</div>"#
    )
}

fn short_title(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

fn authors(b: &Book) -> String {
    esc(&b.authors.join(", "))
}

fn card(b: &Book) -> String {
    format!(
        r#"<li class="card"><a href="/books/{id}">{cover}<h3>{title}</h3><p>{authors}</p><p>★ {avg:.2} · {count} ratings</p></a></li>"#,
        id = b.id,
        cover = cover(b, ""),
        title = esc(&b.title),
        authors = authors(b),
        avg = b.average_rating,
        count = thousands(b.ratings_count),
    )
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn picks(title: &str, recs: &[Recommendation]) -> String {
    let mut out = format!(
        r#"<section class="panel" aria-labelledby="panel-title"><h2 id="panel-title">{}</h2><ol class="picks">"#,
        esc(title)
    );
    for r in recs {
        let _ = write!(
            out,
            r#"<li><a href="/books/{}">{}</a> <span class="muted">{}</span><span class="why">{}</span></li>"#,
            r.book.id,
            esc(&r.book.title),
            authors(&r.book),
            esc(&r.reason)
        );
    }
    out.push_str("</ol></section>");
    out
}

const LIVE_STRIP: &str = r#"<section class="live" aria-labelledby="live-title"><h2 id="live-title">Live ratings</h2><ol id="live-feed" aria-live="polite"{book}><li class="muted">New ratings appear here as readers rate books.</li></ol></section>"#;

fn live_strip(book: Option<i64>) -> String {
    LIVE_STRIP.replace(
        "{book}",
        &book
            .map(|b| format!(r#" data-book="{b}""#))
            .unwrap_or_default(),
    )
}

fn account_forms() -> &'static str {
    r#"<section id="account" aria-labelledby="signin-title"><h2 id="signin-title">Sign in</h2>
<form class="stack" method="post" action="/signin">
<label>Email <input type="email" name="email" autocomplete="username" required maxlength="254"></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required maxlength="128"></label>
<button type="submit">Sign in</button></form></section>
<section aria-labelledby="signup-title"><h2 id="signup-title">New here? Sign up</h2>
<form class="stack" method="post" action="/signup">
<label>Email <input type="email" name="email" autocomplete="email" required maxlength="254"></label>
<label>Name <input type="text" name="display_name" autocomplete="nickname" required maxlength="64"></label>
<label>Password (8 or more characters) <input type="password" name="password" autocomplete="new-password" required minlength="8" maxlength="128"></label>
<button type="submit">Create account</button></form></section>"#
}

fn error_page(err: &ApiError, session: Option<&PageSession>) -> Response {
    let title = err.status.canonical_reason().unwrap_or("Error");
    let body = format!(
        r#"<section><h1>{}</h1><p>{}</p><p><a href="/">Back to the bookstore</a></p></section>"#,
        esc(title),
        esc(&err.detail)
    );
    html(
        err.status,
        layout(title, session, "", None, "single", &body),
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct HomeQuery {
    q: Option<String>,
    page_token: Option<String>,
    notice: Option<String>,
}

/// `/`: the grid (list or search) and the side panel, fetched concurrently.
pub async fn home(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Response {
    let Query(q) = query.unwrap_or_default();
    let sess = session(&headers);
    let search =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    let page_token = q.page_token.clone().unwrap_or_default();
    let d = s.deadline();

    let grid = async {
        let mut client = s.upstreams.marketplace.clone();
        let r = match &search {
            Some(text) => {
                let req = d
                    .call(
                        mp::SearchBooksRequest {
                            query: text.clone(),
                            page_size: GRID_PAGE,
                            page_token: page_token.clone(),
                        },
                        None,
                    )
                    .map_err(error::marketplace)?;
                let r = client
                    .search_books(req)
                    .await
                    .map_err(error::marketplace)?
                    .into_inner();
                (r.books, r.next_page_token, r.total_size)
            }
            None => {
                let req = d
                    .call(
                        mp::ListBooksRequest {
                            page_size: GRID_PAGE,
                            page_token: page_token.clone(),
                        },
                        None,
                    )
                    .map_err(error::marketplace)?;
                let r = client
                    .list_books(req)
                    .await
                    .map_err(error::marketplace)?
                    .into_inner();
                (r.books, r.next_page_token, r.total_size)
            }
        };
        Ok::<_, ApiError>(r)
    };
    let panel = async {
        let cap = s.optional_timeout;
        match &sess {
            Some(me) => match s.for_me(d, cap, Some(&me.token), PANEL_SIZE).await {
                Ok(recs) => Ok(("Recommended for you", recs, false)),
                // The session is no longer accepted: show what everybody sees, drop the cookie.
                Err(e) if e.grpc_code == Some(Code::Unauthenticated) => {
                    let (recs, _) = s.popular(d, cap, PANEL_SIZE, String::new()).await?;
                    Ok(("Popular now", recs, true))
                }
                Err(e) => Err(e),
            },
            None => {
                let (recs, _) = s.popular(d, cap, PANEL_SIZE, String::new()).await?;
                Ok::<_, ApiError>(("Popular now", recs, false))
            }
        }
    };
    let (grid, panel) = tokio::join!(grid, panel);

    // A session the services no longer accept is dropped.
    let expired = matches!(&panel, Ok((_, _, true)));
    let sess = if expired { None } else { sess };
    let mut status = StatusCode::OK;
    let mut content = String::new();
    match grid {
        Ok((books, next, total)) => {
            let heading = match &search {
                Some(text) => format!(
                    "{} results for “{}”",
                    thousands(i64::from(total)),
                    esc(text)
                ),
                None => "Most read books".to_owned(),
            };
            let _ = write!(
                content,
                r#"<section aria-labelledby="grid-title"><h1 id="grid-title">{heading}</h1>"#
            );
            if books.is_empty() {
                content.push_str(r#"<p>No books match. Try fewer or shorter words.</p>"#);
            } else {
                content.push_str(r#"<ul class="grid">"#);
                for b in books {
                    content.push_str(&card(&Book::from(b)));
                }
                content.push_str("</ul>");
            }
            let q_param = search
                .as_deref()
                .map(|t| format!("q={}&", url_encode(t)))
                .unwrap_or_default();
            content.push_str(r#"<nav class="pager" aria-label="Pages">"#);
            if !page_token.is_empty() {
                let _ = write!(
                    content,
                    r#"<a href="/?{}">First page</a>"#,
                    esc(q_param.trim_end_matches('&'))
                );
            }
            if !next.is_empty() {
                let _ = write!(
                    content,
                    r#"<a rel="next" href="/?{}page_token={}">Next page</a>"#,
                    esc(&q_param),
                    url_encode(&next)
                );
            }
            content.push_str("</nav></section>");
        }
        Err(e) => {
            status = e.status;
            let _ = write!(
                content,
                r#"<section><h1>{}</h1><p>{}</p><p><a href="/">Start again</a></p></section>"#,
                if e.status.is_client_error() {
                    "That search did not work"
                } else {
                    "The catalog is unavailable"
                },
                esc(&e.detail)
            );
        }
    }
    let mut aside = String::from("<aside>");
    match &panel {
        Ok((title, recs, _)) if !recs.is_empty() => aside.push_str(&picks(title, recs)),
        Ok(_) => {}
        Err(e) => tracing::warn!(status = %e.status, "recommendations panel left out"),
    }
    aside.push_str(&live_strip(None));
    if sess.is_none() {
        aside.push_str(account_forms());
    }
    aside.push_str("</aside>");
    content.push_str(&aside);

    let title = search.as_deref().unwrap_or("Discover books");
    let page = layout(
        title,
        sess.as_ref(),
        search.as_deref().unwrap_or(""),
        q.notice.as_deref(),
        "",
        &content,
    );
    let mut response = html(status, page);
    if expired {
        for c in clear_cookies() {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    response
}

#[derive(Debug, Deserialize, Default)]
pub struct BookQuery {
    notice: Option<String>,
}

/// `/books/{id}`: the book and "also liked", fetched concurrently.
pub async fn book(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    query: Result<Query<BookQuery>, QueryRejection>,
) -> Response {
    let Query(q) = query.unwrap_or_default();
    let sess = session(&headers);
    let Ok(id) = raw_id.parse::<i64>() else {
        return error_page(
            &ApiError::bad_request(format!("{raw_id:?} is not a book id")),
            sess.as_ref(),
        );
    };
    let d = s.deadline();
    let main = async {
        let req = d
            .call(mp::GetBookRequest { id }, None)
            .map_err(error::marketplace)?;
        let b = s
            .upstreams
            .marketplace
            .clone()
            .get_book(req)
            .await
            .map_err(error::marketplace)?;
        b.into_inner()
            .book
            .map(Book::from)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "the catalog sent no book"))
    };
    let similar = s.similar(d, s.optional_timeout, id, PANEL_SIZE);
    let (main, similar) = tokio::join!(main, similar);
    let book = match main {
        Ok(b) => b,
        Err(e) => return error_page(&e, sess.as_ref()),
    };

    let mut body = String::new();
    let year = book
        .original_publication_year
        .map(|y| {
            if y < 0 {
                format!("{} BCE", -y)
            } else {
                y.to_string()
            }
        })
        .unwrap_or_else(|| "unknown".into());
    let total: i64 = book.rating_histogram.iter().sum::<i64>().max(1);
    let mut hist = String::from(r#"<ul class="histogram" aria-label="Ratings by stars">"#);
    for (i, n) in book.rating_histogram.iter().enumerate().rev() {
        let pct = (*n as f64 * 100.0 / total as f64).round();
        let _ = write!(
            hist,
            r#"<li><span>{} ★</span><meter min="0" max="100" value="{pct}">{pct}%</meter><span>{}</span></li>"#,
            i + 1,
            thousands(*n)
        );
    }
    hist.push_str("</ul>");
    let rate_form = if sess.is_some() {
        let mut f = format!(
            r#"<form method="post" action="/books/{}/rating"><fieldset class="stars"><legend>Your rating</legend>"#,
            book.id
        );
        for n in 1..=5 {
            let _ = write!(
                f,
                r#"<label><input type="radio" name="stars" value="{n}" required> {n} ★</label>"#
            );
        }
        let _ = write!(
            f,
            r#"</fieldset><button type="submit">Save rating</button></form><form method="post" action="/books/{}/rating/delete"><button class="secondary" type="submit">Remove my rating</button></form>"#,
            book.id
        );
        f
    } else {
        r##"<p><a href="/#account">Sign in</a> to rate this book.</p>"##.to_owned()
    };
    let _ = write!(
        body,
        r#"<section aria-labelledby="book-title"><div class="book">{cover}<div><h1 id="book-title">{title}</h1><p>by {authors}</p>
<dl><dt>First published</dt><dd>{year}</dd><dt>Average rating</dt><dd>★ {avg:.2} from {count} ratings</dd><dt>ISBN-13</dt><dd>{isbn13}</dd><dt>Language</dt><dd>{lang}</dd></dl>
{hist}{rate_form}</div></div>"#,
        cover = cover(&book, "large"),
        title = esc(&book.title),
        authors = authors(&book),
        avg = book.average_rating,
        count = thousands(book.ratings_count),
        isbn13 = if book.isbn13.is_empty() {
            "unknown".to_owned()
        } else {
            esc(&book.isbn13)
        },
        lang = if book.language_code.is_empty() {
            "unknown".to_owned()
        } else {
            esc(&book.language_code)
        },
    );
    match &similar {
        Ok(recs) if !recs.is_empty() => {
            body.push_str(r#"<h2>Readers who liked this also liked</h2><ul class="grid">"#);
            for r in recs {
                body.push_str(&card(&r.book));
            }
            body.push_str("</ul>");
        }
        Ok(_) => body.push_str(r#"<p class="muted">No reader has rated this book beside others yet: rate it to help.</p>"#),
        Err(e) => tracing::warn!(status = %e.status, "also-liked section left out"),
    }
    body.push_str("</section><aside>");
    body.push_str(&live_strip(Some(book.id)));
    body.push_str("</aside>");
    html(
        StatusCode::OK,
        layout(
            &book.title,
            sess.as_ref(),
            "",
            q.notice.as_deref(),
            "",
            &body,
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: String,
    display_name: String,
    password: String,
}

#[derive(Debug, Deserialize)]
pub struct RatingForm {
    stars: i32,
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn signed_in(s: &AppState, session: crate::api::Session, to: &str) -> Response {
    let user = SessionUser {
        id: session.user.id,
        name: session.user.display_name,
    };
    let mut r = see_other(to);
    for c in session_cookies(s, &session.access_token, &user, session.expires_in) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

fn notice_for(e: &ApiError) -> &'static str {
    match e.grpc_code {
        Some(Code::Unauthenticated) => "bad-credentials",
        Some(Code::AlreadyExists) => "email-taken",
        Some(Code::InvalidArgument) => "invalid-signup",
        _ => "unavailable",
    }
}

/// POST `/signin`.
pub async fn sign_in(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return see_other("/?notice=bad-credentials#account");
    };
    if s.auth_attempt(client).is_err() {
        return see_other("/?notice=too-many-attempts#account");
    }
    match s.sign_in(f.email, f.password).await {
        Ok(session) => signed_in(&s, session, "/?notice=signed-in"),
        Err(e) => see_other(&format!("/?notice={}#account", notice_for(&e))),
    }
}

/// POST `/signup`: creates the account, then signs in.
pub async fn sign_up(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return see_other("/?notice=invalid-signup#account");
    };
    if s.auth_attempt(client).is_err() {
        return see_other("/?notice=too-many-attempts#account");
    }
    if let Err(e) = s
        .create_user(f.email.clone(), f.display_name, f.password.clone())
        .await
    {
        return see_other(&format!("/?notice={}#account", notice_for(&e)));
    }
    match s.sign_in(f.email, f.password).await {
        Ok(session) => signed_in(&s, session, "/?notice=signed-up"),
        Err(e) => see_other(&format!("/?notice={}#account", notice_for(&e))),
    }
}

/// POST `/signout`: ends the session's token (not only the cookie), then drops the cookies.
pub async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(sess) = session(&headers)
        && let Err(e) = s.sign_out(Some(&sess.token)).await
    {
        // An already ended or expired token is signed out; anything else is worth a line.
        if e.grpc_code != Some(Code::Unauthenticated) {
            tracing::warn!(
                status = e.status.as_u16(),
                "sign-out could not end the token"
            );
        }
    }
    let mut r = see_other("/?notice=signed-out");
    for c in clear_cookies() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// POST `/books/{id}/rating`.
pub async fn rate(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    form: Result<Form<RatingForm>, FormRejection>,
) -> Response {
    let back = |notice: &str| see_other(&format!("/books/{id}?notice={notice}"));
    let Some(sess) = session(&headers) else {
        return back("sign-in-to-rate");
    };
    let Ok(Form(f)) = form else {
        return back("invalid-rating");
    };
    match s.rate(Some(&sess.token), id, f.stars).await {
        Ok(_) => back("rated"),
        Err(e) if e.grpc_code == Some(Code::InvalidArgument) => back("invalid-rating"),
        Err(e) if e.grpc_code == Some(Code::Unauthenticated) => back("sign-in-to-rate"),
        Err(e) if e.grpc_code == Some(Code::NotFound) => error_page(&e, Some(&sess)),
        Err(_) => back("unavailable"),
    }
}

/// POST `/books/{id}/rating/delete`.
pub async fn unrate(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Response {
    let back = |notice: &str| see_other(&format!("/books/{id}?notice={notice}"));
    let Some(sess) = session(&headers) else {
        return back("sign-in-to-rate");
    };
    match s.unrate(Some(&sess.token), id).await {
        Ok(()) => back("unrated"),
        Err(e) if e.grpc_code == Some(Code::NotFound) => back("not-rated"),
        Err(e) if e.grpc_code == Some(Code::Unauthenticated) => back("sign-in-to-rate"),
        Err(_) => back("unavailable"),
    }
}

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

async fn not_found_page(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if crate::api::is_api_path(uri.path()) {
        return crate::api::not_found().await.into_response();
    }
    error_page(
        &ApiError::new(StatusCode::NOT_FOUND, "There is no page here."),
        session(&headers).as_ref(),
    )
}

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/books/{id}", get(book))
        .route("/books/{id}/rating", post(rate))
        .route("/books/{id}/rating/delete", post(unrate))
        .route("/signin", post(sign_in))
        .route("/signup", post(sign_up))
        .route("/signout", post(sign_out))
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
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<a href="x">O'Brien & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Brien &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(4942365), "4,942,365");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn unknown_notice_codes_show_nothing() {
        assert!(notice_text("<script>").is_none());
        assert!(notice_text("rated").is_some());
    }

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
}
