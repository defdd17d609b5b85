//! The services called from a web page over gRPC-Web, by the client generated from `protos/`
//! (`tests/browser/grpc-web/`). The page is served by this test from another origin, the one the
//! suite's `GRPC_WEB_ALLOWED_ORIGINS` names, so every call is a cross-origin call governed by
//! CORS, as a front end on its own host would make it; a page from any other origin is refused.

use serde_json::{Value, json};
use tests::{Suite, unique};

use crate::{
    cross_site::OtherSite,
    helpers::{Browser, PASSWORD, SHORT, api_rate, api_reader, hobbit_id, http, within},
};

/// The page: `grpc-web/page.html` with the bundled client inlined (the other site serves HTML).
fn page() -> Option<String> {
    let dir = match tests::web_client::generated() {
        Ok(dir) => dir,
        Err(why) => {
            crate::helpers::skip(&format!("the gRPC-Web page: {why}"));
            return None;
        }
    };
    let html = std::fs::read_to_string(dir.join("grpc-web/page.html")).expect("page.html");
    let bundle = std::fs::read_to_string(dir.join("gen/page.bundle.js")).expect("the bundle");
    assert!(!bundle.contains("</script"), "the bundle can be inlined");
    Some(html.replace(
        r#"<script src="page.bundle.js"></script>"#,
        &format!("<script>{bundle}</script>"),
    ))
}

/// Calls `window.bookstore.<call>` in the page and returns what it resolved to.
async fn call(b: &Browser, call: &str) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         Promise.resolve(window.bookstore.{call}).then(done, (e) => done({{ thrown: String(e) }}));"
    );
    b.client
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|e| panic!("calling {call}: {e}"))
}

/// Opens the page on `site` against the suite's gateway and waits until its client is ready.
async fn open_page(b: &Browser, site: &OtherSite, suite: &Suite) {
    let url = format!("{}/?gateway={}", site.base, suite.base_url);
    b.client.goto(&url).await.expect("the gRPC-Web page loads");
    b.wait_text("ready").await;
}

#[tokio::test]
async fn a_page_on_another_origin_reads_signs_in_rates_and_watches_over_grpc_web() {
    let Some(html) = page() else { return };
    let site = OtherSite::start(vec![("/", html)]).await;
    let suite = Suite::start_with(&[("GRPC_WEB_ALLOWED_ORIGINS", site.base.as_str())]).await;
    let Some(b) = Browser::open(&suite).await else {
        return;
    };
    within("the gRPC-Web flow", async {
        open_page(&b, &site, &suite).await;

        let book = call(&b, "getBook(1)").await;
        assert_eq!(book["ok"]["book"]["id"], "1", "{book}");
        let missing = call(&b, "getBook(987654321)").await;
        assert_eq!(missing["code"], "NOT_FOUND", "{missing}");

        let hobbit = hobbit_id(&suite).await;
        let found = call(&b, "search('hobbit')").await;
        let ids: Vec<&str> = found["ok"]["books"]
            .as_array()
            .unwrap_or_else(|| panic!("{found}"))
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert!(ids.contains(&hobbit.to_string().as_str()), "{found}");

        let email = format!("web-{}@example.org", unique());
        let made = call(
            &b,
            &format!("createUser('{email}', 'Web Reader', '{PASSWORD}')"),
        )
        .await;
        assert!(made["ok"]["user"]["id"].is_string(), "{made}");
        let signed = call(&b, &format!("signIn('{email}', '{PASSWORD}')")).await;
        let token = signed["ok"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{signed}"));

        let anonymous = call(&b, &format!("rate({hobbit}, 5)")).await;
        assert_eq!(anonymous["code"], "UNAUTHENTICATED", "{anonymous}");
        let six = call(&b, &format!("rate({hobbit}, 6, {{ token: '{token}' }})")).await;
        assert_eq!(six["code"], "INVALID_ARGUMENT", "{six}");
        let rated = call(&b, &format!("rate({hobbit}, 5, {{ token: '{token}' }})")).await;
        assert_eq!(rated["ok"]["rating"]["stars"], 5, "{rated}");
        assert_eq!(
            crate::helpers::api_my_stars(&suite, token, hobbit).await,
            Some(5)
        );

        // The deadline the page gives a call is kept: the marketplace is made slow for it.
        let faults = format!("{}/faults", suite.admin("marketplace").expect("its admin"));
        let slow = json!({"rules": [{"method": "GetBook", "latency_ms": 500}]});
        let r = http().put(&faults).json(&slow).send().await.unwrap();
        assert!(r.status().is_success());
        let late = call(&b, "getBook(1, { timeoutMs: 100 })").await;
        http()
            .put(&faults)
            .json(&json!({"rules": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(late["code"], "DEADLINE_EXCEEDED", "{late}");

        // A live feed of the book while another reader rates it through the REST API.
        let watching = b
            .js(&format!("return window.bookstore.watch({hobbit});"))
            .await;
        assert_eq!(watching, true);
        let other = api_reader(&suite, "Other").await;
        let started = std::time::Instant::now();
        let mut stars = 1;
        loop {
            api_rate(&suite, &other, hobbit, stars).await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let events = b.js("return window.bookstore.events();").await;
            let seen = events.as_array().cloned().unwrap_or_default();
            if let Some(e) = seen.iter().find(|e| e["rating"]["stars"] == stars) {
                assert_eq!(e["rating"]["bookId"], hobbit.to_string());
                assert_eq!(e["kind"], 1, "RATED");
                break;
            }
            assert!(started.elapsed() < SHORT, "no rating on the feed: {events}");
            stars = stars % 5 + 1;
        }
        b.wait_text(&format!("{hobbit} rated {stars}")).await;
        b.js("window.bookstore.stopWatching();").await;
        let ended = call(&b, "watchEnded").await;
        assert_eq!(ended["code"], "CANCELED", "{ended}");
    })
    .await;
    b.close().await;
}

#[tokio::test]
async fn a_page_on_an_origin_not_allowed_cannot_call() {
    let Some(html) = page() else { return };
    let allowed = OtherSite::start(vec![("/", html.clone())]).await;
    let foreign = OtherSite::start(vec![("/", html)]).await;
    let suite = Suite::start_with(&[("GRPC_WEB_ALLOWED_ORIGINS", allowed.base.as_str())]).await;
    let Some(b) = Browser::open(&suite).await else {
        return;
    };
    within("the refused origin", async {
        open_page(&b, &foreign, &suite).await;
        let refused = call(&b, "getBook(1)").await;
        assert!(refused["ok"].is_null(), "{refused}");
        assert!(refused["code"].is_string(), "{refused}");
        // The same page from the allowed origin calls as usual.
        open_page(&b, &allowed, &suite).await;
        let book = call(&b, "getBook(1)").await;
        assert_eq!(book["ok"]["book"]["id"], "1", "{book}");
    })
    .await;
    b.close().await;
}
