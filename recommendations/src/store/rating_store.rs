//! What the service asks of its storage (the [`RatingStore`] trait) and the values it trades in:
//! ratings, change log entries, snapshots and errors.

use futures_util::stream::BoxStream;
use platform::database::NotReady;

/// A stored rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRow {
    pub user_id: String,
    pub book_id: i64,
    pub stars: i64,
    pub updated_at_ms: i64,
}

/// One entry of the change log: `user_id`'s rating of `book_id` became `stars` (`None`:
/// removed) at `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub position: i64,
    pub user_id: String,
    pub book_id: i64,
    pub stars: Option<i64>,
    /// The stars it replaced or removed.
    pub previous: Option<i64>,
    pub at_ms: i64,
}

/// What a write did: the stars it replaced and the log position of its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub previous: Option<i64>,
    pub position: i64,
}

/// The ratings table as of one log position, to build an index from and follow the log after.
pub struct Snapshot {
    /// Every change at or below it is in `rows`, except `gaps`.
    pub position: i64,
    /// Positions at or below `position` that were not committed when the snapshot was taken
    /// (a transaction still running, or rolled back): they may still appear in the log.
    pub gaps: Vec<i64>,
    /// Every rating, ordered by user, then time (oldest first), then book.
    pub rows: BoxStream<'static, Result<RatingRow, StoreError>>,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    NotReady(#[from] NotReady),
}

/// Where ratings live.
#[tonic::async_trait]
pub trait RatingStore: Send + Sync + 'static {
    /// Sets a rating and logs the change.
    async fn upsert(&self, rating: &RatingRow) -> Result<Written, StoreError>;
    /// Deletes a rating and logs the change; `None` when there was none.
    async fn delete(
        &self,
        user_id: &str,
        book_id: i64,
        at_ms: i64,
    ) -> Result<Option<Written>, StoreError>;
    /// A user's ratings, most recent first (ties by book id), `limit` from `offset`.
    async fn list_by_user(
        &self,
        user_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<RatingRow>, StoreError>;
    /// Deletes every rating of a user, one logged change each; returns the log positions.
    async fn delete_user(&self, user_id: &str, at_ms: i64) -> Result<Vec<i64>, StoreError>;
    /// Records that tokens matching `key` are ended until `until_ms` (see platform::revocation).
    async fn revoke(&self, key: &str, until_ms: i64) -> Result<(), StoreError>;
    /// Every rating and the log position they stand at, read in one transaction.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// Up to `limit` changes after `after`, and those at the positions `gaps`, by position.
    async fn changes(
        &self,
        after: i64,
        gaps: &[i64],
        limit: u32,
    ) -> Result<Vec<Change>, StoreError>;
    /// The highest position retention has deleted (0: none).
    async fn pruned_through(&self) -> Result<i64, StoreError>;
    /// Deletes the changes logged before `before_ms`; returns how many.
    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError>;
}
