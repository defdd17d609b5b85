//! Account storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).

use platform::database::{LazyPool, NotReady};
use sqlx::{Row, any::AnyRow};

/// A stored account (the hash never leaves this crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    NotReady(#[from] NotReady),
}

/// Where accounts live.
#[tonic::async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn insert(&self, user: &UserRow, email_lower: &str) -> Result<(), StoreError>;
    async fn by_email(&self, email_lower: &str) -> Result<Option<UserRow>, StoreError>;
    async fn by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError>;
    /// Sets what is given; `None` when there is no such account.
    async fn update(
        &self,
        id: &str,
        display_name: Option<&str>,
        password_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<UserRow>, StoreError>;
    /// Deletes an account and, in the same transaction, ends its tokens until `until_ms` and
    /// queues the deletion of its ratings in the outbox. Whether an account was deleted.
    async fn delete(&self, id: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError>;
    /// Ends a session until `until_ms` (when its token expires) and queues telling the others.
    async fn sign_out(
        &self,
        session_id: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Outbox entries due at `now_ms`, oldest first, at most `limit`.
    async fn outbox_due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Removes a delivered entry.
    async fn outbox_done(&self, id: &str) -> Result<(), StoreError>;
    /// Reschedules an entry after a failed attempt.
    async fn outbox_retry(&self, id: &str, attempts: i64, next_ms: i64) -> Result<(), StoreError>;
}

/// What the outbox tells recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Delete the ratings of a deleted account (subject: the user id), and end its tokens.
    DeleteUser,
    /// End a signed-out session's tokens (subject: the session id).
    RevokeSession,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::DeleteUser => "delete_user",
            Self::RevokeSession => "revoke_session",
        }
    }
}

/// One thing recommendations has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: String,
    /// `None` for a kind this version does not know (written by a newer one): left alone.
    pub kind: Option<OutboxKind>,
    pub subject: String,
    pub expires_at_ms: i64,
    pub attempts: i64,
}

/// Accounts in a SQL database.
#[derive(Clone)]
pub struct SqlUserStore {
    pool: LazyPool,
}

impl SqlUserStore {
    pub fn new(pool: LazyPool) -> Self {
        Self { pool }
    }
}

/// The migrations of the users database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const COLUMNS: &str = "id, email, display_name, password_hash, created_at_ms, updated_at_ms";

fn row(r: AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

#[tonic::async_trait]
impl UserStore for SqlUserStore {
    async fn insert(&self, u: &UserRow, email_lower: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, email_lower, display_name, password_hash, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(email_lower)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.created_at_ms)
        .bind(u.updated_at_ms)
        .execute(self.pool.get()?)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn by_email(&self, email_lower: &str) -> Result<Option<UserRow>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM users WHERE email_lower = $1");
        let r = sqlx::query(&q)
            .bind(email_lower)
            .fetch_optional(self.pool.get()?)
            .await?;
        Ok(r.map(row).transpose()?)
    }

    async fn by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let r = sqlx::query(&q)
            .bind(id)
            .fetch_optional(self.pool.get()?)
            .await?;
        Ok(r.map(row).transpose()?)
    }

    async fn update(
        &self,
        id: &str,
        display_name: Option<&str>,
        password_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET display_name = COALESCE($1, display_name), \
             password_hash = COALESCE($2, password_hash), updated_at_ms = $3 WHERE id = $4",
        )
        .bind(display_name)
        .bind(password_hash)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let q = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let r = sqlx::query(&q).bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(row(r)?))
    }

    async fn delete(&self, id: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let key = platform::auth::Revocations::user_key(id);
        platform::revocation::record(&mut *tx, &key, until_ms, now_ms).await?;
        enqueue(&mut tx, OutboxKind::DeleteUser, id, until_ms, now_ms).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sign_out(
        &self,
        session_id: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let key = platform::auth::Revocations::session_key(session_id);
        platform::revocation::record(&mut *tx, &key, until_ms, now_ms).await?;
        enqueue(
            &mut tx,
            OutboxKind::RevokeSession,
            session_id,
            until_ms,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, subject, expires_at_ms, attempts FROM outbox \
             WHERE next_attempt_ms <= $1 ORDER BY next_attempt_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.pool.get()?)
        .await?;
        let entries = rows
            .into_iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(OutboxEntry {
                    id: r.try_get("id")?,
                    kind: [OutboxKind::DeleteUser, OutboxKind::RevokeSession]
                        .into_iter()
                        .find(|k| k.as_str() == kind),
                    subject: r.try_get("subject")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(entries)
    }

    async fn outbox_done(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(self.pool.get()?)
            .await?;
        Ok(())
    }

    async fn outbox_retry(&self, id: &str, attempts: i64, next_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = $1, next_attempt_ms = $2 WHERE id = $3")
            .bind(attempts)
            .bind(next_ms)
            .bind(id)
            .execute(self.pool.get()?)
            .await?;
        Ok(())
    }
}

async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: OutboxKind,
    subject: &str,
    expires_at_ms: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, kind, subject, expires_at_ms, attempts, next_attempt_ms, created_at_ms) \
         VALUES ($1, $2, $3, $4, 0, $5, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(kind.as_str())
    .bind(subject)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
