//! Replicas that agree: every replica builds its index from a snapshot of the ratings table, then
//! follows the change log (`rating_changes`) that each write appends in its own transaction, and
//! applies each change once, whichever replica took the write (its own included). The live feed
//! is served from the same log, so every replica's feed carries every rating.
//!
//! - **Waking.** On PostgreSQL a commit sends `NOTIFY rating_changes` and [`listen`] wakes the
//!   follower; a notification lost with its connection costs nothing but time, because the
//!   follower reads the log from its own position, after a reconnect and every `poll_every` at
//!   the latest. SQLite has no notifications: the log is polled every `poll_every`.
//! - **Gaps.** PostgreSQL hands out positions from a sequence when a row is inserted, so a
//!   transaction that took position 7 may commit after the one that took 8. A position skipped
//!   over is held as a *gap* and asked for again at every read until it appears or `gap_wait`
//!   has passed (the transaction rolled back, or the sequence jumped). Two writes of one rating
//!   cannot trade places: the second waits for the first's row lock before it takes a position.
//! - **Start: snapshot plus tail.** The ratings are read in one transaction together with the
//!   log's head and the positions below it not yet committed (the snapshot's gaps); the tail
//!   starts there, so nothing is missed and nothing is applied twice.
//! - **Retention.** Changes older than `retention` are deleted (by any replica, every tenth of
//!   it), and the highest deleted position is recorded. A replica that finds its position below
//!   that one has missed changes: it reloads a snapshot by itself, serving the old index until
//!   the new one is built (its live feed skips the changes it missed). A replica that was down
//!   simply starts from a snapshot.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use catalog::Digest;
use futures_util::StreamExt;
use platform::{backoff::Backoff, metrics::Metrics};
use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge};
use tokio::sync::{Notify, broadcast, watch};

use crate::{
    recommender::{Engine, LoadSummary, Recommender},
    similarity::Limits,
    store::{Change, RatingStore, Snapshot, StoreError},
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

/// Most skipped positions held at once; beyond it the oldest are given up.
const MAX_GAPS: usize = 10_000;

/// Where this replica stands in the log.
#[derive(Debug)]
struct Cursor {
    /// The highest position read.
    last: i64,
    /// Positions below `last` not seen yet, with when each was first missed.
    gaps: BTreeMap<i64, Instant>,
    /// When the last read found nothing more to read.
    caught_up: Instant,
}

impl Cursor {
    fn new(snapshot_position: i64, gaps: &[i64], now: Instant) -> Self {
        Self {
            last: snapshot_position,
            gaps: gaps.iter().map(|&p| (p, now)).collect(),
            caught_up: now,
        }
    }

    /// Whether the change at `position` has been applied (or was in the snapshot).
    fn seen(&self, position: i64) -> bool {
        position <= self.last && !self.gaps.contains_key(&position)
    }

    /// Takes the change at `position`: true when it is new here and must be applied.
    fn take(&mut self, position: i64, now: Instant) -> bool {
        if position > self.last {
            for skipped in (self.last + 1)..position {
                self.gaps.insert(skipped, now);
            }
            while self.gaps.len() > MAX_GAPS {
                self.gaps.pop_first();
            }
            self.last = position;
            true
        } else {
            self.gaps.remove(&position).is_some()
        }
    }

    /// Gives up the gaps missed for longer than `wait`.
    fn expire(&mut self, now: Instant, wait: Duration) {
        self.gaps
            .retain(|_, missed| now.duration_since(*missed) < wait);
    }
}

/// What the follower exports (see the Grafana panels "Ratings log").
#[derive(Clone)]
struct LogMetrics {
    position: IntGauge,
    lag: Gauge,
    gaps: IntGauge,
    applied: IntCounter,
    delay: Histogram,
    reloads: IntCounterVec,
    pruned: IntCounter,
}

impl LogMetrics {
    fn new(metrics: &Metrics) -> Self {
        let reloads = metrics.counter_vec(
            "recommendations_log_loads_total",
            "Index builds from a snapshot, by reason (start, behind: the log was pruned past this replica).",
            &["reason"],
        );
        // Both series exist from the start, so the first reload is an increase.
        for reason in ["start", "behind"] {
            reloads.with_label_values(&[reason]);
        }
        Self {
            position: metrics.gauge(
                "recommendations_log_position",
                "The highest change log position this replica has read.",
            ),
            lag: metrics.float_gauge(
                "recommendations_log_lag_seconds",
                "Seconds since this replica last read the change log to its end (0: caught up).",
            ),
            gaps: metrics.gauge(
                "recommendations_log_open_gaps",
                "Log positions skipped over and still awaited (transactions not yet committed).",
            ),
            applied: metrics
                .counter_vec(
                    "recommendations_log_applied_total",
                    "Changes from the log applied to this replica's index.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
            delay: metrics
                .histogram_vec(
                    "recommendations_log_apply_delay_seconds",
                    "From a rating's write to its change applied in this replica's index.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
            reloads,
            pruned: metrics
                .counter_vec(
                    "recommendations_log_pruned_total",
                    "Changes deleted from the log by this replica's retention pass.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
        }
    }
}

/// Follows the change log into the index and the feed.
pub struct Follower {
    store: Arc<dyn RatingStore>,
    engine: Engine,
    /// What a fresh index is made of; set when [`Follower::run`] starts.
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

    /// Builds a fresh index from a snapshot; retries with backoff until the database answers.
    async fn load(&self, reason: &str) -> (Arc<Recommender>, Cursor) {
        let Some((catalog, limits)) = self.model.get() else {
            unreachable!("run() sets the model before the first load");
        };
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let recommender = Recommender::with_limits(catalog.clone(), *limits);
            match build(&*self.store, &recommender).await {
                Ok((position, gaps, summary)) => {
                    let stats = recommender.stats();
                    tracing::info!(
                        reason,
                        position,
                        gaps = gaps.len(),
                        rows = summary.rows,
                        skipped = summary.skipped,
                        ratings = stats.ratings,
                        users = stats.users,
                        books = stats.books,
                        neighbour_entries = stats.neighbour_entries,
                        index_bytes = stats.approx_bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "recommender loaded"
                    );
                    self.metrics.reloads.with_label_values(&[reason]).inc();
                    return (
                        Arc::new(recommender),
                        Cursor::new(position, &gaps, Instant::now()),
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, reason, "loading ratings failed; retrying");
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(BACKOFF.step(failures)).await;
                }
            }
        }
    }

    async fn install(&self, reason: &str) {
        let (recommender, cursor) = self.load(reason).await;
        self.metrics.position.set(cursor.last);
        self.metrics.gaps.set(cursor.gaps.len() as i64);
        self.engine.set(recommender);
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
/// rebuild ([`rebuild_digest`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexState {
    pub position: i64,
    pub open_gaps: usize,
    pub users: usize,
    pub ratings: usize,
    pub digest: String,
}

/// Streams a snapshot into `recommender`; returns its position, gaps and what was read.
async fn build(
    store: &dyn RatingStore,
    recommender: &Recommender,
) -> Result<(i64, Vec<i64>, LoadSummary), StoreError> {
    let Snapshot {
        position,
        gaps,
        mut rows,
    } = store.snapshot().await?;
    let mut loader = recommender.loader();
    while let Some(row) = rows.next().await {
        loader.push(row?);
    }
    Ok((position, gaps, loader.finish()))
}

/// The digest of an index built from scratch from the ratings table now.
pub async fn rebuild_digest(
    store: &dyn RatingStore,
    catalog: Digest,
) -> Result<crate::recommender::IndexDigest, StoreError> {
    let recommender = Recommender::new(catalog);
    build(store, &recommender).await?;
    Ok(recommender.digest())
}

/// 100 ms doubling per failure, to 5 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    floor: Duration::ZERO,
};

/// Wakes `follower` at every PostgreSQL commit that logged a change, and after every
/// (re)connection of the listening session (named `application_name` in `pg_stat_activity`).
pub async fn listen(url: String, application_name: &'static str, follower: Arc<Follower>) {
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    let mut failures = 0u32;
    loop {
        let session = async {
            let options: PgConnectOptions = url.parse()?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(options.application_name(application_name))
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(crate::store::CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match session.await {
            Ok(mut listener) => {
                if failures > 0 {
                    tracing::info!("listening for ratings log commits again");
                }
                failures = 0;
                // Whatever committed while no one listened is read now.
                follower.nudge();
                loop {
                    match listener.try_recv().await {
                        // A lost connection is re-made before `None`: read what was missed.
                        Ok(_) => follower.nudge(),
                        Err(error) => {
                            tracing::warn!(%error, "the ratings log listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                if failures == 0 || failures.is_power_of_two() {
                    tracing::warn!(%error, "cannot listen for ratings log commits yet");
                }
            }
        }
        failures = failures.saturating_add(1);
        follower.nudge();
        tokio::time::sleep(BACKOFF.step(failures)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_skipped_over_is_awaited_and_taken_once_when_it_commits() {
        let t0 = Instant::now();
        let mut c = Cursor::new(4, &[], t0);
        assert!(c.take(6, t0));
        assert!(!c.seen(5) && c.seen(4) && c.seen(6));
        assert!(c.take(5, t0), "the late commit is new here");
        assert!(
            !c.take(5, t0) && !c.take(6, t0),
            "each change is applied once"
        );
        assert!(c.gaps.is_empty() && c.seen(5));
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait() {
        let t0 = Instant::now();
        let mut c = Cursor::new(0, &[2], t0);
        assert!(c.take(5, t0));
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        c.expire(t0 + Duration::from_secs(29), Duration::from_secs(30));
        assert_eq!(c.gaps.len(), 4);
        c.expire(t0 + Duration::from_secs(30), Duration::from_secs(30));
        assert!(c.gaps.is_empty());
    }

    #[test]
    fn backoff_doubles_to_five_seconds() {
        assert_eq!(BACKOFF.step(1), Duration::from_millis(100));
        assert_eq!(BACKOFF.step(2), Duration::from_millis(200));
        assert_eq!(BACKOFF.step(30), Duration::from_secs(5));
    }
}
