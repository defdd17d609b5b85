//! An index from a snapshot: the ratings table streamed into a fresh recommender, with the log
//! position and gaps the follower continues from.

use std::time::Instant;

use catalog::Digest;
use futures_util::StreamExt;

use super::retry::BACKOFF;
use crate::{
    recommender::{IndexDigest, LoadSummary, Recommender},
    similarity::Limits,
    store::{RatingStore, Snapshot, StoreError},
};

/// Builds a fresh index of `catalog` with `limits` from a snapshot, retrying with backoff until
/// the database answers; returns it with the snapshot's position and gaps.
pub(super) async fn load(
    store: &dyn RatingStore,
    catalog: &Digest,
    limits: Limits,
    reason: &str,
) -> (Recommender, i64, Vec<i64>) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let recommender = Recommender::with_limits(catalog.clone(), limits);
        match build(store, &recommender).await {
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
                return (recommender, position, gaps);
            }
            Err(error) => {
                tracing::warn!(%error, reason, "loading ratings failed; retrying");
                failures = failures.saturating_add(1);
                tokio::time::sleep(BACKOFF.step(failures)).await;
            }
        }
    }
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
) -> Result<IndexDigest, StoreError> {
    let recommender = Recommender::new(catalog);
    build(store, &recommender).await?;
    Ok(recommender.digest())
}
