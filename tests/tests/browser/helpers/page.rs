//! Reading a page and acting in it as a reader would: elements, text, forms, links, stars.

use std::time::{Duration, Instant};

use fantoccini::{Locator, elements::Element};
use serde_json::{Value, json};

use super::{Browser, SHORT};

impl Browser {
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
pub(crate) fn button_xpath(label: &str) -> String {
    format!(
        "//*[(self::button and normalize-space()='{label}') or (self::input and @type='submit' and @value='{label}')]"
    )
}

/// The id in `/books/{id}` (with or without a query).
pub fn book_id(href: &str) -> Option<i64> {
    let rest = href.split("/books/").nth(1)?;
    rest.split(['?', '#', '/']).next()?.parse().ok()
}
