//! The pieces the home and book pages both show: covers, book cards, pick lists and the live
//! strip.

use maud::{Markup, html};

use super::text::{Authors, Text, authors, stars, thousands};
use crate::model::{Book, Pick};

/// Books in a side panel or an "also liked" grid.
pub const PANEL_SIZE: i32 = 8;

/// The title without its series, e.g. "The Hunger Games" of "The Hunger Games (The Hunger
/// Games, #1)".
fn short_title(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

/// The cover: a placeholder in a colour of the book's own that carries its title, under the
/// CDN's image when that loads. Hidden from screen readers: the title is always beside it.
pub fn cover(book: &Book, large: bool) -> Markup {
    const HUES: [&str; 12] = [
        "hue-0", "hue-1", "hue-2", "hue-3", "hue-4", "hue-5", "hue-6", "hue-7", "hue-8", "hue-9",
        "hue-10", "hue-11",
    ];
    let hue = HUES[book.id.rem_euclid(12) as usize];
    let title = short_title(&book.title);
    html! {
        div.cover.(hue).large[large] aria-hidden="true" {
            span { (Text(title)) }
            @if book.image_url.starts_with("https://") {
                img src=(Text(&book.image_url)) alt=(Text(title)) data-title=(Text(title)) loading="lazy"
                    decoding="async" referrerpolicy="no-referrer";
            }
        }
    }
}

/// The heading level of the titles in a grid of cards (the page's outline decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardTitle {
    H2,
    H3,
}

/// A book in a grid: cover, title, authors and average rating, all one link.
pub fn card(b: &Book, level: CardTitle) -> Markup {
    html! {
        li.card {
            a href={ "/books/" (b.id) } {
                (cover(b, false))
                @match level {
                    CardTitle::H2 => h2.card-title { (Text(&b.title)) },
                    CardTitle::H3 => h3.card-title { (Text(&b.title)) },
                }
                p { (authors(b)) }
                p { "★ " (stars(b.average_rating)) " · " (thousands(b.ratings_count)) " ratings" }
            }
        }
    }
}

/// A side panel of recommended books under `title`.
pub fn picks(title: &str, picks: &[Pick]) -> Markup {
    html! {
        section.panel aria-labelledby="panel-title" {
            h2 #panel-title { (title) }
            ol.picks {
                @for p in picks {
                    li {
                        a href={ "/books/" (p.book_id) } { (Text(&p.title)) }
                        " "
                        span.muted { (Authors(&p.authors)) }
                        span.why { (Text(&p.reason)) }
                    }
                }
            }
        }
    }
}

/// The "just rated" strip: a placeholder line without JavaScript; `live.js` fills it from the
/// SSE feed (of one book when `book` is given).
pub fn live_strip(book: Option<i64>) -> Markup {
    html! {
        section.live aria-labelledby="live-title" {
            h2 #live-title { "Live ratings" }
            ol #live-feed aria-live="polite" data-book=[book] {
                li.muted { "New ratings appear here as readers rate books." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(title: &str, image_url: &str) -> Book {
        Book {
            id: 7,
            title: title.into(),
            original_title: String::new(),
            authors: vec!["A <b>".into(), "B & C".into()],
            original_publication_year: None,
            isbn: String::new(),
            isbn13: String::new(),
            language_code: String::new(),
            average_rating: 4.0,
            ratings_count: 1234,
            rating_histogram: vec![],
            image_url: image_url.into(),
            small_image_url: String::new(),
        }
    }

    #[test]
    fn titles_and_authors_are_escaped_in_text_and_attributes() {
        let b = book(
            r#"<script>alert(1)</script> "quoted" (Series, #1)"#,
            "https://x/y.jpg?a=1&b=\"2\"",
        );
        let html = card(&b, CardTitle::H2).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains(r#"alt="&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot;""#),
            "{html}"
        );
        assert!(
            html.contains(r#"src="https://x/y.jpg?a=1&amp;b=&quot;2&quot;""#),
            "{html}"
        );
        assert!(html.contains("A &lt;b&gt;, B &amp; C"), "{html}");
    }

    #[test]
    fn a_pick_list_links_each_book_and_escapes_its_title_authors_and_reason() {
        let pick = Pick {
            book_id: 42,
            title: "<i>Dune</i>".into(),
            authors: vec!["Frank <b>".into(), "A & B".into()],
            reason: "Because you liked \"Emma\"".into(),
        };
        let html = picks("Popular now", &[pick]).into_string();
        assert!(
            html.contains(r#"<a href="/books/42">&lt;i&gt;Dune&lt;/i&gt;</a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="muted">Frank &lt;b&gt;, A &amp; B</span>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="why">Because you liked &quot;Emma&quot;</span>"#),
            "{html}"
        );
    }

    #[test]
    fn a_cover_without_an_https_image_is_only_the_placeholder() {
        let html = cover(&book("Dune", "http://insecure/x.jpg"), true).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.starts_with(r#"<div class="cover hue-7 large" aria-hidden="true">"#),
            "{html}"
        );
    }

    #[test]
    fn the_live_strip_names_its_book_only_on_book_pages() {
        assert!(
            live_strip(Some(42))
                .into_string()
                .contains(r#"id="live-feed" aria-live="polite" data-book="42""#)
        );
        assert!(!live_strip(None).into_string().contains("data-book"));
    }
}
