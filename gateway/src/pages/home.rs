//! `/`: the grid of books (the catalog, most read first, or a search's results), a page at a
//! time, beside the "Recommended for you" or "Popular now" panel, the live strip and, for
//! visitors, the sign-in and sign-up forms.

use std::sync::Arc;

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use tonic::Code;

use super::{
    cards::{CardTitle, PANEL_SIZE, card, live_strip, picks},
    forms::{FormGuard, csrf_field},
    layout::{self, Shell},
    notice,
    respond::html_response,
    session,
    text::thousands,
};
use crate::{
    error::ApiError,
    model::{BookPage, BookView, Pick},
    state::AppState,
};

/// Books in one page of the home grid.
const GRID_PAGE: i32 = 24;

#[derive(Debug, Deserialize, Default)]
pub struct HomeQuery {
    q: Option<String>,
    page_token: Option<String>,
    notice: Option<String>,
}

/// The side panel's heading, its picks, and whether the session turned out to be over.
type Panel = (&'static str, Arc<[Pick]>, bool);

/// `/`: the grid (list or search) and the side panel, fetched concurrently.
pub async fn home(
    State(s): State<AppState>,
    forms: FormGuard,
    headers: HeaderMap,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Response {
    let Query(q) = query.unwrap_or_default();
    let sess = session::from_cookies(&headers);
    let search =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    let page_token = q.page_token.clone().unwrap_or_default();
    let d = s.deadline();

    let grid = async {
        let catalog = s.marketplace().within(d);
        match &search {
            Some(text) => catalog
                .search_books(text.clone(), GRID_PAGE, page_token.clone(), BookView::Basic)
                .await
                .map(Arc::new),
            None => {
                let list = async {
                    catalog
                        .list_books(GRID_PAGE, page_token.clone(), BookView::Basic)
                        .await
                        .map(Arc::new)
                };
                // The first page is the same for every reader: kept a moment (see `Kept`).
                if page_token.is_empty() {
                    s.first_grid.get(list).await
                } else {
                    list.await
                }
            }
        }
    };
    let panel = async {
        let recs = s.recommendations().within(d).capped(s.optional_timeout);
        let catalog = s.marketplace().within(d).capped(s.optional_timeout);
        // Shared by every visitor: kept a moment (see `Kept`).
        let popular = s.popular_panel.get(async {
            recs.popular(PANEL_SIZE, String::new())
                .await?
                .for_pages(&catalog)
                .await
                .map(Arc::from)
        });
        match &sess {
            Some(me) => match recs.for_me(Some(&me.token), PANEL_SIZE).await {
                Ok(picks) => Ok((
                    "Recommended for you",
                    picks.for_pages(&catalog).await?.into(),
                    false,
                )),
                // The session is no longer accepted: show what everybody sees, drop the cookie.
                Err(e) if e.grpc_code == Some(Code::Unauthenticated) => {
                    Ok(("Popular now", popular.await?, true))
                }
                Err(e) => Err(e),
            },
            None => Ok::<Panel, ApiError>(("Popular now", popular.await?, false)),
        }
    };
    let (grid, panel) = tokio::join!(grid, panel);

    // A session the services no longer accept is dropped.
    let expired = matches!(&panel, Ok((_, _, true)));
    let sess = if expired { None } else { sess };
    let status = grid.as_ref().err().map_or(StatusCode::OK, |e| e.status);
    if let Err(e) = &panel {
        tracing::warn!(status = %e.status, "recommendations panel left out");
    }
    // A form's outcome is shown beside the forms, where its redirect (`#account`) lands.
    let (account_notice, page_notice) = match q.notice.as_deref() {
        Some(code) if sess.is_none() && notice::is_account_notice(code) => (Some(code), None),
        code => (None, code),
    };
    let content = html! {
        @match &grid {
            Ok(page) => (grid_section(search.as_deref(), &page_token, page)),
            Err(e) => (grid_failed(e)),
        }
        aside {
            @if let Ok((title, recs, _)) = &panel && !recs.is_empty() {
                (picks(title, recs))
            }
            (live_strip(None))
            @if sess.is_none() {
                (account_forms(account_notice, &forms))
            }
        }
    };
    let shell = Shell {
        title: search.as_deref().unwrap_or("Discover books"),
        session: sess.as_ref(),
        query: search.as_deref().unwrap_or(""),
        notice: page_notice,
        single: false,
        forms: &forms,
    };
    let mut response = html_response(status, layout::page(&shell, content));
    if expired {
        for c in session::end(forms.secure) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    response
}

/// The grid of one page of books, its heading and its paging links.
fn grid_section(search: Option<&str>, page_token: &str, page: &BookPage) -> Markup {
    let first = match search {
        Some(text) => format!("/?q={}", url_encode(text)),
        None => "/".to_owned(),
    };
    let next = page.next_page_token.as_deref().map(|next| match search {
        Some(text) => format!("/?q={}&page_token={}", url_encode(text), url_encode(next)),
        None => format!("/?page_token={}", url_encode(next)),
    });
    let paged = !page_token.is_empty() || next.is_some();
    html! {
        section aria-labelledby="grid-title" {
            h1 #grid-title {
                @match search {
                    Some(text) => { (thousands(i64::from(page.total_size))) " results for “" (text) "”" },
                    None => "Most read books",
                }
            }
            @if page.books.is_empty() {
                p { "No books match. Try fewer or shorter words." }
            } @else {
                ul.grid {
                    @for b in &page.books {
                        (card(b, CardTitle::H2))
                    }
                }
            }
            @if paged {
                nav.pager aria-label="Pages" {
                    @if !page_token.is_empty() {
                        a rel="first" href=(first) { "First page" }
                    }
                    @if let Some(next) = &next {
                        a rel="next" href=(next) { "Next page" }
                    }
                }
            }
        }
    }
}

/// What the grid says when the catalog could not answer.
fn grid_failed(e: &ApiError) -> Markup {
    html! {
        section {
            h1 {
                @if e.status.is_client_error() {
                    "That search did not work"
                } @else {
                    "The catalog is unavailable"
                }
            }
            p { (e.detail) }
            p { a href="/" { "Start again" } }
        }
    }
}

/// The sign-in and sign-up forms (for visitors), after the outcome of the last attempt.
fn account_forms(notice: Option<&str>, forms: &FormGuard) -> Markup {
    html! {
        section #account aria-labelledby="signin-title" {
            (notice::notice(notice))
            h2 #signin-title { "Sign in" }
            form.stack method="post" action="/signin" {
                (csrf_field(forms))
                label { "Email" input type="email" name="email" autocomplete="username" required maxlength="254"; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required maxlength="128"; }
                button type="submit" { "Sign in" }
            }
        }
        section aria-labelledby="signup-title" {
            h2 #signup-title { "New here? Sign up" }
            form.stack method="post" action="/signup" {
                (csrf_field(forms))
                label { "Email" input type="email" name="email" autocomplete="email" required maxlength="254"; }
                label { "Name" input type="text" name="display_name" autocomplete="nickname" required maxlength="64"; }
                label {
                    "Password (8 or more characters)"
                    input type="password" name="password" autocomplete="new-password" required minlength="8" maxlength="128";
                }
                button type="submit" { "Create account" }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_encode("Az09-_.~"), "Az09-_.~");
    }
}
