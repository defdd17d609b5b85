//! Reading a [`Snapshot`]: every rating, streamed in keyset pages inside one transaction, with
//! the log position it stands at and the positions below it not yet committed.

use futures_util::{StreamExt, TryStreamExt};
use platform::database::LazyPool;
use sqlx::{AnyConnection, Executor, Row, any::AnyRow};

use super::{
    backend::Backend,
    rating_store::{RatingRow, Snapshot, StoreError},
};

/// Rows per page when streaming every rating at start.
pub const PAGE_ROWS: i64 = 10_000;

/// How far below a snapshot's position its gaps are looked for: more than the transactions
/// that can be in flight at once (every replica's pool).
const GAP_SCAN: i64 = 1_000;

/// Every rating and the log position they stand at, in pages of `page_rows` rows.
pub(super) async fn read(
    pool: &LazyPool,
    backend: Backend,
    page_rows: i64,
) -> Result<Snapshot, StoreError> {
    let mut tx = pool.get()?.begin().await?;
    if backend == Backend::Postgres {
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
    let visible: Vec<i64> =
        sqlx::query("SELECT position FROM rating_changes WHERE position > $1 ORDER BY position")
            .bind(scanned_after)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| r.try_get("position"))
            .collect::<Result<_, _>>()?;
    let gaps = missing(scanned_after + 1, position, &visible);
    // Keyset pages inside the transaction: each a short statement over the covering index.
    // State: the transaction and where the next page starts; `None` once the last is read.
    let start = Some((tx, None::<Cursor>));
    let pages = futures_util::stream::try_unfold(start, move |state| async move {
        let Some((mut tx, after)) = state else {
            return Ok::<_, StoreError>(None);
        };
        let page = page_after(&mut tx, after.as_ref(), page_rows).await?;
        let next = match page.last() {
            Some(last) if page.len() >= page_rows as usize => Some((tx, Some(Cursor::of(last)))),
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

/// A `ratings` row as a [`RatingRow`].
pub(super) fn row(r: AnyRow) -> Result<RatingRow, sqlx::Error> {
    Ok(RatingRow {
        user_id: r.try_get("user_id")?,
        book_id: r.try_get("book_id")?,
        stars: r.try_get("stars")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
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
}
