//! The shoppers: one HTTP request per step against the gateway's public routes, with the state a
//! person carries between steps (the page they are on, the words they searched, their account and
//! token), books chosen by the catalog's real popularity and stars drawn from each book's real
//! histogram (`workload`).

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use catalog::{Book, Digest};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use workload::{Spec, SplitMix64, Synthetic};

use crate::{
    http::Failure,
    stats::Outcome,
    steps::{Expectations, Step},
};

/// Per-request choices: a fresh generator for each task, from the run's seed.
pub fn rng_for(seed: u64, stream: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64();
    r
}

/// A successful answer's JSON, for the steps that read it.
fn json(body: Option<bytes::Bytes>) -> Option<Value> {
    serde_json::from_slice(&body?).ok()
}

/// A random seed from the operating system.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A clock-based seed is good enough when the OS has no randomness to give.
    if getrandom::getrandom(&mut b).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
    }
    u64::from_le_bytes(b)
}

/// A W3C `traceparent` (version 00, random trace and span ids, written by the platform's own
/// writer) and its trace id.
pub fn traceparent(rng: &mut SplitMix64, sampled: bool) -> (http::HeaderValue, String) {
    let (a, b) = (rng.next_u64() | 1, rng.next_u64());
    let ids = platform::telemetry::context::TraceIds {
        trace_id: u128::from(a) << 64 | u128::from(b),
        span_id: rng.next_u64() | 1,
        flags: u8::from(sampled),
    };
    (
        platform::telemetry::context::traceparent(ids),
        format!("{:032x}", ids.trace_id),
    )
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The detail of a problem document, or the start of the body.
pub fn detail_of(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned());
    text.chars().take(200).collect()
}

/// One shopper account of the pool.
#[derive(Debug, Clone)]
struct Account {
    /// Known to exist (signed up now or earlier: 201 or 409).
    exists: bool,
    token: Option<(String, Instant)>,
    /// Where this shopper is in the book listing, and how many pages deep.
    browse: Option<(String, u32)>,
    /// The last search and its next page.
    search: Option<(String, String)>,
    /// The next of this account's synthetic ratings to give.
    next_rating: usize,
}

/// What a planned step turns out to be for one shopper.
enum Action {
    Anonymous(Step),
    SignUp(usize),
    SignIn(usize),
    SignedIn(Step, String),
}

/// The client-side budget of sign-ins and sign-ups.
struct AuthBudget {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
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
    auth: Option<Mutex<AuthBudget>>,
    auth_deferred: AtomicU64,
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
            auth: (config.auth_per_minute > 0).then(|| {
                let burst = f64::from(config.auth_per_minute.min(8));
                Mutex::new(AuthBudget {
                    per_second: f64::from(config.auth_per_minute) / 60.0,
                    burst,
                    tokens: burst,
                    at: Instant::now(),
                })
            }),
            auth_deferred: AtomicU64::new(0),
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

    /// Takes one sign-in/sign-up from the client-side budget (`--auth-per-minute`).
    fn take_auth(&self) -> bool {
        let Some(budget) = &self.auth else {
            return true;
        };
        let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now < b.at {
            // Paused by the gateway's 429 until its Retry-After has passed.
            drop(b);
            self.auth_deferred.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.per_second).min(b.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            self.auth_deferred.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The gateway said 429 to a sign-in or sign-up: no more of them until `retry_after` has
    /// passed (its per-client budget is spent, by this run or another from the same address).
    fn auth_pause(&self, retry_after: Duration) {
        if let Some(budget) = &self.auth {
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            b.tokens = 0.0;
            b.at = Instant::now() + retry_after;
        }
    }

    /// Sign-ins and sign-ups not made for want of budget (done as anonymous steps instead).
    pub fn auth_deferred(&self) -> u64 {
        self.auth_deferred.load(Ordering::Relaxed)
    }

    /// What `step` must be for shopper `i`: `rate` without a token signs in (or up) first, a
    /// sign-up finds an account that does not exist yet; without auth budget, a shopper who
    /// would sign in goes on browsing (`browse`) or looks at a book (`book_page`).
    fn plan(&self, step: Step, i: usize) -> Action {
        let account = |i: usize, otherwise: Step| {
            let exists = self.account(i).exists;
            match (self.take_auth(), exists) {
                (false, _) => Action::Anonymous(otherwise),
                (true, true) => Action::SignIn(i),
                (true, false) => Action::SignUp(i),
            }
        };
        match step {
            Step::Signup => {
                // A pool account that does not exist yet; when every one does, a returning
                // shopper signs in instead.
                let n = self.accounts.len();
                let j = (0..n)
                    .map(|k| (i + k) % n)
                    .find(|&j| !self.account(j).exists)
                    .unwrap_or(i);
                account(j, Step::Browse)
            }
            Step::Signin => account(i, Step::Browse),
            Step::Rate | Step::ForYou => {
                let token = self
                    .account(i)
                    .token
                    .as_ref()
                    .filter(|(_, until)| Instant::now() < *until)
                    .map(|(t, _)| t.clone());
                match token {
                    Some(t) => Action::SignedIn(step, t),
                    None => account(i, Step::BookPage),
                }
            }
            other => Action::Anonymous(other),
        }
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

    /// `rate` or `for_you` with shopper `i`'s token.
    async fn signed_in(&self, step: Step, i: usize, token: &str, rng: &mut SplitMix64) -> Done {
        let done = if step == Step::Rate {
            let ratings = self.readers.ratings_of(i as u32 % self.readers.users());
            let next = {
                let mut a = self.account(i);
                a.next_rating += 1;
                a.next_rating - 1
            };
            let r = &ratings[next % ratings.len().max(1)];
            let req = self.http.request(
                Method::PUT,
                &format!("/api/v1/me/ratings/{}", r.book_id),
                Some(token),
                Some(&json!({ "stars": r.stars })),
            );
            self.exchange(step, req, rng).await.0
        } else {
            self.get(
                step,
                "/api/v1/me/recommendations?page_size=10".into(),
                Some(token),
                rng,
            )
            .await
            .0
        };
        if done.outcome.status() == Some(401) {
            self.account(i).token = None;
        }
        done
    }

    async fn sign_up(&self, i: usize, rng: &mut SplitMix64) -> Done {
        let req = self.http.request(
            Method::POST,
            "/api/v1/users",
            None,
            Some(&json!({
                "email": self.email(i),
                "display_name": format!("Shopper {i}"),
                "password": self.password(i),
            })),
        );
        let (done, _) = self.exchange(Step::Signup, req, rng).await;
        match done.outcome.status() {
            Some(201 | 409) => self.account(i).exists = true,
            Some(429) => self.auth_pause(Duration::from_secs(done.retry_after.unwrap_or(6))),
            _ => {}
        }
        done
    }

    async fn sign_in(&self, i: usize, rng: &mut SplitMix64) -> Done {
        let req = self.http.request(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(&json!({ "email": self.email(i), "password": self.password(i) })),
        );
        let (done, body) = self.exchange(Step::Signin, req, rng).await;
        if done.outcome.status() == Some(429) {
            self.auth_pause(Duration::from_secs(done.retry_after.unwrap_or(6)));
        }
        if let Some(v) = json(body)
            && let Some(token) = v.get("access_token").and_then(Value::as_str)
        {
            let ttl = v.get("expires_in").and_then(Value::as_i64).unwrap_or(300);
            // Signed in again a minute before the token expires (or halfway, for short ones).
            let ttl = Duration::from_secs(ttl.max(2) as u64);
            let until = Instant::now() + ttl.saturating_sub(Duration::from_secs(60)).max(ttl / 2);
            self.account(i).token = Some((token.to_owned(), until));
        }
        done
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

    /// Opens the live feed, reads it for `feed_time`, closes it. Its latency is the time to the
    /// response's headers; the rating events read are counted.
    async fn feed(&self, rng: &mut SplitMix64) -> Done {
        let step = Step::Feed;
        let mut req = self
            .http
            .request(Method::GET, "/api/v1/ratings/stream", None, None);
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
        let trace_id = self.trace(&mut req, rng);
        let opened = self.http.open(req, self.timeout).await;
        let mut done = Done {
            step,
            outcome: Outcome::Timeout {
                expected: self.expect.transport,
            },
            answered: Instant::now(),
            trace_id,
            detail: format!("the feed did not open within {:?}", self.timeout),
            feed_events: 0,
            retry_after: None,
        };
        let resp = match opened {
            Err(Failure::Timeout) => return done,
            Err(e) => {
                done.outcome = self.classify_error(&e);
                done.detail = failure_text(&e);
                return done;
            }
            Ok(resp) => resp,
        };
        done.answered = Instant::now();
        let status = resp.status().as_u16();
        done.outcome = self.classify_status(step, status);
        done.detail.clear();
        let mut body = resp.into_body();
        if status >= 300 {
            let whole = tokio::time::timeout(self.timeout, body.collect()).await;
            done.detail = match whole {
                Ok(Ok(b)) => detail_of(&b.to_bytes()),
                _ => String::new(),
            };
            return done;
        }
        let mut pending: Vec<u8> = Vec::new();
        let until = tokio::time::Instant::now() + self.feed_time;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await {
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&chunk);
            while let Some(n) = pending.iter().position(|&b| b == b'\n') {
                if pending[..n].trim_ascii() == b"event: rating" {
                    done.feed_events += 1;
                }
                pending.drain(..=n);
            }
            // A line longer than any event is not an event line; bound the buffer.
            if pending.len() > 64 * 1024 {
                pending.clear();
            }
        }
        done
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
    fn traceparent_is_w3c_shaped() {
        let mut r = SplitMix64::new(3);
        let (tp, id) = traceparent(&mut r, true);
        let parts: Vec<&str> = tp.to_str().unwrap().split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], id);
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_ne!(parts[1], "0".repeat(32));
        assert!(
            traceparent(&mut r, false)
                .0
                .to_str()
                .unwrap()
                .ends_with("-00")
        );
    }

    #[test]
    fn encoding_and_details() {
        assert_eq!(encode("the hobbit&x=1"), "the%20hobbit%26x%3D1");
        assert_eq!(
            detail_of(
                br#"{"type":"about:blank","detail":"the recommendations service is unavailable"}"#
            ),
            "the recommendations service is unavailable"
        );
        assert_eq!(detail_of(b"plain"), "plain");
    }

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
