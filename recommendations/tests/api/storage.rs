//! The same storage and change-log tests against SQLite and PostgreSQL.

use std::{sync::Arc, time::Duration};

use catalog::Digest;
use futures_util::TryStreamExt;
use platform::{
    database::{LazyPool, connect, testing},
    metrics::Metrics,
};
use recommendations::{
    changelog::{Follower, Settings, rebuild_digest},
    recommender::Engine,
    similarity::Limits,
    store::{Backend, RatingRow, RatingStore, SqlRatingStore, migrator},
};
use sqlx::{AnyPool, Row};

fn r(user: &str, book: i64, stars: i64, at: i64) -> RatingRow {
    RatingRow {
        user_id: user.into(),
        book_id: book,
        stars,
        updated_at_ms: at,
    }
}

async fn store_at(url: &str) -> (SqlRatingStore, AnyPool) {
    let backend = Backend::of_url(url);
    let pool = connect(url, 4, &migrator(backend)).await.unwrap();
    let lazy = LazyPool::default();
    lazy.set(pool.clone());
    (SqlRatingStore::new(lazy, backend), pool)
}

async fn all(store: &SqlRatingStore) -> Vec<RatingRow> {
    store
        .snapshot()
        .await
        .unwrap()
        .rows
        .try_collect()
        .await
        .unwrap()
}

async fn exercise(url: &str) {
    let (store, _) = store_at(url).await;

    let first = store.upsert(&r("ada", 1, 3, 10)).await.unwrap();
    assert_eq!(first.previous, None);
    let second = store.upsert(&r("ada", 1, 5, 20)).await.unwrap();
    assert_eq!(second.previous, Some(3));
    assert!(second.position > first.position);
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

    // The same in keyset pages of one, two and three rows, inside one transaction.
    for rows in 1..=3 {
        let snapshot = store.clone().with_page_rows(rows).snapshot().await.unwrap();
        let paged: Vec<RatingRow> = snapshot.rows.try_collect().await.unwrap();
        assert_eq!(paged, all(&store).await, "pages of {rows}");
    }

    let gone = store.delete("ada", 1, 50).await.unwrap().unwrap();
    assert_eq!(gone.previous, Some(5));
    assert_eq!(store.delete("ada", 1, 51).await.unwrap(), None);
    assert_eq!(all(&store).await.len(), 3);

    // Every write is in the log, in order, with what it replaced.
    let log = store.changes(0, &[], 100).await.unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|c| (c.user_id.as_str(), c.book_id, c.stars, c.previous))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ada", 1, Some(3), None),
            ("ada", 1, Some(5), Some(3)),
            ("ada", 2, Some(4), None),
            ("bob", 1, Some(1), None),
            ("ada", 3, Some(2), None),
            ("ada", 1, None, Some(5)),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].position < w[1].position));
    let head = log.last().unwrap().position;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.position, snapshot.gaps.len()), (head, 0));

    // A deleted user: one logged removal per rating.
    let positions = store.delete_user("ada", 60).await.unwrap();
    assert_eq!(positions.len(), 2);
    let tail = store.changes(head, &[], 100).await.unwrap();
    assert_eq!(
        tail.iter()
            .map(|c| (c.book_id, c.stars))
            .collect::<Vec<_>>(),
        vec![(2, None), (3, None)]
    );
    // Asked for by position too (a gap filled late), and bounded by the limit.
    let again = store.changes(head + 2, &[head + 1], 100).await.unwrap();
    assert_eq!(again, tail[..1]);
    assert_eq!(store.changes(0, &[], 2).await.unwrap().len(), 2);

    // Retention deletes by age and records how far it went.
    assert_eq!(store.pruned_through().await.unwrap(), 0);
    assert_eq!(store.prune(45).await.unwrap(), 5);
    assert_eq!(store.pruned_through().await.unwrap(), log[4].position);
    assert_eq!(store.changes(0, &[], 100).await.unwrap().len(), 3);
    assert_eq!(store.prune(45).await.unwrap(), 0);
    assert_eq!(store.pruned_through().await.unwrap(), log[4].position);
}

#[tokio::test]
async fn the_store_and_its_log_work_on_sqlite() {
    exercise(&testing::sqlite_url("ratings-store")).await;
}

#[tokio::test]
async fn the_store_and_its_log_work_on_postgres() {
    if let Some(url) = testing::postgres_url("ratings").await {
        exercise(&url).await;
    }
}

/// Many ratings written at once, some of one book by one reader: every write succeeds (on SQLite
/// they wait their turn for the one writer instead of being refused as "database is locked"), and
/// each is logged once.
async fn concurrent_writes(url: &str) {
    let (store, _) = store_at(url).await;
    let writes = (0..64i64).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let user = format!("reader-{}", i % 8);
            store.upsert(&r(&user, 1 + i % 3, 1 + i % 5, i)).await
        })
    });
    for w in futures_util::future::join_all(writes).await {
        w.unwrap().expect("a concurrent write");
    }
    let log = store.changes(0, &[], 1000).await.unwrap();
    assert_eq!(log.len(), 64, "every write logged once");
    assert_eq!(all(&store).await.len(), 8 * 3);
}

#[tokio::test]
async fn concurrent_writes_all_succeed_on_sqlite() {
    concurrent_writes(&testing::sqlite_url("ratings-concurrent")).await;
}

#[tokio::test]
async fn concurrent_writes_all_succeed_on_postgres() {
    if let Some(url) = testing::postgres_url("ratings_concurrent").await {
        concurrent_writes(&url).await;
    }
}

/// A follower over `store`, started (its index built from a snapshot), not yet following.
async fn follower(store: &SqlRatingStore, gap_wait: Duration) -> (Arc<Follower>, Engine) {
    let engine = Engine::default();
    let f = Arc::new(Follower::new(
        Arc::new(store.clone()),
        engine.clone(),
        Settings {
            gap_wait,
            ..Settings::default()
        },
        &Metrics::new(),
    ));
    f.start(Digest::builtin().unwrap(), Limits::default()).await;
    (f, engine)
}

async fn assert_equals_rebuild(f: &Follower, store: &SqlRatingStore) {
    let rebuilt = rebuild_digest(store, Digest::builtin().unwrap())
        .await
        .unwrap();
    let state = f.state().unwrap();
    assert_eq!(
        (state.ratings, state.digest),
        (rebuilt.ratings, rebuilt.digest)
    );
}

/// Transaction: a rating and its logged change, left open; returns the change's position.
async fn open_write(
    pool: &AnyPool,
    user: &str,
    book: i64,
) -> (sqlx::Transaction<'static, sqlx::Any>, i64) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO ratings (user_id, book_id, stars, updated_at_ms) VALUES ($1, $2, 5, 1)",
    )
    .bind(user)
    .bind(book)
    .execute(&mut *tx)
    .await
    .unwrap();
    let position: i64 = sqlx::query(
        "INSERT INTO rating_changes (user_id, book_id, stars, previous_stars, at_ms) \
         VALUES ($1, $2, 5, NULL, 1) RETURNING position",
    )
    .bind(user)
    .bind(book)
    .fetch_one(&mut *tx)
    .await
    .unwrap()
    .try_get("position")
    .unwrap();
    (tx, position)
}

#[tokio::test]
async fn two_overlapping_writes_committing_in_the_opposite_order_lose_no_change() {
    let Some(url) = testing::postgres_url("ratings_order").await else {
        return;
    };
    let (store, pool) = store_at(&url).await;
    store.upsert(&r("before", 1, 4, 1)).await.unwrap();
    let (f, engine) = follower(&store, Duration::from_secs(30)).await;
    let mut feed = f.subscribe();

    let (first, p1) = open_write(&pool, "first", 2).await;
    let (second, p2) = open_write(&pool, "second", 3).await;
    assert!(p1 < p2);
    second.commit().await.unwrap();
    f.catch_up().await.unwrap();
    let seen = engine.get().unwrap();
    assert!(seen.for_user("second", 1).iter().all(|x| x.book_id != 3));
    assert_eq!(f.state().unwrap().open_gaps, 1, "position {p1} is awaited");
    assert_eq!(feed.try_recv().unwrap().position, p2);

    first.commit().await.unwrap();
    f.catch_up().await.unwrap();
    assert_eq!(feed.try_recv().unwrap().position, p1);
    assert_eq!(f.state().unwrap().open_gaps, 0);
    assert_equals_rebuild(&f, &store).await;
    f.catch_up().await.unwrap();
    assert!(feed.try_recv().is_err(), "each change is applied once");
}

#[tokio::test]
async fn a_snapshot_taken_while_a_write_is_uncommitted_picks_it_up_when_it_commits() {
    let Some(url) = testing::postgres_url("ratings_snap").await else {
        return;
    };
    let (store, pool) = store_at(&url).await;
    let (pending, p1) = open_write(&pool, "slow", 2).await;
    store.upsert(&r("fast", 3, 5, 2)).await.unwrap();
    let (f, _) = follower(&store, Duration::from_secs(30)).await;
    let state = f.state().unwrap();
    assert_eq!((state.ratings, state.open_gaps), (1, 1));
    assert!(state.position > p1);

    let mut feed = f.subscribe();
    pending.commit().await.unwrap();
    f.catch_up().await.unwrap();
    assert_eq!(feed.try_recv().unwrap().position, p1);
    assert_equals_rebuild(&f, &store).await;
}

async fn behind_retention(url: &str) {
    let (store, _) = store_at(url).await;
    store.upsert(&r("ada", 1, 5, 1)).await.unwrap();
    let (f, _) = follower(&store, Duration::from_secs(30)).await;
    // While this replica is not reading, others write and retention deletes their changes.
    store.upsert(&r("bob", 2, 4, 2)).await.unwrap();
    store.delete("ada", 1, 3).await.unwrap();
    store.prune(i64::MAX).await.unwrap();
    store.upsert(&r("cy", 3, 3, 4)).await.unwrap();
    f.catch_up().await.unwrap();
    assert_equals_rebuild(&f, &store).await;
    assert_eq!(f.state().unwrap().ratings, 2);
}

#[tokio::test]
async fn a_replica_passed_by_retention_reloads_by_itself_on_sqlite() {
    behind_retention(&testing::sqlite_url("ratings-behind")).await;
}

#[tokio::test]
async fn a_replica_passed_by_retention_reloads_by_itself_on_postgres() {
    if let Some(url) = testing::postgres_url("ratings_behind").await {
        behind_retention(&url).await;
    }
}

#[tokio::test]
async fn a_rolled_back_write_leaves_a_gap_that_is_given_up() {
    let Some(url) = testing::postgres_url("ratings_rollback").await else {
        return;
    };
    let (store, pool) = store_at(&url).await;
    let (f, _) = follower(&store, Duration::from_millis(200)).await;
    let (tx, _) = open_write(&pool, "gone", 2).await;
    tx.rollback().await.unwrap();
    store.upsert(&r("kept", 3, 5, 2)).await.unwrap();
    f.catch_up().await.unwrap();
    assert_eq!(f.state().unwrap().open_gaps, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.catch_up().await.unwrap();
    assert_eq!(f.state().unwrap().open_gaps, 0);
    assert_equals_rebuild(&f, &store).await;
}
