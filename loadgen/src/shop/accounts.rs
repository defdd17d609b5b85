//! The shoppers' accounts: who signs up, who signs in and when, and the steps only a signed-in
//! shopper takes (rating the books their synthetic reader rates, their recommendations).

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use workload::SplitMix64;

use super::{Done, Shop, json};
use crate::steps::Step;

/// One shopper account of the pool.
#[derive(Debug, Clone)]
pub(super) struct Account {
    /// Known to exist (signed up now or earlier: 201 or 409).
    pub(super) exists: bool,
    pub(super) token: Option<(String, Instant)>,
    /// Where this shopper is in the book listing, and how many pages deep.
    pub(super) browse: Option<(String, u32)>,
    /// The last search and its next page.
    pub(super) search: Option<(String, String)>,
    /// The next of this account's synthetic ratings to give.
    pub(super) next_rating: usize,
}

/// What a planned step turns out to be for one shopper.
pub(super) enum Action {
    Anonymous(Step),
    SignUp(usize),
    SignIn(usize),
    SignedIn(Step, String),
}

impl Shop {
    /// Takes one sign-in/sign-up from the client-side budget (`--auth-per-minute`).
    pub(super) fn take_auth(&self) -> bool {
        self.auth.take()
    }

    /// Sign-ins and sign-ups not made for want of budget (done as anonymous steps instead).
    pub fn auth_deferred(&self) -> u64 {
        self.auth.deferred()
    }

    /// What `step` must be for shopper `i`: `rate` without a token signs in (or up) first, a
    /// sign-up finds an account that does not exist yet; without auth budget, a shopper who
    /// would sign in goes on browsing (`browse`) or looks at a book (`book_page`).
    pub(super) fn plan(&self, step: Step, i: usize) -> Action {
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

    /// `rate` or `for_you` with shopper `i`'s token.
    pub(super) async fn signed_in(
        &self,
        step: Step,
        i: usize,
        token: &str,
        rng: &mut SplitMix64,
    ) -> Done {
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

    pub(super) async fn sign_up(&self, i: usize, rng: &mut SplitMix64) -> Done {
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
            Some(429) => self
                .auth
                .pause(Duration::from_secs(done.retry_after.unwrap_or(6))),
            _ => {}
        }
        done
    }

    pub(super) async fn sign_in(&self, i: usize, rng: &mut SplitMix64) -> Done {
        let req = self.http.request(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(&json!({ "email": self.email(i), "password": self.password(i) })),
        );
        let (done, body) = self.exchange(Step::Signin, req, rng).await;
        if done.outcome.status() == Some(429) {
            self.auth
                .pause(Duration::from_secs(done.retry_after.unwrap_or(6)));
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
}
