//! A reader whose browser runs no JavaScript: every core flow is a plain link or form post.

use tests::{Suite, metric};

use crate::helpers::{Browser, PASSWORD, api_my_stars, api_reader, book_id, within};

#[tokio::test]
async fn without_javascript_a_reader_searches_opens_a_book_signs_in_rates_and_signs_out() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open_without_javascript(&suite).await else {
        return suite.stop().await;
    };
    within("the pages without JavaScript", async {
        let reader = api_reader(&suite, "plain").await;
        b.goto("/").await;
        b.fill("Search", "q", "the hobbit").await;
        b.submit("Search").await;
        b.wait_for("//h1[contains(., 'the hobbit')]").await;
        let hobbit = b
            .wait_for("//main//a[starts-with(@href, '/books/')][not(ancestor::aside)][contains(normalize-space(), 'The Hobbit')]")
            .await;
        b.follow(hobbit, "The Hobbit").await;
        let book = book_id(&b.path().await).expect("on a book page");
        let h1 = b.wait_for("//h1").await.text().await.unwrap_or_default();
        assert!(h1.contains("The Hobbit"), "book page heading {h1:?}");

        // Signed out, the book page points to the sign-in form.
        let sign_in = b
            .wait_for("//main//a[contains(normalize-space(), 'Sign in')]")
            .await;
        b.follow(sign_in, "the sign-in link").await;
        b.fill("Sign in", "email", &reader.email).await;
        b.fill("Sign in", "password", PASSWORD).await;
        b.submit("Sign in").await;
        b.button("Sign out").await;
        b.wait_text(&reader.name).await;

        b.goto(&format!("/books/{book}")).await;
        b.choose_stars(3).await;
        b.submit("Save rating").await;
        assert!(
            b.path().await.starts_with(&format!("/books/{book}")),
            "back on the book: {}",
            b.path().await
        );
        assert_eq!(
            api_my_stars(&suite, &reader.token, book).await,
            Some(3),
            "the posted rating is stored"
        );
        b.submit("Remove my rating").await;
        assert_eq!(
            api_my_stars(&suite, &reader.token, book).await,
            None,
            "the posted removal is stored"
        );

        b.submit("Sign out").await;
        b.button("Sign in").await;
        assert!(!b.has_button("Sign out").await, "signed out");
        assert!(!b.text().await.contains(&reader.name), "the name is gone");

        // With scripts on, every page above would have opened the live feed.
        let recommendations = suite.admin("recommendations").expect("admin url");
        assert_eq!(
            metric(
                recommendations,
                "grpc_server_started_total",
                &["grpc_method=\"WatchRatings\""]
            )
            .await,
            0.0,
            "the browser ran the pages' script: JavaScript was not off"
        );
    })
    .await;
    b.close().await;
    suite.stop().await;
}
