//! The server-rendered pages: the expected books, forms that work without JavaScript, and pages
//! that stay up when recommendations is down.

use reqwest::{Client, StatusCode, header};
use tests::{Suite, fresh_books, unique};

use crate::{client, json_get, validation::problem};

pub(crate) fn cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) async fn page(c: &Client, url: String, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = c.get(url);
    if let Some(k) = cookie {
        req = req.header(header::COOKIE, k);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    if status.is_success() {
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn the_pages_render_the_expected_books_and_work_without_javascript() {
    let s = Suite::start().await;
    let c = client();
    let (status, home) = page(&c, format!("{}/", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(home.contains("Most read books"));
    assert!(home.contains("The Hunger Games (The Hunger Games, #1)"));
    assert!(home.contains("Popular now"));
    // Each pick of the panel links its book and names its authors.
    let panel = home
        .split(r#"<section class="panel""#)
        .nth(1)
        .and_then(|p| p.split("</section>").next())
        .expect("the panel");
    assert_eq!(panel.matches(r#"<a href="/books/"#).count(), 8, "{panel}");
    assert_eq!(
        panel.matches(r#"<span class="muted"></span>"#).count(),
        0,
        "{panel}"
    );
    assert!(home.contains(r#"action="/signup""#) && home.contains(r#"action="/signin""#));
    // Covers are images over a placeholder that carries the title; the image's alt is the title.
    assert!(home.contains(r#"<div class="cover "#) && home.contains(r#"alt="The Hunger Games""#));
    // The Content-Security-Policy allows no inline styles or scripts: none may be needed.
    assert!(!home.contains("style=") && !home.contains("<script>"));

    let next = home
        .split(r#"rel="next" href=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let (status, second) = page(&c, format!("{}{next}", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(!second.contains("The Hunger Games (The Hunger Games, #1)"));
    assert!(second.contains("First page"));

    let (_, search) = page(&c, format!("{}/?q=hobbit", s.base_url), None).await;
    assert!(search.contains("results for “hobbit”"));
    assert!(search.contains("The Hobbit"));

    // Sign up through the form, as a browser without JavaScript would.
    let email = format!("form-{}@example.org", unique());
    let forms = tests::Forms::open(&c, &s.base_url).await;
    let r = forms
        .post(
            &c,
            &format!("{}/signup", s.base_url),
            &[
                ("email", email.as_str()),
                ("display_name", "Form <Reader>"),
                ("password", "correct horse battery"),
            ],
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = cookies(&r);
    assert!(cookie.contains("bookstore_session="));
    let (_, signed_in) = page(
        &c,
        format!("{}/?notice=signed-up", s.base_url),
        Some(&cookie),
    )
    .await;
    assert!(
        signed_in.contains("Signed in as <strong>Form &lt;Reader&gt;</strong>"),
        "names are escaped"
    );
    assert!(signed_in.contains("Recommended for you"));

    // Rate through the form and see the book page.
    let b = fresh_books(2);
    let r = forms
        .post(
            &c,
            &format!("{}/books/{}/rating", s.base_url, b[0]),
            &[("stars", "5")],
            Some(&cookie),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        format!("/books/{}?notice=rated", b[0])
    );
    forms
        .post(
            &c,
            &format!("{}/books/{}/rating", s.base_url, b[1]),
            &[("stars", "5")],
            Some(&cookie),
        )
        .send()
        .await
        .unwrap();
    let (_, other) = json_get(&c, format!("{}/api/v1/books/{}", s.base_url, b[1]), None).await;
    let (status, book) = page(
        &c,
        format!("{}/books/{}?notice=rated", s.base_url, b[0]),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(book.contains("Thanks: your rating is saved."));
    assert!(book.contains("Readers who liked this also liked"));
    let other_title = other["title"]
        .as_str()
        .unwrap()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(book.contains(&other_title), "{other_title}");
    assert!(book.contains(r#"name="stars""#));

    let (_, anonymous_book) = page(&c, format!("{}/books/1", s.base_url), None).await;
    assert!(anonymous_book.contains("to rate this book"));

    assert_eq!(
        page(&c, format!("{}/books/abc", s.base_url), None).await.0,
        400
    );
    assert_eq!(
        page(&c, format!("{}/books/99999", s.base_url), None)
            .await
            .0,
        404
    );
    assert_eq!(
        page(&c, format!("{}/no/such/page", s.base_url), None)
            .await
            .0,
        404
    );

    let r = forms
        .post(
            &c,
            &format!("{}/signin", s.base_url),
            &[("email", email.as_str()), ("password", "wrong password")],
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("notice=bad-credentials")
    );
    assert!(cookies(&r).is_empty());
}

#[tokio::test]
async fn pages_stay_up_without_recommendations_and_only_its_routes_fail() {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "suite: a test that kills a process (it runs only against a suite it started)",
        );
        return;
    }
    let mut s = Suite::start().await;
    let c = client();
    s.kill("recommendations").await;
    let (status, home) = page(&c, format!("{}/", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(home.contains("Most read books") && home.contains("The Hunger Games"));
    assert!(
        !home.contains("Popular now"),
        "the optional panel is left out"
    );
    let (status, book) = page(&c, format!("{}/books/1", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(book.contains("The Hunger Games") && !book.contains("Readers who liked this"));
    let (status, body) = problem(
        c.get(format!("{}/api/v1/recommendations/popular", s.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        body["detail"],
        "the recommendations service is unavailable; try again shortly"
    );
    let (status, _) = json_get(&c, format!("{}/api/v1/books/1", s.base_url), None).await;
    assert_eq!(status, 200, "independent routes are unaffected");
}
