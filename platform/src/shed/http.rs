//! Shedding HTTP requests: one pool, a permit held until the answer is ready (a streamed body,
//! such as a live feed, does not hold it), and the server's own refusal: a 503 with
//! `Retry-After`, written where the server writes its problem documents.

use tokio::sync::OwnedSemaphorePermit;

use super::{Pool, Protocol, ShedRefusal};

/// One pool for every request; `refusal` builds the answer to a refused one.
pub struct Http<B> {
    pool: Pool,
    refusal: fn() -> http::Response<B>,
}

// Not derived: the body type need not be `Clone`.
impl<B> Clone for Http<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            refusal: self.refusal,
        }
    }
}

impl<B> Http<B> {
    /// At most `limit` requests at once; a refused one is answered `refusal()`.
    pub fn new(limit: usize, refusal: fn() -> http::Response<B>) -> Self {
        Self {
            pool: Pool::new("requests", limit),
            refusal,
        }
    }
}

impl<Req, B> Protocol<Req, B> for Http<B> {
    type Response = http::Response<B>;

    fn pool(&self, _: &Req) -> &Pool {
        &self.pool
    }

    fn admitted(resp: http::Response<B>, permit: OwnedSemaphorePermit) -> Self::Response {
        drop(permit);
        resp
    }

    fn refusal(&self, _: &Pool) -> Self::Response {
        let mut refusal = (self.refusal)();
        refusal.extensions_mut().insert(ShedRefusal);
        refusal
    }

    fn log_shed(&self, pool: &Pool, shed: u64) {
        tracing::warn!(
            limit = pool.limit,
            shed,
            every_secs = pool.log_every().as_secs(),
            "requests shed at the concurrency limit (count since the last such line)"
        );
    }
}
