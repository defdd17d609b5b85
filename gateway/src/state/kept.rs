//! What the home page shows every reader alike, kept a moment: the "Popular now" panel and the
//! first page of the grid.

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use crate::error::ApiError;

/// An answer that is the same for every reader and slow to change, kept for a short while
/// (`POPULAR_CACHE_MS`, `GRID_CACHE_MS`) instead of asking its service again on every page view.
/// A reader's own picks are never kept. Only answers are kept, never a failure, so a section
/// whose service is down is left out, or said to be unavailable, as soon as the kept answer is
/// too old. `T` is cheap to clone (an `Arc`): every view shares the one kept answer.
pub struct Kept<T> {
    ttl: Duration,
    kept: RwLock<Option<(Instant, T)>>,
}

impl<T: Clone> Kept<T> {
    /// An answer kept for `ttl` (zero: never kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            kept: RwLock::new(None),
        }
    }

    /// The kept answer, if younger than its time to live.
    fn fresh(&self) -> Option<T> {
        if self.ttl.is_zero() {
            return None;
        }
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        kept.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, answer)| answer.clone())
    }

    /// Keeps `answer`, just fetched.
    fn keep(&self, answer: T) -> T {
        if !self.ttl.is_zero() {
            *self.kept.write().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), answer.clone()));
        }
        answer
    }

    /// The answer: kept, or fetched with `fetch` (and kept).
    pub async fn get<F>(&self, fetch: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        match self.fresh() {
            Some(answer) => Ok(answer),
            None => Ok(self.keep(fetch.await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::http::StatusCode;

    use super::*;

    /// Fetches `id`, counting the fetches; fails when `id` is 0.
    async fn fetch(calls: &AtomicUsize, id: i64) -> Result<Arc<i64>, ApiError> {
        calls.fetch_add(1, Ordering::SeqCst);
        if id == 0 {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "down"));
        }
        Ok(Arc::new(id))
    }

    #[tokio::test]
    async fn an_answer_is_kept_for_its_time_to_live_and_failures_never() {
        let calls = AtomicUsize::new(0);
        let kept = Kept::new(Duration::from_millis(200));
        assert_eq!(*kept.get(fetch(&calls, 1)).await.unwrap(), 1);
        // Kept: the second view asks nobody.
        assert_eq!(*kept.get(fetch(&calls, 2)).await.unwrap(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Too old: asked again, and a failure is passed on, not kept.
        assert!(kept.get(fetch(&calls, 0)).await.is_err());
        assert_eq!(*kept.get(fetch(&calls, 3)).await.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_zero_time_to_live_keeps_nothing() {
        let calls = AtomicUsize::new(0);
        let kept = Kept::new(Duration::ZERO);
        kept.get(fetch(&calls, 1)).await.unwrap();
        assert_eq!(*kept.get(fetch(&calls, 2)).await.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
