//! Ended tokens in a service's own database, mirrored in memory for the interceptor.
//!
//! Each service that checks tokens has a `revocations` table (created by its own migration:
//! `id TEXT PRIMARY KEY, expires_at_ms BIGINT, created_at_ms BIGINT`), where `id` is a
//! [`Revocations::session_key`] or [`Revocations::user_key`] and `expires_at_ms` the moment the
//! last token it can concern expires. [`sync`] polls the table into a [`Revocations`] list, so a
//! revocation written by one replica reaches the others within one poll; entries and rows are
//! dropped once expired, so both hold at most the sessions ended within one token lifetime.

use std::time::Duration;

use sqlx::Row;

use crate::{auth::Revocations, database::LazyPool};

/// Records that tokens matching `key` are ended until `until_ms` (idempotent).
pub async fn record<'c, E>(e: E, key: &str, until_ms: i64, now_ms: i64) -> sqlx::Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO revocations (id, expires_at_ms, created_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, \
         created_at_ms = excluded.created_at_ms",
    )
    .bind(key)
    .bind(until_ms)
    .bind(now_ms)
    .execute(e)
    .await?;
    Ok(())
}

/// Unexpired revocations recorded at or after `since_ms`.
pub async fn load_since(
    pool: &sqlx::AnyPool,
    since_ms: i64,
    now_ms: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT id, expires_at_ms FROM revocations WHERE created_at_ms >= $1 AND expires_at_ms > $2",
    )
    .bind(since_ms)
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at_ms")?)))
        .collect()
}

/// Keeps `revocations` in step with the table every `every`: everything unexpired at first, then
/// what was recorded since the last poll (with a margin for clocks and slow commits), pruning
/// expired entries, and deleting expired rows now and then.
pub async fn sync(pool: LazyPool, revocations: Revocations, every: Duration) {
    const MARGIN_MS: i64 = 30_000;
    let mut since = i64::MIN;
    let mut polls: u64 = 0;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(db) = pool.get() else { continue };
        let now = crate::now_unix_ms();
        match load_since(db, since, now).await {
            Ok(rows) => {
                for (key, until_ms) in rows {
                    revocations.insert(key, until_ms.div_euclid(1000) + 1);
                }
                since = now - MARGIN_MS;
            }
            Err(error) => tracing::warn!(%error, "reading revocations failed; retrying"),
        }
        revocations.prune(now / 1000);
        polls += 1;
        if polls % 60 == 1
            && let Err(error) = sqlx::query("DELETE FROM revocations WHERE expires_at_ms <= $1")
                .bind(now)
                .execute(db)
                .await
        {
            tracing::warn!(%error, "deleting expired revocations failed");
        }
    }
}
