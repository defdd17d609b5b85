//! The page shell every page shares, as maud templates (every spliced value is escaped): its
//! landmarks, the notice a redirect asked for, and the error page.

use axum::{http::StatusCode, response::Response};
use maud::{DOCTYPE, Markup, html};

use super::{
    forms::{FormGuard, csrf_field},
    notice::notice,
    respond::html_response,
    session::PageSession,
};
use crate::error::ApiError;

/// What the shell of a page needs besides its content.
pub struct Shell<'a> {
    /// The page's own title (" · Bookstore" follows it).
    pub title: &'a str,
    pub session: Option<&'a PageSession>,
    /// The search box's text.
    pub query: &'a str,
    /// A notice code from the query string, shown at the top of the content (only known codes
    /// show anything).
    pub notice: Option<&'a str>,
    /// One column, without the side panel.
    pub single: bool,
    /// The token every form posts back (see `csrf`).
    pub forms: &'a FormGuard,
}

/// The whole page: `content` inside the shell (skip link, header with search and account,
/// main, footer).
pub fn page(shell: &Shell<'_>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (shell.title) " · Bookstore" }
                link rel="stylesheet" href="/static/site.css";
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.site {
                    a.brand href="/" { "Bookstore" }
                    form role="search" method="get" action="/" {
                        label.visually-hidden for="q" { "Search titles and authors" }
                        input #q type="search" name="q" value=(shell.query)
                            placeholder="Search titles and authors" maxlength="200";
                        button type="submit" { "Search" }
                    }
                    nav.account aria-label="Account" {
                        @if let Some(s) = shell.session {
                            span { "Signed in as " strong { (s.user.name) } }
                            form method="post" action="/signout" {
                                (csrf_field(shell.forms))
                                button.secondary type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/#account" { "Sign in or sign up" }
                        }
                    }
                }
                main #content.(if shell.single { "single" } else { "with-aside" }) {
                    (notice(shell.notice))
                    (content)
                }
                footer {
                    "Catalog: goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0. "
                    "Covers load from an external CDN when it is reachable."
                }
                script src="/static/live.js" defer {}
            }
        }
    }
}

/// A page that says what went wrong, with `err`'s status.
pub fn error_page(err: &ApiError, session: Option<&PageSession>, forms: &FormGuard) -> Response {
    let title = err.status.canonical_reason().unwrap_or("Error");
    let shell = Shell {
        title,
        session,
        query: "",
        notice: None,
        single: true,
        forms,
    };
    let content = html! {
        section {
            h1 { (title) }
            p { (err.detail) }
            p { a href="/" { "Back to the bookstore" } }
        }
    };
    html_response(err.status, page(&shell, content))
}

/// A page with status 200.
pub fn ok(shell: &Shell<'_>, content: Markup) -> Response {
    html_response(StatusCode::OK, page(shell, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_notice_is_an_alert_and_a_success_a_status() {
        let forms = FormGuard::default();
        let shell = |notice| Shell {
            title: "T",
            session: None,
            query: "",
            notice: Some(notice),
            single: false,
            forms: &forms,
        };
        let bad = page(&shell("bad-credentials"), html! {}).into_string();
        assert!(bad.contains(
            r#"<p class="notice error" role="alert">Email or password is incorrect.</p>"#
        ));
        let good = page(&shell("rated"), html! {}).into_string();
        assert!(
            good.contains(r#"<p class="notice" role="status">Thanks: your rating is saved.</p>"#)
        );
        assert!(
            good.contains(r#"<html lang="en">"#)
                && good.contains(r##"<a class="skip" href="#content">"##)
        );
    }
}
