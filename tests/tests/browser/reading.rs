//! A reader with JavaScript on: browsing, searching and paging the catalog, an account from
//! sign-up to sign-out with a rating that changes "for you", and another reader's rating
//! arriving in the live strip while the page stays open.

use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use tests::{Suite, fresh_books, metric, unique, wait_until};

use crate::helpers::{
    Browser, PASSWORD, SHORT, api_my_stars, api_rate, api_reader, api_title, http, within,
};

/// Links back one page: "Previous" (or, on the second page, "First page").
const BACK_LINK: &str = "//a[@rel='prev' or starts-with(normalize-space(), 'Previous') or starts-with(normalize-space(), 'First page')]";
const NEXT_LINK: &str = "//a[@rel='next' or starts-with(normalize-space(), 'Next')]";

#[tokio::test]
async fn a_reader_browses_the_home_page_pages_through_it_searches_and_opens_a_book() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("browsing", async {
        b.goto("/").await;
        let title = b.client.title().await.expect("title");
        assert!(title.contains("Bookstore"), "home page title {title:?}");
        b.wait_for("//h1").await;
        let first = b.grid_books().await;
        assert!(first.len() >= 12, "the home grid lists books: {first:?}");

        let next = b.wait_for(NEXT_LINK).await;
        b.follow(next, "the next page").await;
        let second = b.grid_books().await;
        assert!(second.len() >= 12, "page 2 lists books: {second:?}");
        assert!(
            second.iter().all(|id| !first.contains(id)),
            "page 2 repeats page 1: {first:?} then {second:?}"
        );
        let back = b.wait_for(BACK_LINK).await;
        b.follow(back, "the previous page").await;
        assert_eq!(b.grid_books().await, first, "back on page 1");

        b.fill("Search", "q", "the hobbit").await;
        b.submit("Search").await;
        let path = b.path().await;
        assert!(
            path.starts_with("/?")
                && (path.contains("q=the+hobbit") || path.contains("q=the%20hobbit")),
            "the search is a GET of /?q=: {path}"
        );
        b.wait_for("//h1[contains(., 'the hobbit')]").await;
        let found = b.grid_books().await;
        assert!(!found.is_empty(), "results for 'the hobbit'");
        let hobbit = b
            .wait_for("//main//a[starts-with(@href, '/books/')][not(ancestor::aside)][contains(normalize-space(), 'The Hobbit')]")
            .await;
        let href = hobbit.attr("href").await.ok().flatten().unwrap_or_default();
        b.follow(hobbit, "The Hobbit").await;
        assert_eq!(b.path().await, href, "the book page is the link's");
        let h1 = b.wait_for("//h1").await.text().await.unwrap_or_default();
        assert!(h1.contains("The Hobbit"), "book page heading {h1:?}");
        assert!(
            b.text().await.contains("Tolkien"),
            "the book page names the author"
        );
        assert!(
            !b.has_button("Save rating").await,
            "no rating form for a signed-out reader"
        );
    })
    .await;
    b.close().await;
    suite.stop().await;
}

#[tokio::test]
async fn a_reader_signs_up_signs_in_rates_books_sees_for_you_change_and_signs_out() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("an account's life", async {
        // Two readers who liked the same books as ours will, and one more each.
        let books = fresh_books(4);
        let (ann, ben) = (
            api_reader(&suite, "ann").await,
            api_reader(&suite, "ben").await,
        );
        for (who, book, stars) in [
            (&ann, books[0], 5),
            (&ann, books[1], 5),
            (&ann, books[2], 5),
            (&ben, books[0], 5),
            (&ben, books[1], 4),
            (&ben, books[3], 5),
        ] {
            api_rate(&suite, who, book, stars).await;
        }

        let name = format!("Reader {}", unique());
        let email = format!("reader-{}@example.org", unique());
        b.goto("/").await;
        b.fill("Create account", "email", &email).await;
        b.fill("Create account", "display_name", &name).await;
        b.fill("Create account", "password", PASSWORD).await;
        b.submit("Create account").await;
        b.button("Sign out").await;
        b.wait_text(&name).await;

        b.submit("Sign out").await;
        b.button("Sign in").await;
        assert!(!b.has_button("Sign out").await, "signed out after sign-up");

        b.fill("Sign in", "email", &email).await;
        b.fill("Sign in", "password", PASSWORD).await;
        b.submit("Sign in").await;
        b.button("Sign out").await;
        b.wait_text(&name).await;
        let (before_text, before_ids) = b.for_you().await.unwrap_or_default();
        assert!(
            !before_text.contains("Because you liked"),
            "nothing rated yet, yet: {before_text}"
        );

        let token = suite.sign_in(&http(), &email, PASSWORD).await;
        for &book in &books[..2] {
            b.goto(&format!("/books/{book}")).await;
            b.choose_stars(5).await;
            b.submit("Save rating").await;
            assert!(
                b.path().await.starts_with(&format!("/books/{book}")),
                "back on the book after rating: {}",
                b.path().await
            );
            b.wait_text("saved").await;
            assert_eq!(
                api_my_stars(&suite, &token, book).await,
                Some(5),
                "the form's rating of {book} is stored"
            );
        }

        b.goto("/").await;
        let Some((after_text, after_ids)) = b.for_you().await else {
            panic!(
                "no 'for you' panel after rating; the page says:\n{}",
                b.text().await
            );
        };
        let liked = [
            api_title(&suite, books[0]).await,
            api_title(&suite, books[1]).await,
        ];
        assert!(
            liked
                .iter()
                .any(|t| after_text.contains(&format!("Because you liked {t}"))),
            "'for you' says why after two 5-star ratings of {liked:?}:\n{after_text}"
        );
        assert!(
            after_ids.iter().any(|id| !before_ids.contains(id)),
            "'for you' lists a book it did not list before: {before_ids:?} then {after_ids:?}"
        );
        assert!(
            after_ids.contains(&books[2]) || after_ids.contains(&books[3]),
            "what the like-minded readers liked is picked: {after_ids:?}, {books:?}"
        );

        b.submit("Sign out").await;
        b.button("Sign in").await;
        b.wait_text("signed out").await;
        b.goto("/").await;
        assert!(
            !b.has_button("Sign out").await,
            "still signed out after a reload"
        );
        assert!(!b.text().await.contains(&name), "the name is gone");
    })
    .await;
    b.close().await;
    suite.stop().await;
}

#[tokio::test]
async fn another_readers_rating_appears_in_the_live_strip_without_a_reload() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("the live strip", async {
        b.goto("/").await;
        b.wait_for("//*[@id='live-feed']").await;
        b.js("window.__bookstore_same_page = 'still here'").await;
        // The page's script opens the feed: the recommendations service sees the watch.
        let recommendations = suite
            .admin("recommendations")
            .expect("admin url")
            .to_owned();
        wait_until(
            "the page opening the live feed (WatchRatings started)",
            SHORT,
            || async {
                metric(
                    &recommendations,
                    "grpc_server_started_total",
                    &["grpc_method=\"WatchRatings\""],
                )
                .await
                    >= 1.0
            },
        )
        .await;

        let other = api_reader(&suite, "other").await;
        let deadline = Instant::now() + SHORT;
        let mut seen = None;
        // A watch counts as started a moment before it subscribes: a rating made in between is
        // missed, so another book is rated (at most three, within the same 10 s).
        for book in fresh_books(3) {
            api_rate(&suite, &other, book, 4).await;
            let until = (Instant::now() + Duration::from_secs(3)).min(deadline);
            while Instant::now() < until {
                let links = b
                    .all(&format!(
                        "//*[@id='live-feed']//a[contains(@href, '/books/{book}')]"
                    ))
                    .await;
                if let Some(link) = links.first() {
                    seen = Some((book, link.text().await.unwrap_or_default()));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if seen.is_some() {
                break;
            }
        }
        let Some((book, text)) = seen else {
            panic!(
                "no rating of the other reader in #live-feed within {SHORT:?}; it says:\n{}",
                b.find("#live-feed").await.text().await.unwrap_or_default()
            );
        };
        assert_eq!(
            text,
            api_title(&suite, book).await,
            "the strip names the book"
        );
        let item = b
            .wait_for(&format!(
                "//*[@id='live-feed']//li[.//a[contains(@href, '/books/{book}')]]"
            ))
            .await
            .text()
            .await
            .unwrap_or_default();
        assert!(
            item.contains("★★★★"),
            "the strip shows the 4 stars: {item:?}"
        );
        assert_eq!(
            b.js("return window.__bookstore_same_page").await,
            "still here",
            "the page was not reloaded"
        );
    })
    .await;
    b.close().await;
    suite.stop().await;
}

#[tokio::test]
async fn a_reader_opens_page_after_page_with_the_back_forward_cache_on() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open_as_shipped(&suite).await else {
        return suite.stop().await;
    };
    within("ten pages in a row", async {
        let per_page = Duration::from_secs(5);
        b.client
            .update_timeouts(TimeoutConfiguration::new(None, Some(per_page), None))
            .await
            .expect("timeouts set");
        for n in 1..=10 {
            let url = format!("{}/books/{n}", suite.base_url);
            if let Err(e) = b.client.goto(&url).await {
                panic!(
                    "page {n} of 10 ({url}) did not load within {per_page:?}: {e}. Every page \
                     left behind sits in Chromium's back/forward cache with its live feed \
                     (EventSource) still connected, and Chromium opens at most 6 connections \
                     per host over HTTP/1.1; the page's script must close the feed on \
                     `pagehide` (and open it again on `pageshow`)."
                );
            }
            b.wait_for("//h1").await;
        }
    })
    .await;
    b.close().await;
    suite.stop().await;
}
