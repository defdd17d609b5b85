//! The browser under test: a chromedriver this test starts on a free loopback port, one headless
//! Chromium session through it (JavaScript on or off), and the few page and REST helpers the
//! flows share. Everything is bounded in time and killed when dropped, so a failing test leaks no
//! process.

mod api;
mod driver;
mod page;

pub use api::{api_my_stars, api_rate, api_reader, api_title, hobbit_id, http};
pub(crate) use driver::skip;
pub use driver::{axe_source, screenshot_dir};
pub use page::book_id;

use std::{future::Future, time::Duration};

use fantoccini::{Client, ClientBuilder, wd::TimeoutConfiguration};
use serde_json::{Value, json};
use tests::Suite;

use driver::{Driver, tools};

/// The longest any single browser flow may take, start to end (CI runs them all in ~2 minutes).
pub const FLOW_LIMIT: Duration = Duration::from_secs(100);
/// How long a page condition (an element, a text) may take to show up.
pub const SHORT: Duration = Duration::from_secs(10);
/// The password every reader made by these tests has.
pub const PASSWORD: &str = "correct horse battery";

/// Desktop window size used unless a test sets a viewport.
const WINDOW: (u32, u32) = (1366, 900);

/// One headless Chromium session on the suite's gateway.
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Driver,
    session: String,
}

impl Browser {
    /// Opens Chromium with JavaScript on, or `None` (skipped) without the tools. The
    /// back/forward cache is off: a page kept in it holds its live feed's connection open, and
    /// after six pages Chromium has no connection left for the seventh. That is a defect of its
    /// own, tested by `reading::a_reader_opens_page_after_page_with_the_back_forward_cache_on`;
    /// with it off here, each flow tests its own feature.
    pub async fn open(suite: &Suite) -> Option<Browser> {
        Self::open_with(suite, true, false).await
    }

    /// Opens Chromium with JavaScript off (the browser's own setting, as a reader would).
    pub async fn open_without_javascript(suite: &Suite) -> Option<Browser> {
        Self::open_with(suite, false, false).await
    }

    /// Opens Chromium as it ships: JavaScript on, the back/forward cache on.
    pub async fn open_as_shipped(suite: &Suite) -> Option<Browser> {
        Self::open_with(suite, true, true).await
    }

    async fn open_with(suite: &Suite, javascript: bool, bfcache: bool) -> Option<Browser> {
        let tools = tools()?;
        let driver = Driver::start(&tools).await;
        let mut prefs = serde_json::Map::new();
        if !javascript {
            prefs.insert(
                "profile.managed_default_content_settings.javascript".into(),
                json!(2),
            );
        }
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", driver.dir.join("profile").display()),
            // Hermetic: the pages name a cover CDN; nothing but the suite on loopback is
            // resolved, so a page never waits on the outside world.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_owned(),
        ];
        if !bfcache {
            args.push("--disable-features=BackForwardCache".to_owned());
        }
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
                "prefs": prefs,
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&driver.url),
        )
        .await
        .unwrap_or_else(|_| panic!("no Chromium session within 30 s ({})", driver.log()))
        .unwrap_or_else(|e| panic!("no Chromium session: {e} ({})", driver.log()));
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(20)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("timeouts set");
        let session = client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        Some(Browser {
            client,
            base: suite.base_url.clone(),
            driver,
            session,
        })
    }

    /// Ends the session (Chromium quits), then the driver.
    pub async fn close(self) {
        let Browser {
            client, mut driver, ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        driver.kill();
    }

    /// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/session/{}/goog/cdp/execute",
                self.driver.url, self.session
            ))
            .json(&json!({ "cmd": cmd, "params": params }))
            .timeout(SHORT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{cmd}: {status} {body}");
        body["value"].clone()
    }

    /// Makes the viewport exactly `width` × `height` CSS pixels (a phone emulates touch and
    /// honours `<meta name="viewport">` as a phone does).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Loads `path` (e.g. `/?q=x`) from the gateway.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// The current path and query, e.g. `/books/3?notice=rated`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }
}

/// Runs one flow with an upper bound on its time (the drop of everything it holds cleans up).
pub async fn within<F: Future<Output = ()>>(what: &str, flow: F) {
    if tokio::time::timeout(FLOW_LIMIT, flow).await.is_err() {
        panic!("{what}: not finished within {FLOW_LIMIT:?}");
    }
}
