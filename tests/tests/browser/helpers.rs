//! The browser under test: a chromedriver this test starts on a free loopback port, one headless
//! Chromium session through it (JavaScript on or off), and the few page and REST helpers the
//! flows share. Everything is bounded in time and killed when dropped, so a failing test leaks no
//! process.

use std::{
    future::Future,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element, wd::TimeoutConfiguration};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{Suite, free_port, unique};

/// The longest any single browser flow may take, start to end (CI runs them all in ~2 minutes).
pub const FLOW_LIMIT: Duration = Duration::from_secs(100);
/// How long a page condition (an element, a text) may take to show up.
pub const SHORT: Duration = Duration::from_secs(10);
/// The password every reader made by these tests has.
pub const PASSWORD: &str = "correct horse battery";

/// Desktop window size used unless a test sets a viewport.
const WINDOW: (u32, u32) = (1366, 900);

/// What the browser tests need on this machine.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Says why the test is skipped and passes, or fails it when `BOOKSTORE_REQUIRE_BROWSER` is set
/// (CI sets it: there a missing browser is a broken set-up, not a reason to skip).
fn skip(why: &str) {
    assert!(
        std::env::var("BOOKSTORE_REQUIRE_BROWSER").is_err(),
        "BOOKSTORE_REQUIRE_BROWSER is set but {why}"
    );
    platform::database::testing::note_skip(&format!("browser tests: {why}"));
}

/// Chromium and chromedriver (`CHROMIUM_BIN`, `CHROMEDRIVER` or Debian's `chromium` and
/// `chromium-driver`), or `None` after saying the test is skipped.
pub fn tools() -> Option<Tools> {
    let chromium = std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        // Debian's /usr/bin/chromium is a shell wrapper; the binary itself starts faster.
        .or_else(|| Some(PathBuf::from("/usr/lib/chromium/chromium")).filter(|p| p.is_file()))
        .or_else(|| on_path("chromium"));
    let chromedriver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path("chromedriver"));
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        _ => {
            skip(
                "chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)",
            );
            None
        }
    }
}

/// The source of axe-core from `tests/browser/node_modules` (`npm ci --prefix tests/browser`),
/// or `None` after saying the test is skipped.
pub fn axe_source() -> Option<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            skip(&format!(
                "axe-core is not installed ({}: {e}; run `npm ci --prefix tests/browser`)",
                path.display()
            ));
            None
        }
    }
}

/// Where screenshots go: `target/screenshots/` of this workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("screenshots")
}

/// A chromedriver process in a process group of its own, so the Chromium it starts goes with it.
struct Driver {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Driver {
    async fn start(tools: &Tools) -> Driver {
        let dir = std::env::temp_dir().join(format!("bookstore-browser-{}", unique()));
        std::fs::create_dir_all(&dir).expect("browser temp dir");
        let mut last = String::new();
        // The port is free when picked, but another process may take it before chromedriver
        // binds it: a driver that does not come up is started again on another port.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display()));
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                dir: dir.clone(),
            };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
            driver.kill();
        }
        panic!("chromedriver did not start: {last}");
    }

    /// Polls `/status` until the driver says it is ready (10 s at most).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && body.await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("chromedriver exited ({status})"));
            }
            if Instant::now() >= deadline {
                return Err(format!("{}/status not ready within 10 s", self.url));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the driver's process group (the driver, and any Chromium a failed test left open).
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Driver {
    /// The end of chromedriver's log, for a failure message.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

    /// The first element `css` matches (the test fails, naming it, when there is none).
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element {css} on {}: {e}", self.path().await),
        }
    }

    /// Every element `xpath` matches.
    pub async fn all(&self, xpath: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("finding {xpath}: {e}"))
    }

    /// Waits (bounded) for an element `xpath` matches.
    pub async fn wait_for(&self, xpath: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(SHORT)
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "{xpath} not on {} within {SHORT:?} ({e}); the page says:\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    /// The visible text of the whole page.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits (bounded) until the page's text contains `needle`.
    pub async fn wait_text(&self, needle: &str) {
        let deadline = Instant::now() + SHORT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not on {} within {SHORT:?}; the page says:\n{text}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The button whose text is `label` (button texts are the pages' stable hooks).
    pub async fn button(&self, label: &str) -> Element {
        self.wait_for(&button_xpath(label)).await
    }

    /// Whether a button whose text is `label` is on the page now.
    pub async fn has_button(&self, label: &str) -> bool {
        !self.all(&button_xpath(label)).await.is_empty()
    }

    /// The form that holds the button `label`.
    pub async fn form_of(&self, label: &str) -> Element {
        self.wait_for(&format!("//form[.{}]", button_xpath(label)))
            .await
    }

    /// Types `value` into the field named `name` of the form whose button is `label`.
    pub async fn fill(&self, label: &str, name: &str, value: &str) {
        let form = self.form_of(label).await;
        let field = form
            .find(Locator::Css(&format!("[name=\"{name}\"]")))
            .await
            .unwrap_or_else(|e| panic!("the {label:?} form has no field {name}: {e}"));
        field.clear().await.expect("field cleared");
        field.send_keys(value).await.expect("typed");
    }

    /// Clicks the button `label` and waits (bounded) until the page's URL changed.
    pub async fn submit(&self, label: &str) {
        let button = self.button(label).await;
        let before = self.mark_page().await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {label:?}: {e}"));
        self.wait_navigated(&before, label).await;
    }

    /// Marks the current document (a page loaded after it lacks the mark); its URL.
    async fn mark_page(&self) -> String {
        self.js("window.__bookstore_old_page = true").await;
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// Waits (bounded) until a new document replaced the one [`Browser::mark_page`] marked:
    /// its URL differs, or (a form posted back to the same URL) the mark is gone.
    async fn wait_navigated(&self, before: &str, what: &str) {
        let deadline = Instant::now() + SHORT;
        loop {
            let now = self.client.current_url().await.expect("current url");
            let fresh = self
                .client
                .execute("return window.__bookstore_old_page !== true", vec![])
                .await
                .is_ok_and(|v| v == json!(true));
            if now.as_str() != before || fresh {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} led nowhere within {SHORT:?}: still on {before}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Follows the link `a` (by clicking it, as a reader would) and waits for the next page.
    pub async fn follow(&self, link: Element, what: &str) {
        let before = self.mark_page().await;
        link.click()
            .await
            .unwrap_or_else(|e| panic!("clicking {what}: {e}"));
        self.wait_navigated(&before, what).await;
    }

    /// Chooses `n` stars in the rating form: the radio itself, or its label when a styled
    /// widget hides the radio.
    pub async fn choose_stars(&self, n: u8) {
        let radio = self
            .wait_for(&format!(
                "//input[@type='radio' and @name='stars' and @value='{n}']"
            ))
            .await;
        if radio.click().await.is_err() {
            let label = radio.find(Locator::XPath("ancestor::label[1]")).await.ok();
            let label = match label {
                Some(l) => l,
                None => {
                    let id = radio.attr("id").await.ok().flatten().unwrap_or_default();
                    self.find(&format!("label[for=\"{id}\"]")).await
                }
            };
            label.click().await.expect("star label clicked");
        }
        assert!(
            radio.is_selected().await.unwrap_or(false),
            "{n} stars not chosen"
        );
    }

    /// Book ids linked from the page's main content (the grid; not the side panels or the
    /// live strip), in page order.
    pub async fn grid_books(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for a in self
            .all("//main//a[starts-with(@href, '/books/')][not(ancestor::aside)][not(ancestor::*[@id='live-feed'])]")
            .await
        {
            if let Some(id) = a
                .attr("href")
                .await
                .ok()
                .flatten()
                .and_then(|h| book_id(&h))
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// The "for you" panel's text, if the page has one (found by its heading).
    pub async fn for_you(&self) -> Option<(String, Vec<i64>)> {
        let heading = "//*[self::h2 or self::h3][contains(translate(normalize-space(), 'FORYU', 'foryu'), 'for you')]";
        let panel = self
            .all(&format!("{heading}/ancestor::section[1] | {heading}/.."))
            .await
            .into_iter()
            .next()?;
        let text = panel.text().await.unwrap_or_default();
        let mut ids = Vec::new();
        for a in panel
            .find_all(Locator::Css("a[href^=\"/books/\"]"))
            .await
            .unwrap_or_default()
        {
            if let Some(id) = a
                .attr("href")
                .await
                .ok()
                .flatten()
                .and_then(|h| book_id(&h))
            {
                ids.push(id);
            }
        }
        Some((text, ids))
    }

    /// Runs `script` in the page; its result.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running script: {e}"))
    }
}

/// XPath of a button (or submit input) whose visible text is `label`.
fn button_xpath(label: &str) -> String {
    format!(
        "//*[(self::button and normalize-space()='{label}') or (self::input and @type='submit' and @value='{label}')]"
    )
}

/// The id in `/books/{id}` (with or without a query).
pub fn book_id(href: &str) -> Option<i64> {
    let rest = href.split("/books/").nth(1)?;
    rest.split(['?', '#', '/']).next()?.parse().ok()
}

/// Runs one flow with an upper bound on its time (the drop of everything it holds cleans up).
pub async fn within<F: Future<Output = ()>>(what: &str, flow: F) {
    if tokio::time::timeout(FLOW_LIMIT, flow).await.is_err() {
        panic!("{what}: not finished within {FLOW_LIMIT:?}");
    }
}

/// A reader made through the public API.
pub struct Reader {
    pub email: String,
    pub name: String,
    pub token: String,
}

/// An HTTP client for the REST API, bounded.
/// The id of "The Hobbit", found through the API search as a reader would.
pub async fn hobbit_id(suite: &Suite) -> i64 {
    let found: Value = http()
        .get(format!(
            "{}/api/v1/books/search?q=the%20hobbit&page_size=1",
            suite.base_url
        ))
        .send()
        .await
        .expect("search answered")
        .json()
        .await
        .expect("JSON");
    found["books"][0]["id"].as_i64().expect("a book")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// Signs a new reader up through `POST /api/v1/users` and signs them in.
pub async fn api_reader(suite: &Suite, name: &str) -> Reader {
    let c = http();
    let email = format!("{name}-{}@example.org", unique());
    let r = c
        .post(format!("{}/api/v1/users", suite.base_url))
        .json(&json!({"email": email, "display_name": name, "password": PASSWORD}))
        .send()
        .await
        .expect("sign-up answered");
    assert_eq!(r.status(), StatusCode::CREATED, "sign-up of {email}");
    let token = suite.sign_in(&c, &email, PASSWORD).await;
    Reader {
        email,
        name: name.to_owned(),
        token,
    }
}

/// Rates `book` with `stars` through `PUT /api/v1/me/ratings/{book}`.
pub async fn api_rate(suite: &Suite, who: &Reader, book: i64, stars: i64) {
    let r = http()
        .put(format!("{}/api/v1/me/ratings/{book}", suite.base_url))
        .bearer_auth(&who.token)
        .json(&json!({ "stars": stars }))
        .send()
        .await
        .expect("rating answered");
    assert!(r.status().is_success(), "rating {book}: {}", r.status());
}

/// The stars `token`'s reader gave `book`, read back through `GET /api/v1/me/ratings`.
pub async fn api_my_stars(suite: &Suite, token: &str, book: i64) -> Option<i64> {
    let page: Value = http()
        .get(format!(
            "{}/api/v1/me/ratings?page_size=100",
            suite.base_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("ratings answered")
        .json()
        .await
        .expect("a JSON page of ratings");
    page["ratings"]
        .as_array()?
        .iter()
        .find(|r| r["book_id"] == book)
        .and_then(|r| r["stars"].as_i64())
}

/// A book's title, from `GET /api/v1/books/{id}`, as a page shows it: a browser collapses runs of
/// white space in text to one space (the catalog has titles such as "The Unexpected Mrs.
/// Pollifax  (Mrs. Pollifax #1)", with two), so that is what rendered text is compared with.
pub async fn api_title(suite: &Suite, book: i64) -> String {
    let b: Value = http()
        .get(format!("{}/api/v1/books/{book}", suite.base_url))
        .send()
        .await
        .expect("book answered")
        .json()
        .await
        .expect("a JSON book");
    let title = b["title"].as_str().expect("a title");
    title.split_whitespace().collect::<Vec<_>>().join(" ")
}
