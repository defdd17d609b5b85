//! The same storage test against SQLite and PostgreSQL.

use futures_util::TryStreamExt;
use platform::database::{LazyPool, connect, testing};
use recommendations::store::{MIGRATOR, RatingRow, RatingStore, SqlRatingStore};

fn r(user: &str, book: i64, stars: i64, at: i64) -> RatingRow {
    RatingRow {
        user_id: user.into(),
        book_id: book,
        stars,
        updated_at_ms: at,
    }
}

async fn exercise(url: &str) {
    let pool = LazyPool::default();
    pool.set(connect(url, 4, &MIGRATOR).await.unwrap());
    let store = SqlRatingStore::new(pool);

    assert_eq!(store.upsert(&r("ada", 1, 3, 10)).await.unwrap(), None);
    assert_eq!(store.upsert(&r("ada", 1, 5, 20)).await.unwrap(), Some(3));
    store.upsert(&r("ada", 2, 4, 30)).await.unwrap();
    store.upsert(&r("bob", 1, 1, 40)).await.unwrap();

    let mine = store.list_by_user("ada", 0, 10).await.unwrap();
    assert_eq!(mine, vec![r("ada", 2, 4, 30), r("ada", 1, 5, 20)]);
    assert_eq!(
        store.list_by_user("ada", 1, 10).await.unwrap(),
        vec![r("ada", 1, 5, 20)]
    );
    store.upsert(&r("ada", 3, 2, 25)).await.unwrap();
    // Streamed by user, then time, then book.
    assert_eq!(
        all(&store).await,
        vec![
            r("ada", 1, 5, 20),
            r("ada", 3, 2, 25),
            r("ada", 2, 4, 30),
            r("bob", 1, 1, 40)
        ]
    );

    // The same in keyset pages of one, two and three rows.
    for rows in 1..=3 {
        let paged: Vec<RatingRow> = store
            .clone()
            .with_page_rows(rows)
            .stream_all()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(paged, all(&store).await, "pages of {rows}");
    }

    assert_eq!(store.delete("ada", 1).await.unwrap(), Some(5));
    assert_eq!(store.delete("ada", 1).await.unwrap(), None);
    assert_eq!(all(&store).await.len(), 3);
}

async fn all(store: &SqlRatingStore) -> Vec<RatingRow> {
    store.stream_all().try_collect().await.unwrap()
}

#[tokio::test]
async fn the_store_works_on_sqlite() {
    exercise(&testing::sqlite_url("ratings-store")).await;
}

#[tokio::test]
async fn the_store_works_on_postgres() {
    if let Some(url) = testing::postgres_url("ratings").await {
        exercise(&url).await;
    }
}
