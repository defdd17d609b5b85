//! What every page shares, as maud templates (every spliced value is escaped): the page shell
//! with its landmarks, the notices a redirect can ask for, the error page, and the pieces the
//! home and book pages both show (covers, book cards, pick lists, the live strip). The values
//! repeated on every card (titles, authors, cover addresses, reasons) are spliced as [`Text`],
//! which escapes the same characters as maud, faster.

use axum::{http::StatusCode, response::Response};
use maud::{DOCTYPE, Markup, html};

use super::{
    csrf::{self, FormGuard},
    html_response,
    session::PageSession,
};
use crate::{
    error::ApiError,
    model::{Book, Pick},
};

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

/// The hidden field that proves a form came from this site's own page (see `csrf`).
pub fn csrf_field(forms: &FormGuard) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(forms.token); }
}

/// Messages a redirect can ask a page to show (fixed texts: nothing from the URL is echoed);
/// `true` for the ones that report a problem.
pub fn notice_text(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "signed-in" => ("Welcome back: you are signed in.", false),
        "signed-up" => ("Your account is ready and you are signed in.", false),
        "signed-out" => ("You are signed out.", false),
        "rated" => ("Thanks: your rating is saved.", false),
        "unrated" => ("Your rating is removed.", false),
        "bad-credentials" => ("Email or password is incorrect.", true),
        "invalid-signin" => (
            "Enter your email address and your password to sign in.",
            true,
        ),
        "email-taken" => (
            "An account with this email already exists. Sign in instead?",
            true,
        ),
        "invalid-signup" => (
            "Check the form: a valid email, a name of 1 to 64 characters and a password of 8 to 128 characters.",
            true,
        ),
        "invalid-email" => (
            "Enter an email address like name@example.com to sign up.",
            true,
        ),
        "invalid-name" => (
            "Enter a name of 1 to 64 characters (not only spaces) to sign up.",
            true,
        ),
        "short-password" => ("Choose a password of 8 to 128 characters to sign up.", true),
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

/// Whether a notice is about the sign-in and sign-up forms (and so belongs beside them).
pub fn is_account_notice(code: &str) -> bool {
    matches!(
        code,
        "bad-credentials"
            | "invalid-signin"
            | "email-taken"
            | "invalid-signup"
            | "invalid-email"
            | "invalid-name"
            | "short-password"
            | "too-many-attempts"
            | "unavailable"
    )
}

/// The notice `code` asks for: an alert for a problem, a status otherwise; nothing for an
/// unknown code.
pub fn notice(code: Option<&str>) -> Markup {
    html! {
        @if let Some((text, problem)) = code.and_then(notice_text) {
            @if problem {
                p.notice.error role="alert" { (text) }
            } @else {
                p.notice role="status" { (text) }
            }
        }
    }
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

/// The title without its series, e.g. "The Hunger Games" of "The Hunger Games (The Hunger
/// Games, #1)".
fn short_title(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

/// Text spliced into a page, escaped exactly as maud escapes a `str` (`&`, `<`, `>` and `"`).
/// maud pushes its output one byte at a time: 18% of the gateway's instructions on the home
/// page, whose 24 cards splice each title four times. Most text has nothing to escape, and
/// finding that out is one pass the compiler vectorizes; then the text is copied whole.
pub struct Text<'a>(pub &'a str);

impl maud::Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        let special = |b: u8| matches!(b, b'&' | b'<' | b'>' | b'"');
        // A fold without an early exit, so that it is vectorized.
        if !self.0.bytes().fold(false, |seen, b| seen | special(b)) {
            buffer.push_str(self.0);
            return;
        }
        let mut rest = self.0;
        while let Some(i) = rest.bytes().position(special) {
            buffer.push_str(&rest[..i]);
            buffer.push_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                _ => "&quot;",
            });
            rest = &rest[i + 1..];
        }
        buffer.push_str(rest);
    }
}

/// The book's authors, comma separated; written (escaped) straight into the page.
pub fn authors(b: &Book) -> Authors<'_> {
    Authors(&b.authors)
}

pub struct Authors<'a>(&'a [String]);

impl maud::Render for Authors<'_> {
    fn render_to(&self, buffer: &mut String) {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                buffer.push_str(", ");
            }
            Text(a).render_to(buffer);
        }
    }
}

/// `4942365` as `4,942,365`, written straight into the page.
pub fn thousands(n: i64) -> Thousands {
    Thousands(n)
}

pub struct Thousands(i64);

impl Thousands {
    /// The number with its commas, written from the end of `buf` (20 digits, 6 commas and a
    /// sign at most).
    fn spelled<'a>(&self, buf: &'a mut [u8; 27]) -> &'a str {
        let mut n = self.0.unsigned_abs();
        let mut i = buf.len();
        let mut digits = 0;
        loop {
            if digits > 0 && digits % 3 == 0 {
                i -= 1;
                buf[i] = b',';
            }
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            digits += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if self.0 < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        // Only ASCII digits, commas and a sign were written.
        std::str::from_utf8(&buf[i..]).unwrap_or_default()
    }
}

impl std::fmt::Display for Thousands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.spelled(&mut [0; 27]))
    }
}

impl maud::Render for Thousands {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(self.spelled(&mut [0; 27]));
    }
}

/// A rating as shown, two decimals (`4.34`), written straight into the page.
pub fn stars(average: f64) -> impl maud::Render {
    struct Stars(f64);
    impl maud::Render for Stars {
        fn render_to(&self, buffer: &mut String) {
            use std::fmt::Write as _;
            let _ = write!(buffer, "{:.2}", self.0);
        }
    }
    Stars(average)
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
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(4942365).to_string(), "4,942,365");
        assert_eq!(thousands(999).to_string(), "999");
        assert_eq!(thousands(1000).to_string(), "1,000");
        assert_eq!(thousands(-1000).to_string(), "-1,000");
        assert_eq!(thousands(0).to_string(), "0");
        assert_eq!(
            maud::Render::render(&thousands(1234567)).into_string(),
            "1,234,567"
        );
        assert_eq!(
            thousands(i64::MIN).to_string(),
            "-9,223,372,036,854,775,808"
        );
        let mut escaped = String::new();
        maud::Render::render_to(
            &Authors(&["A <b>".to_owned(), "C & D".to_owned()]),
            &mut escaped,
        );
        assert_eq!(escaped, "A &lt;b&gt;, C &amp; D");
    }

    #[test]
    fn unknown_notice_codes_show_nothing() {
        assert!(notice_text("<script>").is_none());
        assert!(notice_text("rated").is_some());
    }

    #[test]
    fn text_is_escaped_exactly_as_maud_escapes_it() {
        use maud::Render as _;
        let long = "Lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(9);
        for s in [
            "",
            "plain",
            "&",
            "\"",
            "<<>>",
            "a&b<c>d\"e'f",
            "Ænid & Odyssey — «grec» <i>",
            "ends with &",
            "&starts",
            &long,
            &format!("{long}<b>{long}&{long}"),
        ] {
            let mut ours = String::from("x");
            Text(s).render_to(&mut ours);
            let mut theirs = String::from("x");
            s.render_to(&mut theirs);
            assert_eq!(ours, theirs, "{s:?}");
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
