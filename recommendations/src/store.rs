//! Rating storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).

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
    /// Every rating (to build the in-memory index at start).
    async fn all(&self) -> Result<Vec<RatingRow>, StoreError>;
}

/// The migrations of the ratings database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Ratings in a SQL database.
#[derive(Clone)]
pub struct SqlRatingStore {
    pool: LazyPool,
}

impl SqlRatingStore {
    pub fn new(pool: LazyPool) -> Self {
        Self { pool }
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

    async fn all(&self) -> Result<Vec<RatingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, book_id, stars, updated_at_ms FROM ratings ORDER BY user_id, book_id",
        )
        .fetch_all(self.pool.get()?)
        .await?;
        Ok(rows.into_iter().map(row).collect::<Result<_, _>>()?)
    }
}
