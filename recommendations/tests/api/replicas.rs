//! Two replicas on one database agree: what is written through one reaches the other's index
//! and live feed through the change log, and both equal a rebuild from the ratings table.

use std::time::Duration;

use catalog::Digest;
use platform::database::{LazyPool, testing};
use protos::recommendations::v1::{
    DeleteUserRatingsRequest, ListRecommendationsForMeRequest, RatingEventKind, WatchRatingsRequest,
};
use recommendations::{
    changelog::{IndexState, rebuild_digest},
    store::{Backend, SqlRatingStore},
};

use crate::helpers::{TestService, as_user, spawn_with};

/// The replica's `/index` on its admin port.
pub async fn index_state(s: &TestService) -> IndexState {
    reqwest::get(format!("http://{}/index", s.admin))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (at most 10 s) until every replica reports the digest of a rebuild from `url`.
pub async fn assert_converged(replicas: &[&TestService], url: &str) {
    let backend = Backend::of_url(url);
    let pool = platform::database::connect(url, 2, &recommendations::store::migrator(backend))
        .await
        .unwrap();
    let lazy = LazyPool::default();
    lazy.set(pool);
    let store = SqlRatingStore::new(lazy, backend);
    let rebuilt = rebuild_digest(&store, Digest::builtin().unwrap())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for replica in replicas {
        loop {
            let state = index_state(replica).await;
            if state.digest == rebuilt.digest {
                assert_eq!(state.ratings, rebuilt.ratings);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replica {} has {state:?}, a rebuild {rebuilt:?}",
                replica.admin
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn for_me(s: &TestService, user: &str) -> Vec<i64> {
    s.client()
        .list_recommendations_for_me(as_user(
            ListRecommendationsForMeRequest { page_size: 6 },
            user,
        ))
        .await
        .unwrap()
        .into_inner()
        .recommendations
        .into_iter()
        .map(|r| r.book_id)
        .collect()
}

#[tokio::test]
async fn two_replicas_on_one_sqlite_file_agree_and_both_feeds_carry_every_rating() {
    let url = testing::sqlite_url("replicas");
    let a = spawn_with(&url).await;
    let b = spawn_with(&url).await;
    let mut feed_b = b
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await
        .unwrap()
        .into_inner();

    // Four readers rate through A only.
    for reader in ["r1", "r2", "r3", "r4"] {
        a.rate(reader, 1, 5).await;
        for book in 2..=6 {
            a.rate(reader, book, 4).await;
        }
    }
    a.rate("me", 1, 5).await;
    // The writer reads its own write at once.
    assert_eq!(a.similar_ids(1).await[..5], [2, 3, 4, 5, 6]);
    assert_converged(&[&a, &b], &url).await;
    assert_eq!(b.similar_ids(1).await, a.similar_ids(1).await);
    assert_eq!(for_me(&b, "me").await, for_me(&a, "me").await);
    assert_eq!(for_me(&b, "me").await[..5], [2, 3, 4, 5, 6]);

    // B's feed carries every rating made through A, in order.
    let mut books = Vec::new();
    for _ in 0..25 {
        let e = tokio::time::timeout(Duration::from_secs(10), feed_b.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, RatingEventKind::Rated as i32);
        books.push(e.rating.unwrap().book_id);
    }
    assert_eq!(books[..6], [1, 2, 3, 4, 5, 6]);
    assert_eq!(books[24], 1);

    // A deletion through B reaches A.
    b.client()
        .delete_user_ratings(as_user(
            DeleteUserRatingsRequest {
                user_id: "r1".into(),
            },
            "r1",
        ))
        .await
        .unwrap();
    assert_converged(&[&a, &b], &url).await;
    assert_eq!(index_state(&a).await.ratings, 19);
}

#[tokio::test]
async fn a_replica_started_later_loads_what_the_others_wrote_and_follows_from_there() {
    let url = testing::sqlite_url("replicas-late");
    let a = spawn_with(&url).await;
    a.rate("ada", 1, 5).await;
    a.rate("ada", 2, 5).await;
    let b = spawn_with(&url).await;
    assert_eq!(index_state(&b).await.ratings, 2);
    a.rate("bob", 1, 5).await;
    a.rate("bob", 3, 4).await;
    assert_converged(&[&a, &b], &url).await;
    assert_eq!(index_state(&b).await.ratings, 4);
}
