//! Account storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).

use std::sync::LazyLock;

use platform::{
    database::{EmbeddedMigration, LazyPool, NotReady, embedded_migrator},
    migration,
};
use sqlx::{Row, any::AnyRow, migrate::Migrator};

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

/// A signed-in session: its token's `sid`, until the token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub expires_at_ms: i64,
}

/// A new password for [`UserStore::update`].
#[derive(Debug, Clone, Copy)]
pub struct NewPassword<'a> {
    /// The new password's hash.
    pub hash: &'a str,
    /// The hash the caller's current password was checked against: the change is made only if
    /// it is still the account's (else [`StoreError::PasswordChanged`]).
    pub replaces: &'a str,
    /// The session making the change: every other session of the account ends.
    pub keep_session: &'a str,
}

/// An account after [`UserStore::update`], and the sessions a new password ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    pub user: UserRow,
    pub ended: Vec<SessionRow>,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The password changed between the check of the current one and the change.
    #[error("the account's password changed meanwhile")]
    PasswordChanged,
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
    /// Records a session signed in with the password whose hash is `checked_hash`, unless the
    /// account's password has changed since it was checked: then nothing is recorded and the
    /// answer is false (the sign-in must fail). Forgets sessions expired by `now_ms`.
    async fn start_session(
        &self,
        session: &SessionRow,
        checked_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Sets what is given; `None` when there is no such account. A new password ends every
    /// other unexpired session of the account in the same transaction (revoked, and queued for
    /// recommendations in the outbox), and they are returned.
    async fn update(
        &self,
        id: &str,
        display_name: Option<&str>,
        password: Option<NewPassword<'_>>,
        now_ms: i64,
    ) -> Result<Option<Updated>, StoreError>;
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

/// The migrations of the users database (`migrations/*.sql`).
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    migration!("20261101000000_create_users.sql"),
    migration!("20261122000000_revocations_and_outbox.sql"),
    migration!("20261201000000_sessions.sql"),
];

/// The migrator of the users database.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| embedded_migrator(MIGRATIONS));

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

    async fn start_session(
        &self,
        session: &SessionRow,
        checked_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let db = self.pool.get()?;
        // Apart from the transaction: concurrent sign-ins do not wait on each other's pruning.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(db)
            .await?;
        let mut tx = db.begin().await?;
        // Locks the account's row: a password change either commits first (and this finds
        // another hash) or waits for this session, which it then ends.
        let same = sqlx::query(
            "UPDATE users SET password_hash = password_hash WHERE id = $1 AND password_hash = $2",
        )
        .bind(&session.user_id)
        .bind(checked_hash)
        .execute(&mut *tx)
        .await?;
        if same.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, expires_at_ms, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(session.expires_at_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update(
        &self,
        id: &str,
        display_name: Option<&str>,
        password: Option<NewPassword<'_>>,
        now_ms: i64,
    ) -> Result<Option<Updated>, StoreError> {
        let mut tx = self.pool.get()?.begin().await?;
        let done = match &password {
            None => sqlx::query(
                "UPDATE users SET display_name = COALESCE($1, display_name), updated_at_ms = $2 \
                 WHERE id = $3",
            )
            .bind(display_name)
            .bind(now_ms)
            .bind(id),
            Some(p) => sqlx::query(
                "UPDATE users SET display_name = COALESCE($1, display_name), password_hash = $2, \
                 updated_at_ms = $3 WHERE id = $4 AND password_hash = $5",
            )
            .bind(display_name)
            .bind(p.hash)
            .bind(now_ms)
            .bind(id)
            .bind(p.replaces),
        }
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return match (exists, password) {
                (true, Some(_)) => Err(StoreError::PasswordChanged),
                _ => Ok(None),
            };
        }
        let mut ended = Vec::new();
        if let Some(p) = password {
            let rows = sqlx::query(
                "SELECT id, expires_at_ms FROM sessions \
                 WHERE user_id = $1 AND id <> $2 AND expires_at_ms > $3",
            )
            .bind(id)
            .bind(p.keep_session)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                let session = SessionRow {
                    id: r.try_get("id")?,
                    user_id: id.to_owned(),
                    expires_at_ms: r.try_get("expires_at_ms")?,
                };
                let key = platform::auth::Revocations::session_key(&session.id);
                platform::revocation::record(&mut *tx, &key, session.expires_at_ms, now_ms).await?;
                enqueue(
                    &mut tx,
                    OutboxKind::RevokeSession,
                    &session.id,
                    session.expires_at_ms,
                    now_ms,
                )
                .await?;
                ended.push(session);
            }
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                .bind(id)
                .bind(p.keep_session)
                .execute(&mut *tx)
                .await?;
        }
        let q = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let r = sqlx::query(&q).bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(Updated {
            user: row(r)?,
            ended,
        }))
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
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
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
        // Ended now: a later password change has nothing left to end here.
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        platform::database::testing::assert_embeds_every_file(&dir, super::MIGRATIONS);
    }
}
