//! `/books/{id}`: the book, its ratings by stars, the rating form (signed in) and "readers who
//! liked this also liked"; and the rating form's POST routes.

use axum::{
    Form,
    extract::{Path, Query, State, rejection::FormRejection, rejection::QueryRejection},
    http::HeaderMap,
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use tonic::Code;

use super::{
    cards::{CardTitle, PANEL_SIZE, card, cover, live_strip},
    forms::{FormGuard, csrf_field},
    layout::{self, Shell, error_page},
    respond::see_other,
    session,
    text::{authors, stars, thousands},
};
use crate::{
    error::ApiError,
    model::{Book, BookView},
    state::AppState,
};

#[derive(Debug, Deserialize, Default)]
pub struct BookQuery {
    notice: Option<String>,
}

/// `/books/{id}`: the book and "also liked", fetched concurrently.
pub async fn book(
    State(s): State<AppState>,
    forms: FormGuard,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    query: Result<Query<BookQuery>, QueryRejection>,
) -> Response {
    let Query(q) = query.unwrap_or_default();
    let sess = session::from_cookies(&headers);
    let Ok(id) = raw_id.parse::<i64>() else {
        return error_page(
            &ApiError::bad_request(format!("{raw_id:?} is not a book id")),
            sess.as_ref(),
            &forms,
        );
    };
    let d = s.deadline();
    let catalog = s.marketplace().within(d);
    let main = catalog.get_book(id);
    // Shown as cards (cover, average rating), which only the marketplace's books carry: joined,
    // where the home page's panel lists the picks by the names they come with.
    let similar = async {
        let cap = s.optional_timeout;
        s.recommendations()
            .within(d)
            .capped(cap)
            .similar(id, PANEL_SIZE)
            .await?
            .with_books(&s.marketplace().within(d).capped(cap), BookView::Basic)
            .await
    };
    let (main, similar) = tokio::join!(main, similar);
    let book = match main {
        Ok(b) => b,
        Err(e) => return error_page(&e, sess.as_ref(), &forms),
    };
    let content = html! {
        section aria-labelledby="book-title" {
            div.book {
                (cover(&book, true))
                div.about {
                    h1 #book-title { (book.title) }
                    p { "by " (authors(&book)) }
                    (facts(&book))
                    (histogram(&book))
                    @if sess.is_some() {
                        (rating_forms(book.id, &forms))
                    } @else {
                        p { a href="/#account" { "Sign in" } " to rate this book." }
                    }
                }
            }
            @match &similar {
                Ok(recs) if !recs.is_empty() => {
                    h2 { "Readers who liked this also liked" }
                    ul.grid {
                        @for r in recs {
                            (card(&r.book, CardTitle::H3))
                        }
                    }
                }
                Ok(_) => p.muted { "No reader has rated this book beside others yet: rate it to help." },
                Err(_) => {},
            }
        }
        aside {
            (live_strip(Some(book.id)))
        }
    };
    if let Err(e) = &similar {
        tracing::warn!(status = %e.status, "also-liked section left out");
    }
    let shell = Shell {
        title: &book.title,
        session: sess.as_ref(),
        query: "",
        notice: q.notice.as_deref(),
        single: false,
        forms: &forms,
    };
    layout::ok(&shell, content)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

/// Publication year, average rating, ISBN and language.
fn facts(book: &Book) -> Markup {
    let year = book
        .original_publication_year
        .map(|y| {
            if y < 0 {
                format!("{} BCE", -i64::from(y))
            } else {
                y.to_string()
            }
        })
        .unwrap_or_else(|| "unknown".into());
    html! {
        dl {
            dt { "First published" } dd { (year) }
            dt { "Average rating" }
            dd { "★ " (stars(book.average_rating)) " from " (thousands(book.ratings_count)) " ratings" }
            dt { "ISBN-13" } dd { (or_unknown(&book.isbn13)) }
            dt { "Language" } dd { (or_unknown(&book.language_code)) }
        }
    }
}

/// The share of each star count, five stars first.
fn histogram(book: &Book) -> Markup {
    let total: i64 = book.rating_histogram.iter().sum::<i64>().max(1);
    html! {
        ul.histogram aria-label="Ratings by stars" {
            @for (i, n) in book.rating_histogram.iter().enumerate().rev() {
                @let stars = i + 1;
                @let pct = (*n as f64 * 100.0 / total as f64).round();
                li {
                    span { (stars) " ★" }
                    meter min="0" max="100" value=(pct) aria-label={ (stars) @if stars == 1 { " star" } @else { " stars" } ": " (pct) "% of ratings" } { (pct) "%" }
                    span { (thousands(*n)) }
                }
            }
        }
    }
}

/// The signed-in reader's forms: 1 to 5 stars, or no rating.
fn rating_forms(id: i64, forms: &FormGuard) -> Markup {
    html! {
        form method="post" action={ "/books/" (id) "/rating" } {
            (csrf_field(forms))
            fieldset.stars {
                legend { "Your rating" }
                @for n in rules::books::STARS_MIN..=rules::books::STARS_MAX {
                    label {
                        input type="radio" name="stars" value=(n) required;
                        " " (n) span aria-hidden="true" { " ★" }
                        span.visually-hidden { @if n == 1 { " star" } @else { " stars" } }
                    }
                }
            }
            button type="submit" { "Save rating" }
        }
        form method="post" action={ "/books/" (id) "/rating/delete" } {
            (csrf_field(forms))
            button.secondary type="submit" { "Remove my rating" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RatingForm {
    stars: i32,
}

/// POST `/books/{id}/rating`.
pub async fn rate(
    State(s): State<AppState>,
    forms: FormGuard,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<Form<RatingForm>, FormRejection>,
) -> Response {
    let back = |notice: &str| see_other(&format!("/books/{id}?notice={notice}"));
    let Some(sess) = session::from_cookies(&headers) else {
        return back("sign-in-to-rate");
    };
    let Ok(Form(f)) = form else {
        return back("invalid-rating");
    };
    match s
        .recommendations()
        .rate(Some(&sess.token), id, f.stars)
        .await
    {
        Ok(_) => back("rated"),
        Err(e) if e.grpc_code == Some(Code::InvalidArgument) => back("invalid-rating"),
        Err(e) if e.grpc_code == Some(Code::Unauthenticated) => back("sign-in-to-rate"),
        Err(e) if e.grpc_code == Some(Code::NotFound) => error_page(&e, Some(&sess), &forms),
        Err(_) => back("unavailable"),
    }
}

/// POST `/books/{id}/rating/delete`.
pub async fn unrate(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let back = |notice: &str| see_other(&format!("/books/{id}?notice={notice}"));
    let Some(sess) = session::from_cookies(&headers) else {
        return back("sign-in-to-rate");
    };
    match s
        .recommendations()
        .delete_rating(Some(&sess.token), id)
        .await
    {
        Ok(()) => back("unrated"),
        Err(e) if e.grpc_code == Some(Code::NotFound) => back("not-rated"),
        Err(e) if e.grpc_code == Some(Code::Unauthenticated) => back("sign-in-to-rate"),
        Err(_) => back("unavailable"),
    }
}
