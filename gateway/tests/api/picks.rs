//! The pages' lists of picks: named by the recommendations service itself (no BatchGetBooks),
//! joined with the marketplace after all when a replica older than the picks' titles answers;
//! the REST API joins with full books as it always did. What every reader sees alike (the
//! grid's first page) is kept a moment.

use std::time::{Duration, Instant};

use axum::{Router, body::Body, http::Request};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use protos::marketplace::v1 as mp;

use crate::{
    fakes::fake_services,
    helpers::{app, app_with, get, send},
};

/// The side panel of the page at `uri` (with `cookie`), once the upstreams are found ready.
async fn panel(app: &Router, uri: &str, cookie: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        let mut request = Request::get(uri);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let (status, _, page) = send(app, request.body(Body::empty()).unwrap()).await;
        let found = page
            .split(r#"<section class="panel""#)
            .nth(1)
            .and_then(|p| p.split("</section>").next());
        match found {
            Some(panel) => return panel.to_owned(),
            None if started.elapsed() > Duration::from_secs(10) => {
                panic!("no panel after 10 s ({status}): {page}")
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A signed-in reader's cookies, as the sign-in form sets them.
fn reader_cookie() -> String {
    let user = URL_SAFE_NO_PAD.encode(r#"{"id":"u1","name":"Ada"}"#);
    format!("bookstore_session=some.token; bookstore_user={user}")
}

#[tokio::test]
async fn the_panels_show_the_picks_as_recommendations_names_them_with_no_marketplace_call() {
    let (url, calls) = fake_services(true).await;
    let app = app(&url, 2_000);
    for (heading, cookie) in [
        ("Popular now", None),
        ("Recommended for you", Some(reader_cookie())),
    ] {
        let panel = panel(&app, "/", cookie.as_deref()).await;
        assert!(panel.contains(heading), "{panel}");
        for id in [11, 12] {
            assert!(
                panel.contains(&format!(r#"<a href="/books/{id}">Summary title {id}</a>"#)),
                "{panel}"
            );
            assert!(
                panel.contains(&format!(
                    r#"<span class="muted">Summary author {id}, Second &lt;author&gt;</span>"#
                )),
                "{panel}"
            );
            assert!(panel.contains(&format!("Reason {id}")), "{panel}");
        }
        assert!(!panel.contains("Catalog"), "{panel}");
    }
    assert!(
        calls.lock().unwrap().batch_views.is_empty(),
        "no BatchGetBooks"
    );

    // The API still answers full books from the marketplace.
    let (status, _, body) = get(&app, "/api/v1/recommendations/popular").await;
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list["recommendations"][0]["book"]["title"], "Catalog title 11",
        "{body}"
    );
    assert_eq!(
        calls.lock().unwrap().batch_views,
        [mp::BookView::Full as i32],
        "one BatchGetBooks, full books"
    );
}

#[tokio::test]
async fn picks_without_titles_from_an_older_replica_are_named_by_the_marketplace() {
    let (url, calls) = fake_services(false).await;
    let app = app(&url, 2_000);
    let panel = panel(&app, "/", None).await;
    for id in [11, 12] {
        assert!(
            panel.contains(&format!(r#"<a href="/books/{id}">Catalog title {id}</a>"#)),
            "{panel}"
        );
        assert!(
            panel.contains(&format!(
                r#"<span class="muted">Catalog author {id}</span>"#
            )),
            "{panel}"
        );
        assert!(panel.contains(&format!("Reason {id}")), "{panel}");
    }
    assert!(
        !panel.contains(r#"></a>"#),
        "no pick without a title: {panel}"
    );
    assert_eq!(
        calls.lock().unwrap().batch_views,
        [mp::BookView::Basic as i32],
        "one BatchGetBooks, basic books"
    );
}

#[tokio::test]
async fn the_grids_first_page_is_kept_a_moment_and_later_pages_are_asked_every_time() {
    let (url, calls) = fake_services(true).await;
    let app = app_with(
        gateway::routes(),
        &url,
        2_000,
        &["--grid-cache-ms", "60000"],
    );
    // Only answers are kept: the first view that succeeds is the one call for the first page.
    panel(&app, "/", None).await;
    for cookie in [None, Some(reader_cookie()), None] {
        let mut request = Request::get("/");
        if let Some(c) = &cookie {
            request = request.header("cookie", c);
        }
        let (status, _, _) = send(&app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, 200);
    }
    for _ in 0..2 {
        let (status, _, page) = get(&app, "/?page_token=next").await;
        assert_eq!(status, 200, "{page}");
    }
    assert_eq!(
        calls.lock().unwrap().list_tokens,
        ["", "next", "next"],
        "the first page once, for visitors and readers alike; a later page on every view"
    );
}
