//! The home page's "Popular now" panel, kept a moment.

use crate::{error::ApiError, model::Pick};

/// The "Popular now" panel: the same for every visitor and slow to change, so it is kept for a
/// short while (`POPULAR_CACHE_MS`) instead of asking recommendations again on every page view.
/// A reader's own picks are never kept. Only answers are kept, never a failure, so a panel whose
/// service is down is left out as soon as the kept one is too old.
pub struct PopularPanel {
    ttl: std::time::Duration,
    kept: std::sync::RwLock<Option<(std::time::Instant, std::sync::Arc<[Pick]>)>>,
}

impl PopularPanel {
    /// A panel kept for `ttl` (zero: never kept).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            kept: std::sync::RwLock::new(None),
        }
    }

    /// The kept panel, if younger than its time to live.
    fn fresh(&self) -> Option<std::sync::Arc<[Pick]>> {
        if self.ttl.is_zero() {
            return None;
        }
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        kept.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, recs)| recs.clone())
    }

    /// Keeps `recs`, just fetched.
    fn keep(&self, recs: Vec<Pick>) -> std::sync::Arc<[Pick]> {
        let recs: std::sync::Arc<[_]> = recs.into();
        if !self.ttl.is_zero() {
            *self.kept.write().unwrap_or_else(|e| e.into_inner()) =
                Some((std::time::Instant::now(), recs.clone()));
        }
        recs
    }

    /// The panel: kept, or fetched with `fetch` (and kept).
    pub async fn get<F>(&self, fetch: F) -> Result<std::sync::Arc<[Pick]>, ApiError>
    where
        F: Future<Output = Result<Vec<Pick>, ApiError>>,
    {
        match self.fresh() {
            Some(recs) => Ok(recs),
            None => Ok(self.keep(fetch.await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn pick(id: i64) -> Pick {
        Pick {
            book_id: id,
            title: format!("Book {id}"),
            authors: Vec::new(),
            reason: String::new(),
        }
    }

    /// Fetches book `id`, counting the fetches; fails when `id` is 0.
    async fn fetch(calls: &std::sync::atomic::AtomicUsize, id: i64) -> Result<Vec<Pick>, ApiError> {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if id == 0 {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "down"));
        }
        Ok(vec![pick(id)])
    }

    #[tokio::test]
    async fn the_popular_panel_is_kept_for_its_time_to_live_and_failures_never() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let panel = PopularPanel::new(std::time::Duration::from_millis(200));
        assert_eq!(panel.get(fetch(&calls, 1)).await.unwrap()[0].book_id, 1);
        // Kept: the second view asks nobody.
        assert_eq!(panel.get(fetch(&calls, 2)).await.unwrap()[0].book_id, 1);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        // Too old: asked again, and a failure is passed on, not kept.
        assert!(panel.get(fetch(&calls, 0)).await.is_err());
        assert_eq!(panel.get(fetch(&calls, 3)).await.unwrap()[0].book_id, 3);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_zero_time_to_live_keeps_nothing() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let panel = PopularPanel::new(std::time::Duration::ZERO);
        panel.get(fetch(&calls, 1)).await.unwrap();
        assert_eq!(panel.get(fetch(&calls, 2)).await.unwrap()[0].book_id, 2);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
