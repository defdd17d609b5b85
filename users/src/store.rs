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
    /// Whether an account was deleted.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
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

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(self.pool.get()?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
