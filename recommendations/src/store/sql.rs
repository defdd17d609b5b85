//! [`RatingStore`] on `sqlx`, SQLite or PostgreSQL: every write appends its change to the log
//! in the same transaction, and PostgreSQL commits notify the replicas that listen.

use platform::database::LazyPool;
use sqlx::{Any, AnyConnection, Executor, Row, Transaction, any::AnyRow};

use super::{
    backend::Backend,
    rating_store::{Change, RatingRow, RatingStore, Snapshot, StoreError, Written},
    snapshot::{self, PAGE_ROWS, row},
};

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

    /// A transaction that writes. SQLite's default transaction starts as a reader and becomes a
    /// writer at its first write; when another connection committed in between, SQLite answers
    /// "database is locked" at once, without waiting out `busy_timeout` (the reader's view is
    /// already stale, so waiting could not help), and concurrent ratings failed. `BEGIN
    /// IMMEDIATE` takes the write lock first, so writers wait their turn instead. PostgreSQL
    /// locks rows as it writes them.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let pool = self.pool.get()?;
        Ok(match self.backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => pool.begin().await?,
        })
    }

    /// Commits `tx`, waking the replicas that listen (PostgreSQL delivers at commit).
    async fn commit(&self, mut tx: Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            tx.execute(NOTIFY).await?;
        }
        tx.commit().await
    }
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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
        snapshot::read(&self.pool, self.backend, self.page_rows).await
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
        let mut tx = self.begin_write().await?;
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
