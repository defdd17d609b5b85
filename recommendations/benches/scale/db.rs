//! The benchmark's database: every synthetic rating written to a fresh SQLite file the way the
//! service's migrations lay it out, in one transaction of multi-row INSERTs.

use std::{fmt::Write as _, path::Path};

use sqlx::{
    Connection, Executor,
    sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous},
};
use workload::Synthetic;

use crate::common::Error;

pub(crate) const ROWS_PER_INSERT: usize = 250;

/// Writes every synthetic rating in one transaction of multi-row INSERTs; returns the count.
pub(crate) async fn write_db(path: &Path, synthetic: &Synthetic) -> Result<u64, Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    recommendations::store::migrator(recommendations::store::Backend::Sqlite)
        .run(&mut conn)
        .await?;
    let statement = |rows: usize| {
        let mut sql =
            String::from("INSERT INTO ratings (user_id, book_id, stars, updated_at_ms) VALUES ");
        for i in 0..rows {
            let p = i * 4;
            let _ = write!(
                sql,
                "{}(${}, ${}, ${}, ${})",
                if i == 0 { "" } else { ", " },
                p + 1,
                p + 2,
                p + 3,
                p + 4
            );
        }
        sql
    };
    let full = statement(ROWS_PER_INSERT);
    let ids: Vec<String> = (0..synthetic.users())
        .map(|u| synthetic.user_id(u))
        .collect();
    let mut tx = conn.begin().await?;
    let mut chunk = Vec::with_capacity(ROWS_PER_INSERT);
    let mut written = 0u64;
    let mut ratings = synthetic.iter().peekable();
    while ratings.peek().is_some() {
        chunk.clear();
        chunk.extend(ratings.by_ref().take(ROWS_PER_INSERT));
        let sql = if chunk.len() == ROWS_PER_INSERT {
            full.clone()
        } else {
            statement(chunk.len())
        };
        let mut q = sqlx::query(&sql);
        for r in &chunk {
            q = q
                .bind(ids[r.user as usize].as_str())
                .bind(r.book_id)
                .bind(r.stars)
                .bind(r.updated_at_ms);
        }
        q.execute(&mut *tx).await?;
        written += chunk.len() as u64;
    }
    tx.commit().await?;
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    conn.close().await?;
    Ok(written)
}
