//! The shoppers: one HTTP request per step against the gateway's public routes, with the state a
//! person carries between steps (the page they are on, the words they searched, their account and
//! token), books chosen by the catalog's real popularity and stars drawn from each book's real
//! histogram (`workload`).

mod accounts;
mod feed;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use catalog::{Book, Digest};
use http::Method;
use serde_json::Value;
use workload::{Spec, SplitMix64, Synthetic};

use self::accounts::{Account, Action};
use crate::{
    auth_budget::AuthBudget,
    http::Failure,
    request::{detail_of, encode, traceparent},
    stats::Outcome,
    steps::{Expectations, Step},
};

/// A successful answer's JSON, for the steps that read it.
fn json(body: Option<bytes::Bytes>) -> Option<Value> {
    serde_json::from_slice(&body?).ok()
}

/// What a step came to.
#[derive(Debug, Clone)]
pub struct Done {
    /// The step actually done: `rate` without a token becomes `signin` (or `signup`).
    pub step: Step,
    pub outcome: Outcome,
    /// When the answer was in: its whole body, or, for the live feed, its headers.
    pub answered: Instant,
    pub trace_id: String,
    /// For errors: the problem's detail or the transport error.
    pub detail: String,
    pub feed_events: u64,
    /// The answer's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

/// Everything the shoppers share.
pub struct Shop {
    http: crate::http::Http,
    base: String,
    /// Built-in books by id, for the words shoppers search.
    books: HashMap<i64, Book>,
    readers: Synthetic,
    accounts: Vec<Mutex<Account>>,
    prefix: String,
    timeout: Duration,
    feed_time: Duration,
    sample_ratio: f64,
    expect: Expectations,
    auth: AuthBudget,
}

/// The shoppers' shared settings.
pub struct ShopConfig {
    pub target: String,
    pub timeout: Duration,
    pub feed_time: Duration,
    pub accounts: u32,
    pub account_prefix: String,
    pub trace_sample_ratio: f64,
    pub expect: Expectations,
    /// Sign-ins and sign-ups per minute at most (0: no limit), under the gateway's per-client
    /// budget (AUTH_RATE_PER_MINUTE, 10 by default).
    pub auth_per_minute: u32,
}

/// FNV-1a, to derive the account pool's fixed synthetic readers from its prefix.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Shop {
    pub fn new(config: ShopConfig) -> Result<Self, crate::Error> {
        let books = catalog::builtin_books().map_err(|e| crate::Error::Catalog(e.to_string()))?;
        let accounts = config.accounts.max(1);
        // Each account is one synthetic reader: it rates the same books with the same stars in
        // every run (so a long run re-rates instead of growing the database without bound).
        let readers = Synthetic::new(
            &Digest::from_books(&books),
            Spec {
                ratings: u64::from(accounts) * 30,
                users: accounts,
                seed: fnv(&config.account_prefix),
                max_per_user: 200,
                alpha: 1.2,
            },
        );
        Ok(Self {
            http: crate::http::Http::new(&config.target, config.timeout)?,
            base: config.target.trim_end_matches('/').to_owned(),
            books: books.into_iter().map(|b| (b.id, b)).collect(),
            readers,
            accounts: (0..accounts)
                .map(|_| {
                    Mutex::new(Account {
                        exists: false,
                        token: None,
                        browse: None,
                        search: None,
                        next_rating: 0,
                    })
                })
                .collect(),
            prefix: config.account_prefix,
            timeout: config.timeout,
            feed_time: config.feed_time,
            sample_ratio: config.trace_sample_ratio,
            expect: config.expect,
            auth: AuthBudget::new(config.auth_per_minute),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn account(&self, i: usize) -> std::sync::MutexGuard<'_, Account> {
        self.accounts[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn email(&self, i: usize) -> String {
        format!("{}-{i}@example.org", self.prefix)
    }

    fn password(&self, i: usize) -> String {
        format!("{}-{i}-correct-horse", self.prefix)
    }

    fn popular_book(&self, rng: &mut SplitMix64) -> i64 {
        self.readers.popular_book(rng)
    }

    /// Words a shopper would type for a popular book: one or two words of its title, or its
    /// author's last name.
    fn search_words(&self, rng: &mut SplitMix64) -> String {
        let id = self.popular_book(rng);
        let Some(book) = self.books.get(&id) else {
            return "the".into();
        };
        if rng.below(3) == 0
            && let Some(last) = book
                .authors
                .first()
                .and_then(|a| a.split_whitespace().last())
        {
            return last.to_lowercase();
        }
        let words: Vec<String> = book
            .title
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3)
            .map(str::to_lowercase)
            .collect();
        if words.is_empty() {
            return book.title.to_lowercase();
        }
        let start = rng.below(words.len() as u64) as usize;
        let n = if rng.below(2) == 0 { 1 } else { 2 };
        words[start..(start + n).min(words.len())].join(" ")
    }

    /// Does `step` (or what it must become for this shopper) and reports how it went.
    pub async fn perform(&self, step: Step, rng: &mut SplitMix64) -> Done {
        let i = rng.below(self.accounts.len() as u64) as usize;
        let step = match self.plan(step, i) {
            Action::SignUp(j) => return self.sign_up(j, rng).await,
            Action::SignIn(j) => return self.sign_in(j, rng).await,
            Action::SignedIn(step, token) => return self.signed_in(step, i, &token, rng).await,
            Action::Anonymous(step) => step,
        };
        match step {
            Step::Home => self.get(step, "/".into(), None, rng).await.0,
            Step::Browse => {
                let state = self.account(i).browse.clone();
                let (path, depth) = match state {
                    Some((token, depth)) if depth < 5 => (
                        format!("/api/v1/books?page_size=20&page_token={}", encode(&token)),
                        depth + 1,
                    ),
                    _ => ("/api/v1/books?page_size=20".to_owned(), 1),
                };
                let (done, body) = self.get(step, path, None, rng).await;
                if let Some(v) = json(body) {
                    self.account(i).browse = v
                        .get("next_page_token")
                        .and_then(Value::as_str)
                        .map(|t| (t.to_owned(), depth));
                }
                done
            }
            Step::Search => {
                let state = self.account(i).search.clone();
                let (words, token) = match state {
                    Some((q, t)) if rng.below(3) == 0 => (q, Some(t)),
                    _ => (self.search_words(rng), None),
                };
                let mut path = format!("/api/v1/books/search?q={}&page_size=10", encode(&words));
                if let Some(t) = &token {
                    path.push_str(&format!("&page_token={}", encode(t)));
                }
                let (done, body) = self.get(step, path, None, rng).await;
                if let Some(v) = json(body) {
                    self.account(i).search = v
                        .get("next_page_token")
                        .and_then(Value::as_str)
                        .map(|t| (words, t.to_owned()));
                }
                done
            }
            Step::BookApi => {
                let id = self.popular_book(rng);
                self.get(step, format!("/api/v1/books/{id}"), None, rng)
                    .await
                    .0
            }
            Step::Similar => {
                let id = self.popular_book(rng);
                self.get(
                    step,
                    format!("/api/v1/books/{id}/similar?page_size=10"),
                    None,
                    rng,
                )
                .await
                .0
            }
            Step::Popular => {
                self.get(
                    step,
                    "/api/v1/recommendations/popular?page_size=10".into(),
                    None,
                    rng,
                )
                .await
                .0
            }
            Step::Feed => self.feed(rng).await,
            // The book page, and any step planned away from signing in.
            _ => {
                let id = self.popular_book(rng);
                self.get(Step::BookPage, format!("/books/{id}"), None, rng)
                    .await
                    .0
            }
        }
    }

    async fn get(
        &self,
        step: Step,
        path: String,
        token: Option<&str>,
        rng: &mut SplitMix64,
    ) -> (Done, Option<bytes::Bytes>) {
        let req = self.http.request(Method::GET, &path, token, None);
        self.exchange(step, req, rng).await
    }

    fn classify_error(&self, e: &Failure) -> Outcome {
        match e {
            Failure::Timeout => Outcome::Timeout {
                expected: self.expect.transport,
            },
            Failure::Transport(_) => Outcome::Transport {
                expected: self.expect.transport,
            },
        }
    }

    fn classify_status(&self, step: Step, status: u16) -> Outcome {
        if status < 400 {
            Outcome::Ok(status)
        } else {
            Outcome::Status {
                status,
                expected: self.expect.status(step, status),
            }
        }
    }

    /// Sends one request with a fresh traceparent and reads the whole answer; a 2xx JSON body
    /// comes back parsed.
    async fn exchange(
        &self,
        step: Step,
        mut req: http::Request<http_body_util::Full<bytes::Bytes>>,
        rng: &mut SplitMix64,
    ) -> (Done, Option<bytes::Bytes>) {
        let trace_id = self.trace(&mut req, rng);
        let mut retry_after = None;
        let (outcome, detail, body) = match self.http.exchange(req, self.timeout).await {
            Ok(answer) => {
                let status = answer.status.as_u16();
                retry_after = answer
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let outcome = self.classify_status(step, status);
                let detail = if status >= 400 {
                    detail_of(&answer.body)
                } else {
                    String::new()
                };
                // Parsed only by the steps that read the answer (see `json`).
                let body = (status < 300).then_some(answer.body);
                (outcome, detail, body)
            }
            Err(e) => (self.classify_error(&e), failure_text(&e), None),
        };
        (
            Done {
                step,
                outcome,
                answered: Instant::now(),
                trace_id,
                detail,
                feed_events: 0,
                retry_after,
            },
            body,
        )
    }

    /// Gives `req` a fresh `traceparent` (sampled at the run's ratio); its trace id.
    fn trace<B>(&self, req: &mut http::Request<B>, rng: &mut SplitMix64) -> String {
        let sampled = self.sample_ratio >= 1.0 || rng.unit() < self.sample_ratio;
        let (tp, trace_id) = traceparent(rng, sampled);
        req.headers_mut().insert("traceparent", tp);
        trace_id
    }
}

/// What a failed exchange says in the report.
fn failure_text(e: &Failure) -> String {
    match e {
        Failure::Timeout => "timed out".to_owned(),
        Failure::Transport(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_come_from_popular_books() {
        let shop = Shop::new(ShopConfig {
            target: "http://127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
            feed_time: Duration::from_secs(1),
            accounts: 3,
            account_prefix: "t".into(),
            trace_sample_ratio: 1.0,
            expect: Expectations::default(),
            auth_per_minute: 2,
        })
        .unwrap();
        // The auth budget: a burst of 2, then nothing for a while.
        assert!(shop.take_auth() && shop.take_auth());
        assert!(!shop.take_auth());
        assert_eq!(shop.auth_deferred(), 1);
        assert!(matches!(
            shop.plan(Step::Signin, 0),
            Action::Anonymous(Step::Browse)
        ));
        assert!(matches!(
            shop.plan(Step::Rate, 1),
            Action::Anonymous(Step::BookPage)
        ));
        assert!(matches!(
            shop.plan(Step::Home, 1),
            Action::Anonymous(Step::Home)
        ));
        let mut r = SplitMix64::new(1);
        for _ in 0..50 {
            let w = shop.search_words(&mut r);
            assert!(!w.is_empty() && w.len() < 100, "{w:?}");
        }
    }
}
