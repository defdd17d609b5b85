//! Input a reader should not be able to hurt the page with, and input a reader forgot: markup
//! typed into search shows as text, and empty forms get a message (the browser's own first,
//! the server's when the browser's checks are bypassed).

use serde_json::Value;
use tests::Suite;

use crate::helpers::{Browser, PASSWORD, api_reader, within};

/// Every notice (`role=status` or `role=alert`) on the page, lower-cased.
async fn notices(b: &Browser) -> String {
    let mut out = String::new();
    for n in b.all("//*[@role='status' or @role='alert']").await {
        out.push_str(&n.text().await.unwrap_or_default().to_lowercase());
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn markup_typed_into_search_is_shown_as_text_and_never_run() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("hostile search text", async {
        let payload = "<script>alert(1)</script>";
        b.goto("/").await;
        b.fill("Search", "q", payload).await;
        b.submit("Search").await;
        assert!(
            b.client.get_alert_text().await.is_err(),
            "an alert opened: the search text ran as script"
        );
        let h1 = b.wait_for("//h1").await.text().await.unwrap_or_default();
        assert!(h1.contains(payload), "the heading shows the text as typed: {h1:?}");
        assert_eq!(
            b.js("return Array.from(document.querySelectorAll('script')).filter(s => s.textContent.includes('alert(1)') || (s.src || '').includes('alert')).length").await,
            0,
            "a script element was injected"
        );
        let field = b.find("input[name=\"q\"]").await;
        assert_eq!(
            field.prop("value").await.ok().flatten().as_deref(),
            Some(payload),
            "the search box keeps the text"
        );

        // Breaking out of the attribute the search box echoes the text into.
        let attr = "\"><img src=x onerror=\"window.__bookstore_pwned=1\">";
        b.goto(&format!("/?q={}", urlencode(attr))).await;
        b.wait_for("//h1").await;
        assert_eq!(
            b.js("return [typeof window.__bookstore_pwned, document.querySelectorAll('img[onerror]').length]").await,
            serde_json::json!(["undefined", 0]),
            "markup in the query escaped its attribute"
        );
        assert_eq!(
            b.find("input[name=\"q\"]").await.prop("value").await.ok().flatten().as_deref(),
            Some(attr)
        );
        assert!(b.text().await.contains(attr), "the text is shown as typed");
    })
    .await;
    b.close().await;
    suite.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// Clicks `button` with the form as it is: the browser must refuse, with a message on `field`,
/// and stay on the page.
async fn browser_refuses(b: &Browser, button: &str, field: &str) {
    b.js("window.__bookstore_unsent = true").await;
    let before = b.path().await;
    b.button(button).await.click().await.expect("clicked");
    let form = b.form_of(button).await;
    let input = form
        .find(fantoccini::Locator::Css(&format!("[name=\"{field}\"]")))
        .await
        .unwrap_or_else(|e| panic!("the {button:?} form has no {field}: {e}"));
    let message = input
        .prop("validationMessage")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    assert!(
        !message.is_empty(),
        "the browser lets an empty {field} through the {button:?} form"
    );
    assert_eq!(
        b.js("return window.__bookstore_unsent === true").await,
        Value::Bool(true),
        "the {button:?} form was sent with an empty {field}"
    );
    assert_eq!(b.path().await, before);
}

/// Turns the browser's form checks off on this page, as an old or scripted client would.
async fn bypass_validation(b: &Browser) {
    b.js("for (const f of document.forms) f.noValidate = true;")
        .await;
}

/// The server's answer is a page (with the site's search) that says what is wrong.
async fn server_explains(b: &Browser, what: &str, words: &[&str]) {
    let title = b.client.title().await.unwrap_or_default();
    assert!(
        title.contains("Bookstore") && b.has_button("Search").await,
        "{what}: the answer is not a page of the site (title {title:?}):\n{}",
        b.text().await
    );
    let said = notices(b).await;
    assert!(
        words.iter().any(|w| said.contains(w)),
        "{what}: no notice names {words:?}; notices: {said:?}; the page says:\n{}",
        b.text().await
    );
}

#[tokio::test]
async fn empty_forms_are_stopped_by_the_browser_and_explained_by_the_server() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("empty forms", async {
        let reader = api_reader(&suite, "forgetful").await;
        b.goto("/").await;
        browser_refuses(&b, "Sign in", "email").await;
        browser_refuses(&b, "Create account", "email").await;

        bypass_validation(&b).await;
        b.submit("Sign in").await;
        server_explains(&b, "an empty sign-in", &["email", "password"]).await;

        b.goto("/").await;
        bypass_validation(&b).await;
        b.fill("Create account", "email", "short@example.org").await;
        b.fill("Create account", "display_name", "Short").await;
        b.fill("Create account", "password", "abc").await;
        b.submit("Create account").await;
        server_explains(&b, "a sign-up with a 3-letter password", &["password"]).await;

        b.goto("/").await;
        b.fill("Sign in", "email", &reader.email).await;
        b.fill("Sign in", "password", PASSWORD).await;
        b.submit("Sign in").await;
        b.button("Sign out").await;
        b.goto("/books/1").await;
        browser_refuses(&b, "Save rating", "stars").await;
        bypass_validation(&b).await;
        b.submit("Save rating").await;
        server_explains(&b, "a rating without stars", &["star"]).await;
    })
    .await;
    b.close().await;
    suite.stop().await;
}
