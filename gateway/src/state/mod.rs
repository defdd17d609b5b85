//! What every handler shares: the upstream clients, the request budget, the limits on feeds and
//! sign-in attempts, and the pages' form key and what the home page keeps a moment.

mod csrf_key;
mod kept;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

pub use self::{
    csrf_key::{CsrfKey, hex},
    kept::Kept,
};
use crate::{
    config::Config,
    error::ApiError,
    feeds,
    model::{BookPage, Pick},
    rate_limit,
    upstream::{Deadline, Marketplace, Recommendations, Upstreams, Users},
};

/// What every handler shares: one reference count per request (axum clones the state for each),
/// and only the client of a call a request makes is cloned.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// See [`AppState`].
pub struct Shared {
    pub upstreams: Upstreams,
    /// Budget of one incoming request; each upstream call gets what remains of it.
    pub request_timeout: Duration,
    pub optional_timeout: Duration,
    /// The home page's "Popular now" panel, kept a moment.
    pub popular_panel: Kept<Arc<[Pick]>>,
    /// The first page of the home page's grid (the catalog, most read first), kept a moment.
    pub first_grid: Kept<Arc<BookPage>>,
    pub cookie_secure: bool,
    /// Signs the pages' form tokens (see `pages::csrf`).
    pub csrf: CsrfKey,
    /// Largest request body, as the extractors read it.
    pub body_limit: usize,
    /// Flips to true when draining begins; long-lived SSE responses end on it.
    pub shutdown: watch::Receiver<bool>,
    /// Live feeds open at once, in total and per client (`FEED_LIMIT`,
    /// `FEED_LIMIT_PER_CLIENT`): each holds an upstream stream, and they are counted apart from
    /// the request concurrency limit, which they would otherwise escape.
    pub feeds: std::sync::Arc<feeds::FeedLimits>,
    /// Sign-in and sign-up budget per client.
    pub auth_limit: std::sync::Arc<rate_limit::AuthLimiter>,
    /// Whether the client's address comes from X-Forwarded-For.
    pub trust_forwarded_for: bool,
}

impl AppState {
    /// The state `config` describes, over `upstreams`; long-lived responses end when `shutdown`
    /// turns true.
    pub fn new(config: &Config, upstreams: Upstreams, shutdown: watch::Receiver<bool>) -> Self {
        Self(std::sync::Arc::new(Shared {
            upstreams,
            request_timeout: config.serve.request_timeout(),
            optional_timeout: Duration::from_millis(config.optional_timeout_ms),
            popular_panel: Kept::new(Duration::from_millis(config.popular_cache_ms)),
            first_grid: Kept::new(Duration::from_millis(config.grid_cache_ms)),
            cookie_secure: config.cookie_secure,
            csrf: match &config.csrf_secret {
                Some(secret) => {
                    CsrfKey::new(secrecy::ExposeSecret::expose_secret(secret).as_bytes())
                }
                None => CsrfKey::random(),
            },
            body_limit: config.body_limit_bytes,
            shutdown,
            feeds: feeds::FeedLimits::new(config.feed_limit, config.feed_limit_per_client),
            auth_limit: std::sync::Arc::new(rate_limit::AuthLimiter::new(
                rate_limit::Rate {
                    per_minute: config.auth_rate_per_minute,
                    burst: config.auth_rate_burst,
                },
                rate_limit::Rate {
                    per_minute: config.auth_account_rate_per_minute,
                    burst: config.auth_account_rate_burst,
                },
            )),
            trust_forwarded_for: config.trust_forwarded_for,
        }))
    }

    /// Whether the pages' cookies are `Secure` for a request with `headers`: always with
    /// COOKIE_SECURE, else when a trusted proxy says the client spoke HTTPS.
    pub fn secure_cookies(&self, headers: &http::HeaderMap) -> bool {
        self.cookie_secure
            || (self.trust_forwarded_for
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
    }

    /// The deadline of one incoming request: each upstream call gets what remains of it.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.request_timeout)
    }

    /// The catalog, for a request starting now (`.within(d)` to share another's deadline).
    pub fn marketplace(&self) -> Marketplace {
        Marketplace::new(self.upstreams.marketplace.clone(), self.deadline())
    }

    /// Ratings and recommendations, for a request starting now.
    pub fn recommendations(&self) -> Recommendations {
        Recommendations::new(self.upstreams.recommendations.clone(), self.deadline())
    }

    /// Accounts and sessions, for a request starting now.
    pub fn users(&self) -> Users {
        Users::new(self.upstreams.users.clone(), self.deadline())
    }

    /// Takes one sign-in/sign-up attempt from `client`'s budget (API and forms) and, when a
    /// password of `account` is to be checked, holds one of the account's until the returned
    /// attempt is settled (see `rate_limit`).
    pub fn auth_attempt(
        &self,
        client: std::net::IpAddr,
        account: Option<&str>,
    ) -> Result<rate_limit::Attempt, ApiError> {
        self.auth_limit
            .attempt(client, account)
            .map_err(ApiError::from)
    }
}
