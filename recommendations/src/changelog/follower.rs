//! The follower: reads the change log from its own position into this replica's index and
//! live feed, when nudged and every `poll_every`, and prunes what retention lets go.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use catalog::Digest;
use platform::metrics::Metrics;
use tokio::sync::{Notify, broadcast, watch};

use super::{cursor::Cursor, metrics::LogMetrics, retry::BACKOFF, snapshot};
use crate::{
    recommender::Engine,
    similarity::Limits,
    store::{Change, RatingStore, StoreError},
};

/// How the follower reads the log.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Longest wait between two reads of the log (the only wake-up on SQLite).
    pub poll_every: Duration,
    /// How long a skipped position is waited for before it is taken as rolled back.
    pub gap_wait: Duration,
    /// Changes older than this are deleted from the log.
    pub retention: Duration,
    /// Changes read per statement.
    pub batch: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_millis(100),
            gap_wait: Duration::from_secs(30),
            retention: Duration::from_secs(600),
            batch: 1_000,
        }
    }
}

/// Follows the change log into the index and the feed.
pub struct Follower {
    store: Arc<dyn RatingStore>,
    engine: Engine,
    /// What a fresh index is made of; set when [`Follower::start`] runs.
    model: std::sync::OnceLock<(Digest, Limits)>,
    settings: Settings,
    feed: broadcast::Sender<Change>,
    cursor: Mutex<Option<Cursor>>,
    /// Bumped after every batch applied, for writers waiting on their own change.
    applied: watch::Sender<u64>,
    nudge: Notify,
    metrics: LogMetrics,
}

impl Follower {
    pub fn new(
        store: Arc<dyn RatingStore>,
        engine: Engine,
        settings: Settings,
        metrics: &Metrics,
    ) -> Self {
        Self {
            store,
            engine,
            model: std::sync::OnceLock::new(),
            settings,
            feed: broadcast::Sender::new(1_024),
            cursor: Mutex::new(None),
            applied: watch::Sender::new(0),
            nudge: Notify::new(),
            metrics: LogMetrics::new(metrics),
        }
    }

    /// The live feed: every change this replica applies, whoever wrote it.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// Asks for a read of the log now (a commit was seen, or a connection came back).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, Option<Cursor>> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (at most `within`) until the change at `position` is in this replica's index, so
    /// a writer reads its own write here; false when it is not yet.
    pub async fn wait_applied(&self, position: i64, within: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        self.nudge();
        let seen = || self.cursor().as_ref().is_some_and(|c| c.seen(position));
        tokio::time::timeout(within, async {
            while !seen() {
                if applied.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && seen()
    }

    /// Builds a fresh index from a snapshot and serves from it, continuing the log after it.
    async fn install(&self, reason: &str) {
        let Some((catalog, limits)) = self.model.get() else {
            unreachable!("run() sets the model before the first load");
        };
        let (recommender, position, gaps) =
            snapshot::load(&*self.store, catalog, *limits, reason).await;
        self.metrics.reloads.with_label_values(&[reason]).inc();
        let cursor = Cursor::new(position, &gaps, Instant::now());
        self.metrics.position.set(cursor.last);
        self.metrics.gaps.set(cursor.gaps.len() as i64);
        self.engine.set(Arc::new(recommender));
        *self.cursor() = Some(cursor);
        self.applied.send_modify(|n| *n += 1);
    }

    /// Builds the first index (of `catalog` with `limits`) from a snapshot.
    pub async fn start(&self, catalog: Digest, limits: Limits) {
        let _ = self.model.set((catalog, limits));
        self.install("start").await;
    }

    /// Follows the log after [`Follower::start`], until the process ends: reads it when nudged
    /// and every `poll_every`, prunes it now and then.
    pub async fn follow(&self) {
        let mut failures = 0u32;
        let mut next_prune = Instant::now();
        loop {
            let wait = if failures == 0 {
                self.settings.poll_every
            } else {
                BACKOFF
                    .step(failures)
                    .min(self.settings.poll_every.max(Duration::from_secs(1)))
            };
            tokio::select! {
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            match self.catch_up().await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(%error, failures, "reading the ratings log failed");
                    }
                }
            }
            self.report_lag();
            if Instant::now() >= next_prune {
                next_prune =
                    Instant::now() + (self.settings.retention / 10).max(Duration::from_secs(1));
                self.prune().await;
            }
        }
    }

    fn report_lag(&self) {
        if let Some(c) = self.cursor().as_ref() {
            self.metrics
                .lag
                .set(c.caught_up.elapsed().as_secs_f64().max(0.0));
        }
    }

    /// Reads and applies the log to its end (reloading when retention has passed this replica).
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        loop {
            let (after, gaps) = {
                let mut guard = self.cursor();
                let Some(c) = guard.as_mut() else {
                    return Ok(());
                };
                c.expire(Instant::now(), self.settings.gap_wait);
                (c.last, c.gaps.keys().copied().collect::<Vec<_>>())
            };
            let batch = self
                .store
                .changes(after, &gaps, self.settings.batch)
                .await?;
            // Read after the batch: if retention deleted anything above `after` before the
            // batch was read, changes may be missing from it.
            if self.store.pruned_through().await? > after {
                tracing::warn!(
                    position = after,
                    "the ratings log was pruned past this replica; reloading"
                );
                self.install("behind").await;
                return Ok(());
            }
            let full = batch.len() >= self.settings.batch as usize;
            self.apply(batch);
            if !full {
                if let Some(c) = self.cursor().as_mut() {
                    c.caught_up = Instant::now();
                }
                return Ok(());
            }
        }
    }

    /// Applies the changes new to this replica, in position order, and publishes them.
    fn apply(&self, batch: Vec<Change>) {
        if batch.is_empty() {
            return;
        }
        let Some(engine) = self.engine.get() else {
            return;
        };
        let now_ms = platform::now_unix_ms();
        let (applied, position, open) = {
            let mut guard = self.cursor();
            let Some(cursor) = guard.as_mut() else {
                return;
            };
            let now = Instant::now();
            let mut applied = 0u64;
            for change in batch {
                if !cursor.take(change.position, now) {
                    continue;
                }
                engine.record(&change.user_id, change.book_id, change.stars);
                self.metrics
                    .delay
                    .observe((now_ms - change.at_ms).max(0) as f64 / 1000.0);
                applied += 1;
                // No receivers is fine: nobody is watching.
                let _ = self.feed.send(change);
            }
            (applied, cursor.last, cursor.gaps.len())
        };
        self.metrics.applied.inc_by(applied);
        self.metrics.position.set(position);
        self.metrics.gaps.set(open as i64);
        self.applied.send_modify(|n| *n += 1);
    }

    /// Deletes the changes older than the retention.
    async fn prune(&self) {
        let before = platform::now_unix_ms() - self.settings.retention.as_millis() as i64;
        match self.store.prune(before).await {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.pruned.inc_by(n);
                tracing::debug!(deleted = n, "ratings log pruned");
            }
            Err(error) => tracing::warn!(%error, "pruning the ratings log failed"),
        }
    }

    /// This replica's index digest and log position (the admin port's `/index`).
    pub fn state(&self) -> Option<IndexState> {
        let engine = self.engine.get()?;
        let (position, gaps) = self.cursor().as_ref().map(|c| (c.last, c.gaps.len()))?;
        let d = engine.digest();
        Some(IndexState {
            position,
            open_gaps: gaps,
            users: d.users,
            ratings: d.ratings,
            digest: d.digest,
        })
    }
}

/// What the admin port's `/index` answers: compare replicas with each other and with a
/// rebuild ([`snapshot::rebuild_digest`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexState {
    pub position: i64,
    pub open_gaps: usize,
    pub users: usize,
    pub ratings: usize,
    pub digest: String,
}
