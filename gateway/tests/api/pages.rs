//! The pages as a browser without JavaScript gets them, with every upstream down: what a
//! visitor typed comes back as text, and a bad form says what to fix beside the forms.

use axum::{body::Body, http::Request};

use crate::helpers::{FormSession, app, get, nobody, send};

#[tokio::test]
async fn a_search_for_markup_is_shown_as_text() {
    let app = app(&nobody().await, 2_000);
    let (status, ct, page) = get(&app, "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22").await;
    assert_eq!(status, 503, "the catalog is down");
    assert!(ct.starts_with("text/html"));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt;&quot; · Bookstore</title>")
    );
    assert!(page.contains(r#"value="&lt;script&gt;alert(1)&lt;/script&gt;&quot;""#));
}

#[tokio::test]
async fn a_sign_up_form_that_the_service_would_refuse_is_named_before_any_call() {
    let app = app(&nobody().await, 2_000);
    let browser = FormSession::open(&app).await;
    for (body, notice) in [
        (
            "email=ada%40example.org&display_name=&password=long+enough",
            "invalid-name",
        ),
        (
            "email=ada%40example.org&display_name=Ada&password=short",
            "short-password",
        ),
        (
            "email=&display_name=Ada&password=long+enough",
            "invalid-email",
        ),
        ("display_name=Ada", "invalid-signup"),
    ] {
        let (status, headers, _) = send(&app, browser.post("/signup", body)).await;
        assert_eq!(status, 303, "{body}");
        assert_eq!(
            headers["location"],
            format!("/?notice={notice}#account"),
            "{body}"
        );
    }
    let (_, headers, _) = send(&app, browser.post("/signin", "email=&password=")).await;
    assert_eq!(headers["location"], "/?notice=invalid-signin#account");
}

#[tokio::test]
async fn a_forms_outcome_is_an_alert_where_the_redirect_lands() {
    let app = app(&nobody().await, 2_000);
    let (_, _, page) = get(&app, "/?notice=short-password").await;
    let account = page.split(r#"<section id="account""#).nth(1).unwrap();
    assert!(
        account
            .contains(r#"role="alert">Choose a password of 8 to 128 characters to sign up.</p>"#),
        "{page}"
    );
    assert_eq!(page.matches(r#"role="alert""#).count(), 1);
    // Other notices stay at the top of the page.
    let (_, _, page) = get(&app, "/?notice=signed-out").await;
    assert!(page.contains(r#"<p class="notice" role="status">You are signed out.</p>"#));
}

#[tokio::test]
async fn a_form_posted_from_another_site_or_without_its_token_is_refused() {
    let app = app(&nobody().await, 2_000);
    let browser = FormSession::open(&app).await;
    assert_eq!(browser.token.len(), 64, "every form carries a token");
    let body = "email=ada%40example.org&password=correct+horse";
    let forged = |edit: &dyn Fn(&mut Request<Body>)| {
        let mut r = browser.post("/signin", body);
        edit(&mut r);
        r
    };
    let cases: [(&str, Request<Body>); 7] = [
        (
            "cross-site",
            forged(&|r| {
                r.headers_mut()
                    .insert("sec-fetch-site", "cross-site".parse().unwrap());
            }),
        ),
        (
            "same-site (a sibling host)",
            forged(&|r| {
                r.headers_mut()
                    .insert("sec-fetch-site", "same-site".parse().unwrap());
            }),
        ),
        (
            "a foreign Origin",
            forged(&|r| {
                r.headers_mut().remove("sec-fetch-site");
                r.headers_mut()
                    .insert("origin", "https://evil.example".parse().unwrap());
            }),
        ),
        (
            "no token",
            Request::post("/signin")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", &browser.cookie)
                .body(Body::from(body))
                .unwrap(),
        ),
        (
            "no cookie",
            forged(&|r| {
                r.headers_mut().remove("cookie");
            }),
        ),
        (
            "another visitor's cookie",
            forged(&|r| {
                r.headers_mut().insert(
                    "cookie",
                    "bookstore_csrf=00112233445566778899aabbccddeeff"
                        .parse()
                        .unwrap(),
                );
            }),
        ),
        (
            "a made-up token",
            Request::post("/signout")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", &browser.cookie)
                .body(Body::from(format!("csrf={}", "ab".repeat(32))))
                .unwrap(),
        ),
    ];
    for (what, request) in cases {
        let (status, headers, page) = send(&app, request).await;
        assert_eq!(status, 403, "{what}: {page}");
        assert!(
            headers
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().contains("session"))
        );
        assert!(page.contains("Forbidden"), "{what}");
    }
    // The same form from the site's own page goes through (to the users service, down here).
    let (status, headers, _) = send(&app, browser.post("/signin", body)).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/?notice=unavailable#account");
}
