//! Forms posted from another origin. A second web site, served by this test on a loopback port
//! of its own, holds pages whose forms post themselves to the suite: a sign-in into the
//! attacker's account (login CSRF), a rating and a sign-out for the reader signed in on the
//! real site. Another port is another origin but the same site, so the browser sends the
//! suite's cookies with those posts (its session and form nonce too): what refuses them is the
//! gateway's check of where they come from (`gateway/src/pages/csrf.rs`). Each answer must be a
//! 403 page, and nothing may change; the site's own forms must go on working.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fantoccini::cookies::Cookie;
use serde_json::Value;
use tests::{Suite, fresh_books, metric};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

use crate::helpers::{Browser, PASSWORD, SHORT, api_my_stars, api_reader, within};

/// Another origin: serves fixed pages (path → HTML, whatever the query) on a free loopback port
/// until dropped.
pub struct OtherSite {
    pub base: String,
    server: JoinHandle<()>,
}

impl OtherSite {
    pub async fn start(pages: Vec<(&'static str, String)>) -> OtherSite {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the other site");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let pages = Arc::new(pages);
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let pages = pages.clone();
                tokio::spawn(async move {
                    // The request head (no page here takes a body), then one answer and close.
                    let (mut head, mut buf) = (Vec::new(), [0u8; 2048]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(n) if n > 0 && head.len() < 64 * 1024 => {
                                head.extend_from_slice(&buf[..n]);
                            }
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let target = head.split_whitespace().nth(1).unwrap_or("/");
                    let path = target.split('?').next().unwrap_or(target);
                    let (status, body) = match pages.iter().find(|(p, _)| *p == path) {
                        Some((_, html)) => ("200 OK", html.as_str()),
                        None => ("404 Not Found", "not here"),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        OtherSite { base, server }
    }
}

impl Drop for OtherSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page whose form posts `fields` to `action` as soon as it loads, with a made-up form token
/// (the other site cannot know the real one).
fn auto_post(action: &str, fields: &[(&str, &str)]) -> String {
    let forged = "0".repeat(64);
    let inputs: String = fields
        .iter()
        .chain([&("csrf", forged.as_str())])
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>You won a prize</title></head><body><form method="post" action="{}">{inputs}</form><script>document.forms[0].submit()</script></body></html>"#,
        escape(action)
    )
}

/// Opens the other site's `page`, waits (bounded) for the gateway's answer to the form it posts
/// by itself, and checks that the answer is a 403 page at `action` (no redirect: nothing done).
async fn refused(b: &Browser, site: &OtherSite, page: &str, action: &str) {
    let url = format!("{}{page}", site.base);
    b.client
        .goto(&url)
        .await
        .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    let gateway = format!("{}/", b.base);
    let deadline = Instant::now() + SHORT;
    loop {
        let now = b.client.current_url().await.expect("current url");
        let complete = b
            .client
            .execute("return document.readyState === 'complete'", vec![])
            .await
            .is_ok_and(|v| v == Value::Bool(true));
        if now.as_str().starts_with(&gateway) && complete {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the form of {url} did not reach the gateway within {SHORT:?}: still on {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.path().await,
        action,
        "the post from {url} was acted on (redirected); the page says:\n{}",
        b.text().await
    );
    let status = b
        .js("return performance.getEntriesByType('navigation')[0].responseStatus")
        .await;
    assert_eq!(status, 403, "the answer to the post from {url}");
    let h1 = b.wait_for("//h1").await.text().await.unwrap_or_default();
    assert_eq!(h1, "Forbidden", "the page says:\n{}", b.text().await);
    println!(
        "{page} from {}: 403, {:?}",
        site.base,
        b.find("main p").await.text().await.unwrap_or_default()
    );
}

/// Whether the browser holds a session cookie of the suite (prefixed or not).
async fn has_session_cookie(b: &Browser) -> bool {
    let cookies: Vec<Cookie<'static>> = b.client.get_all_cookies().await.expect("cookies");
    cookies
        .iter()
        .any(|c| c.name().ends_with("bookstore_session"))
}

#[tokio::test]
async fn forms_posted_from_another_origin_are_refused_and_change_nothing() {
    let suite = Suite::start().await;
    let Some(b) = Browser::open(&suite).await else {
        return suite.stop().await;
    };
    within("forms posted from another origin", async {
        let (mallory, reader) = (
            api_reader(&suite, "mallory").await,
            api_reader(&suite, "victim").await,
        );
        let book = fresh_books(1)[0];
        let site = OtherSite::start(vec![
            (
                "/signin",
                auto_post(
                    &format!("{}/signin", suite.base_url),
                    &[("email", &mallory.email), ("password", PASSWORD)],
                ),
            ),
            (
                "/rate",
                auto_post(
                    &format!("{}/books/{book}/rating", suite.base_url),
                    &[("stars", "1")],
                ),
            ),
            (
                "/signout",
                auto_post(&format!("{}/signout", suite.base_url), &[]),
            ),
        ])
        .await;
        let (gateway, users) = (
            suite.admin("gateway").expect("admin url"),
            suite.admin("users").expect("admin url"),
        );
        let refusals = || {
            metric(
                gateway,
                "http_requests_total",
                &["method=\"POST\"", "status=\"403\""],
            )
        };
        let sign_ins = || {
            metric(
                users,
                "grpc_server_handled_total",
                &["grpc_method=\"SignIn\""],
            )
        };
        let refused_before = refusals().await;

        // A visitor of the real site (who holds its form nonce cookie) is signed into the
        // attacker's account by the other site: refused, no session.
        b.goto("/").await;
        b.button("Sign in").await;
        let signed_in_before = sign_ins().await;
        refused(&b, &site, "/signin", "/signin").await;
        assert_eq!(
            sign_ins().await,
            signed_in_before,
            "the users service was asked to sign in"
        );
        assert!(!has_session_cookie(&b).await, "a session cookie was set");
        b.goto("/").await;
        b.button("Sign in").await;
        assert!(
            !b.has_button("Sign out").await,
            "signed in by the other site"
        );
        assert!(
            !b.text().await.contains(&mallory.name),
            "signed in as mallory"
        );

        // The same form on the site's own page works.
        b.fill("Sign in", "email", &reader.email).await;
        b.fill("Sign in", "password", PASSWORD).await;
        b.submit("Sign in").await;
        b.button("Sign out").await;
        b.wait_text(&reader.name).await;
        assert!(
            has_session_cookie(&b).await,
            "signed in, with a session cookie"
        );

        // Signed in, the reader's browser posts the other site's rating: the session cookie
        // goes with it (the 403 page shows the reader signed in), and it is refused all the same.
        refused(&b, &site, "/rate", &format!("/books/{book}/rating")).await;
        assert!(
            b.has_button("Sign out").await,
            "the post went without the session cookie, so it proves nothing"
        );
        assert_eq!(
            api_my_stars(&suite, &reader.token, book).await,
            None,
            "the other site's rating was stored"
        );

        // Nor can it sign the reader out.
        refused(&b, &site, "/signout", "/signout").await;
        b.goto("/").await;
        b.button("Sign out").await;
        b.wait_text(&reader.name).await;

        assert_eq!(
            refusals().await - refused_before,
            3.0,
            "the gateway counted three refused posts"
        );

        // The site's own rating and sign-out forms still work.
        b.goto(&format!("/books/{book}")).await;
        b.choose_stars(4).await;
        b.submit("Save rating").await;
        b.wait_text("saved").await;
        assert_eq!(api_my_stars(&suite, &reader.token, book).await, Some(4));
        b.submit("Sign out").await;
        b.button("Sign in").await;
        assert!(!has_session_cookie(&b).await, "signed out");
    })
    .await;
    b.close().await;
    suite.stop().await;
}
