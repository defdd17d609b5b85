//! Rating storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).
//!
//! Every write also appends to the change log (`rating_changes`) in the same transaction, so
//! the log and the ratings table never disagree; replicas follow the log (see
//! [`crate::changelog`]) and start from a [`Snapshot`] of the table taken with the log's position.

use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use platform::{
    database::{EmbeddedMigration, LazyPool, NotReady, embedded_migrator},
    migration,
};
use sqlx::{Any, AnyConnection, Executor, Row, Transaction, any::AnyRow, migrate::Migrator};

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

/// The database engine behind a URL: the two differ only in how log positions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The migrations shared by both engines (`migrations/*.sql`).
pub const PORTABLE: &[EmbeddedMigration] = &[
    migration!("20261101000000_create_ratings.sql"),
    migration!("20261120000000_ratings_by_user_time.sql"),
    migration!("20261122000000_revocations.sql"),
    migration!("20261207000000_rating_log_meta.sql"),
];

/// The change log's table, whose position column each engine makes its own way.
pub const SQLITE_ONLY: &[EmbeddedMigration] =
    &[migration!("sqlite/20261207000001_rating_changes.sql")];
pub const POSTGRES_ONLY: &[EmbeddedMigration] =
    &[migration!("postgres/20261207000001_rating_changes.sql")];

/// The migrations of the ratings database on `backend`: the portable ones plus its own.
pub fn migrator(backend: Backend) -> Migrator {
    let own = match backend {
        Backend::Sqlite => SQLITE_ONLY,
        Backend::Postgres => POSTGRES_ONLY,
    };
    embedded_migrator(&[PORTABLE, own].concat())
}

/// Rows per page when streaming every rating at start.
pub const PAGE_ROWS: i64 = 10_000;

/// How far below a snapshot's position its gaps are looked for: more than the transactions
/// that can be in flight at once (every replica's pool).
const GAP_SCAN: i64 = 1_000;

/// The PostgreSQL channel a commit with changes notifies (`LISTEN rating_changes`).
pub const CHANNEL: &str = "rating_changes";
const NOTIFY: &str = "NOTIFY rating_changes";

/// Ratings in a SQL database.
#[derive(Clone)]
pub struct SqlRatingStore {
    pool: LazyPool,
    backend: Backend,
    page_rows: i64,
}

impl SqlRatingStore {
    pub fn new(pool: LazyPool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            page_rows: PAGE_ROWS,
        }
    }

    /// Streams every rating in pages of `rows` rows (at least 1) instead of [`PAGE_ROWS`].
    pub fn with_page_rows(mut self, rows: i64) -> Self {
        self.page_rows = rows.max(1);
        self
    }

    /// Appends a change to the log inside `tx`; returns its position.
    async fn log(
        &self,
        conn: &mut AnyConnection,
        user_id: &str,
        book_id: i64,
        stars: Option<i64>,
        previous: Option<i64>,
        at_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        let position = sqlx::query(
            "INSERT INTO rating_changes (user_id, book_id, stars, previous_stars, at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING position",
        )
        .bind(user_id)
        .bind(book_id)
        .bind(stars)
        .bind(previous)
        .bind(at_ms)
        .fetch_one(&mut *conn)
        .await?
        .try_get("position")?;
        Ok(position)
    }

    /// Commits `tx`, waking the replicas that listen (PostgreSQL delivers at commit).
    async fn commit(&self, mut tx: Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            tx.execute(NOTIFY).await?;
        }
        tx.commit().await
    }
}

fn row(r: AnyRow) -> Result<RatingRow, sqlx::Error> {
    Ok(RatingRow {
        user_id: r.try_get("user_id")?,
        book_id: r.try_get("book_id")?,
        stars: r.try_get("stars")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn change(r: AnyRow) -> Result<Change, sqlx::Error> {
    Ok(Change {
        position: r.try_get("position")?,
        user_id: r.try_get("user_id")?,
        book_id: r.try_get("book_id")?,
        stars: r.try_get("stars")?,
        previous: r.try_get("previous_stars")?,
        at_ms: r.try_get("at_ms")?,
    })
}

async fn stars_of(
    conn: &mut AnyConnection,
    user_id: &str,
    book_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT stars FROM ratings WHERE user_id = $1 AND book_id = $2")
        .bind(user_id)
        .bind(book_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("stars"))
        .transpose()
}

#[tonic::async_trait]
impl RatingStore for SqlRatingStore {
    async fn upsert(&self, r: &RatingRow) -> Result<Written, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let previous = stars_of(&mut tx, &r.user_id, r.book_id).await?;
        sqlx::query(
            "INSERT INTO ratings (user_id, book_id, stars, updated_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, book_id) DO UPDATE SET stars = excluded.stars, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&r.user_id)
        .bind(r.book_id)
        .bind(r.stars)
        .bind(r.updated_at_ms)
        .execute(&mut *tx)
        .await?;
        // Logged after the row is written: its lock orders two writes of one rating, so their
        // positions follow their commits.
        let position = self
            .log(
                &mut tx,
                &r.user_id,
                r.book_id,
                Some(r.stars),
                previous,
                r.updated_at_ms,
            )
            .await?;
        self.commit(tx).await?;
        Ok(Written { previous, position })
    }

    async fn delete(
        &self,
        user_id: &str,
        book_id: i64,
        at_ms: i64,
    ) -> Result<Option<Written>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let gone: Option<i64> =
            sqlx::query("DELETE FROM ratings WHERE user_id = $1 AND book_id = $2 RETURNING stars")
                .bind(user_id)
                .bind(book_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("stars"))
                .transpose()?;
        let Some(stars) = gone else {
            return Ok(None);
        };
        let position = self
            .log(&mut tx, user_id, book_id, None, Some(stars), at_ms)
            .await?;
        self.commit(tx).await?;
        Ok(Some(Written {
            previous: Some(stars),
            position,
        }))
    }

    async fn list_by_user(
        &self,
        user_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<RatingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, book_id, stars, updated_at_ms FROM ratings WHERE user_id = $1 \
             ORDER BY updated_at_ms DESC, book_id ASC LIMIT $2 OFFSET $3",
        )
        .bind(user_id)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(self.pool.get()?)
        .await?;
        Ok(rows.into_iter().map(row).collect::<Result<_, _>>()?)
    }

    async fn delete_user(&self, user_id: &str, at_ms: i64) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        // Exactly the rows deleted (and locked) are logged, whatever commits beside this.
        let mut gone =
            sqlx::query("DELETE FROM ratings WHERE user_id = $1 RETURNING book_id, stars")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get("book_id")?, r.try_get("stars")?)))
                .collect::<Result<Vec<(i64, i64)>, sqlx::Error>>()?;
        gone.sort_unstable();
        let mut positions = Vec::with_capacity(gone.len());
        for (book_id, stars) in gone {
            positions.push(
                self.log(&mut tx, user_id, book_id, None, Some(stars), at_ms)
                    .await?,
            );
        }
        self.commit(tx).await?;
        Ok(positions)
    }

    async fn revoke(&self, key: &str, until_ms: i64) -> Result<(), StoreError> {
        platform::revocation::record(self.pool.get()?, key, until_ms, platform::now_unix_ms())
            .await?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        if self.backend == Backend::Postgres {
            // One snapshot for every statement below: the log's head and the ratings agree.
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
        }
        let position: i64 = sqlx::query("SELECT MAX(position) AS head FROM rating_changes")
            .fetch_one(&mut *tx)
            .await?
            .try_get::<Option<i64>, _>("head")?
            .unwrap_or(0);
        let pruned: i64 = sqlx::query("SELECT pruned_through FROM rating_log_meta")
            .fetch_one(&mut *tx)
            .await?
            .try_get("pruned_through")?;
        // Gaps are looked for above what retention deleted, in the last GAP_SCAN positions.
        let scanned_after = (position - GAP_SCAN).max(pruned);
        let visible: Vec<i64> = sqlx::query(
            "SELECT position FROM rating_changes WHERE position > $1 ORDER BY position",
        )
        .bind(scanned_after)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| r.try_get("position"))
        .collect::<Result<_, _>>()?;
        let gaps = missing(scanned_after + 1, position, &visible);
        let page_rows = self.page_rows;
        // Keyset pages inside the transaction: each a short statement over the covering index.
        // State: the transaction and where the next page starts; `None` once the last is read.
        let start = Some((tx, None::<Cursor>));
        let pages = futures_util::stream::try_unfold(start, move |state| async move {
            let Some((mut tx, after)) = state else {
                return Ok::<_, StoreError>(None);
            };
            let page = page_after(&mut tx, after.as_ref(), page_rows).await?;
            let next = match page.last() {
                Some(last) if page.len() >= page_rows as usize => {
                    Some((tx, Some(Cursor::of(last))))
                }
                _ => {
                    tx.commit().await?;
                    None
                }
            };
            Ok(Some((page, next)))
        });
        let rows = pages
            .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok)))
            .try_flatten()
            .boxed();
        Ok(Snapshot {
            position,
            gaps,
            rows,
        })
    }

    async fn changes(
        &self,
        after: i64,
        gaps: &[i64],
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        // Gaps are integers this process tracks, spelled into the statement: portable, and
        // a handful at most in practice.
        let mut sql = String::from(
            "SELECT position, user_id, book_id, stars, previous_stars, at_ms FROM rating_changes \
             WHERE position > $1",
        );
        if !gaps.is_empty() {
            let list: Vec<String> = gaps.iter().map(i64::to_string).collect();
            sql.push_str(&format!(" OR position IN ({})", list.join(",")));
        }
        sql.push_str(" ORDER BY position LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool.get()?)
            .await?;
        Ok(rows.into_iter().map(change).collect::<Result<_, _>>()?)
    }

    async fn pruned_through(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT pruned_through FROM rating_log_meta")
            .fetch_one(self.pool.get()?)
            .await?
            .try_get("pruned_through")?)
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let through: Option<i64> =
            sqlx::query("SELECT MAX(position) AS p FROM rating_changes WHERE at_ms < $1")
                .bind(before_ms)
                .fetch_one(&mut *tx)
                .await?
                .try_get("p")?;
        let Some(through) = through else {
            return Ok(0);
        };
        let deleted = sqlx::query("DELETE FROM rating_changes WHERE position <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE rating_log_meta SET pruned_through = $1 WHERE pruned_through < $1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// The positions in `from..=to` that `present` (sorted) lacks.
fn missing(from: i64, to: i64, present: &[i64]) -> Vec<i64> {
    let mut gaps = Vec::new();
    let mut next = from;
    for &p in present.iter().filter(|&&p| p >= from && p <= to) {
        gaps.extend(next..p);
        next = p + 1;
    }
    gaps.extend(next..=to);
    gaps
}

/// Where a keyset page starts: after this (user, time, book).
struct Cursor(String, i64, i64);

impl Cursor {
    fn of(r: &RatingRow) -> Self {
        Self(r.user_id.clone(), r.updated_at_ms, r.book_id)
    }
}

/// Up to `page_rows` ratings after `after`, ordered by user, time, book.
async fn page_after(
    conn: &mut AnyConnection,
    after: Option<&Cursor>,
    page_rows: i64,
) -> Result<Vec<RatingRow>, StoreError> {
    let rows = match after {
        None => {
            sqlx::query(
                "SELECT user_id, book_id, stars, updated_at_ms FROM ratings \
                 ORDER BY user_id, updated_at_ms, book_id LIMIT $1",
            )
            .bind(page_rows)
            .fetch_all(&mut *conn)
            .await?
        }
        Some(Cursor(user, at, book)) => {
            sqlx::query(
                "SELECT user_id, book_id, stars, updated_at_ms FROM ratings \
                 WHERE (user_id, updated_at_ms, book_id) > ($1, $2, $3) \
                 ORDER BY user_id, updated_at_ms, book_id LIMIT $4",
            )
            .bind(user.as_str())
            .bind(*at)
            .bind(*book)
            .bind(page_rows)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    Ok(rows.into_iter().map(row).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_positions_a_snapshot_lacks_are_its_gaps() {
        assert_eq!(missing(1, 6, &[1, 2, 4, 6]), vec![3, 5]);
        assert_eq!(missing(1, 3, &[]), vec![1, 2, 3]);
        assert_eq!(missing(5, 4, &[]), Vec::<i64>::new());
        assert_eq!(missing(3, 5, &[1, 3, 4, 5, 9]), Vec::<i64>::new());
    }

    #[test]
    fn every_migration_file_is_compiled_in() {
        use platform::database::testing::assert_embeds_every_file;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        assert_embeds_every_file(&dir, PORTABLE);
        assert_embeds_every_file(&dir.join("sqlite"), SQLITE_ONLY);
        assert_embeds_every_file(&dir.join("postgres"), POSTGRES_ONLY);
    }
}
