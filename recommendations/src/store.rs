//! Rating storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).

use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use platform::database::{LazyPool, NotReady};
use sqlx::{Row, any::AnyRow};

/// A stored rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRow {
    pub user_id: String,
    pub book_id: i64,
    pub stars: i64,
    pub updated_at_ms: i64,
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
    /// Sets a rating; returns the stars it replaced, if any.
    async fn upsert(&self, rating: &RatingRow) -> Result<Option<i64>, StoreError>;
    /// Deletes a rating; returns its stars, or `None` when there was none.
    async fn delete(&self, user_id: &str, book_id: i64) -> Result<Option<i64>, StoreError>;
    /// A user's ratings, most recent first (ties by book id), `limit` from `offset`.
    async fn list_by_user(
        &self,
        user_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<RatingRow>, StoreError>;
    /// Every rating as a stream, ordered by user, then time (oldest first), then book: to build
    /// the in-memory index at start without holding every row at once (at most a page of them).
    fn stream_all(&self) -> BoxStream<'_, Result<RatingRow, StoreError>>;
    /// Deletes every rating of a user; returns the (book, stars) deleted.
    async fn delete_user(&self, user_id: &str) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Records that tokens matching `key` are ended until `until_ms` (see platform::revocation).
    async fn revoke(&self, key: &str, until_ms: i64) -> Result<(), StoreError>;
}

/// The migrations of the ratings database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows per page when streaming every rating at start.
pub const PAGE_ROWS: i64 = 10_000;

/// Ratings in a SQL database.
#[derive(Clone)]
pub struct SqlRatingStore {
    pool: LazyPool,
    page_rows: i64,
}

impl SqlRatingStore {
    pub fn new(pool: LazyPool) -> Self {
        Self {
            pool,
            page_rows: PAGE_ROWS,
        }
    }

    /// Streams every rating in pages of `rows` rows (at least 1) instead of [`PAGE_ROWS`].
    pub fn with_page_rows(mut self, rows: i64) -> Self {
        self.page_rows = rows.max(1);
        self
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

#[tonic::async_trait]
impl RatingStore for SqlRatingStore {
    async fn upsert(&self, r: &RatingRow) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let old: Option<i64> =
            sqlx::query("SELECT stars FROM ratings WHERE user_id = $1 AND book_id = $2")
                .bind(&r.user_id)
                .bind(r.book_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("stars"))
                .transpose()?;
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
        tx.commit().await?;
        Ok(old)
    }

    async fn delete(&self, user_id: &str, book_id: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let old: Option<i64> =
            sqlx::query("SELECT stars FROM ratings WHERE user_id = $1 AND book_id = $2")
                .bind(user_id)
                .bind(book_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("stars"))
                .transpose()?;
        if old.is_some() {
            sqlx::query("DELETE FROM ratings WHERE user_id = $1 AND book_id = $2")
                .bind(user_id)
                .bind(book_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(old)
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

    async fn delete_user(&self, user_id: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let gone = sqlx::query("SELECT book_id, stars FROM ratings WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("book_id")?, r.try_get("stars")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        sqlx::query("DELETE FROM ratings WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn revoke(&self, key: &str, until_ms: i64) -> Result<(), StoreError> {
        platform::revocation::record(self.pool.get()?, key, until_ms, platform::now_unix_ms())
            .await?;
        Ok(())
    }

    fn stream_all(&self) -> BoxStream<'_, Result<RatingRow, StoreError>> {
        // Keyset pages: each a short statement over the covering index, the next one starting
        // after the last row of the previous. `None` state: the last page has been read.
        let start: Option<Option<Cursor>> = Some(None);
        let pages = futures_util::stream::try_unfold(start, move |cursor| async move {
            let Some(after) = cursor else {
                return Ok::<_, StoreError>(None);
            };
            let page = self.page_after(after.as_ref()).await?;
            let next = (page.len() >= self.page_rows as usize)
                .then(|| page.last().map(Cursor::of))
                .flatten();
            Ok(Some((page, next.map(Some))))
        });
        pages
            .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }
}

/// Where a keyset page starts: after this (user, time, book).
struct Cursor(String, i64, i64);

impl Cursor {
    fn of(r: &RatingRow) -> Self {
        Self(r.user_id.clone(), r.updated_at_ms, r.book_id)
    }
}

impl SqlRatingStore {
    /// Up to `page_rows` ratings after `after`, ordered by user, time, book.
    async fn page_after(&self, after: Option<&Cursor>) -> Result<Vec<RatingRow>, StoreError> {
        let pool = self.pool.get()?;
        let rows = match after {
            None => {
                sqlx::query(
                    "SELECT user_id, book_id, stars, updated_at_ms FROM ratings \
                     ORDER BY user_id, updated_at_ms, book_id LIMIT $1",
                )
                .bind(self.page_rows)
                .fetch_all(pool)
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
                .bind(self.page_rows)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(row).collect::<Result<_, _>>()?)
    }
}
