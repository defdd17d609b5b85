//! Rating, re-rating, deleting and listing one's ratings; the live feed.

use std::time::Duration;

use protos::recommendations::v1::{
    DeleteRatingRequest, ListMyRatingsRequest, RateBookRequest, RatingEventKind,
    WatchRatingsRequest,
};
use tonic::{Code, Request};

use crate::helpers::{as_user, spawn_service};

#[tokio::test]
async fn rating_again_replaces_the_rating() {
    let s = spawn_service().await;
    let mut c = s.client();
    let first = c
        .rate_book(as_user(
            RateBookRequest {
                book_id: 1,
                stars: 3,
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let again = c
        .rate_book(as_user(
            RateBookRequest {
                book_id: 1,
                stars: 5,
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.rating.unwrap().stars, 5);
    let mine = c
        .list_my_ratings(as_user(
            ListMyRatingsRequest {
                page_size: 0,
                page_token: String::new(),
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.ratings.len(), 1);
    assert_eq!(mine.ratings[0].stars, 5);
}

#[tokio::test]
async fn bad_ratings_are_refused_with_the_right_code_and_nothing_is_stored() {
    let s = spawn_service().await;
    let mut c = s.client();
    for stars in [0, 6, -1] {
        let e = c
            .rate_book(as_user(RateBookRequest { book_id: 1, stars }, "ada"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("stars"));
    }
    let unknown = c
        .rate_book(as_user(
            RateBookRequest {
                book_id: 10_001,
                stars: 4,
            },
            "ada",
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let zero = c
        .rate_book(as_user(
            RateBookRequest {
                book_id: 0,
                stars: 4,
            },
            "ada",
        ))
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    let anonymous = c
        .rate_book(Request::new(RateBookRequest {
            book_id: 1,
            stars: 4,
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mine = c
        .list_my_ratings(as_user(
            ListMyRatingsRequest {
                page_size: 0,
                page_token: String::new(),
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(mine.ratings.is_empty());
}

#[tokio::test]
async fn a_rating_can_be_deleted_once() {
    let s = spawn_service().await;
    s.rate("ada", 2, 4).await;
    let mut c = s.client();
    c.delete_rating(as_user(DeleteRatingRequest { book_id: 2 }, "ada"))
        .await
        .unwrap();
    let again = c
        .delete_rating(as_user(DeleteRatingRequest { book_id: 2 }, "ada"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let others = c
        .delete_rating(as_user(DeleteRatingRequest { book_id: 2 }, "bob"))
        .await
        .unwrap_err();
    assert_eq!(others.code(), Code::NotFound);
}

#[tokio::test]
async fn my_ratings_page_most_recent_first_and_belong_to_me_only() {
    let s = spawn_service().await;
    for book in 1..=5 {
        s.rate("ada", book, 4).await;
        tokio::time::sleep(Duration::from_millis(2)).await; // distinct timestamps
    }
    s.rate("bob", 9, 1).await;
    let mut c = s.client();
    let first = c
        .list_my_ratings(as_user(
            ListMyRatingsRequest {
                page_size: 3,
                page_token: String::new(),
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = first.ratings.iter().map(|r| r.book_id).collect();
    assert_eq!(ids, vec![5, 4, 3]);
    let second = c
        .list_my_ratings(as_user(
            ListMyRatingsRequest {
                page_size: 3,
                page_token: first.next_page_token.clone(),
            },
            "ada",
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = second.ratings.iter().map(|r| r.book_id).collect();
    assert_eq!(ids, vec![2, 1]);
    assert!(second.next_page_token.is_empty());
    // Bob cannot use Ada's page token.
    let stolen = c
        .list_my_ratings(as_user(
            ListMyRatingsRequest {
                page_size: 3,
                page_token: first.next_page_token,
            },
            "bob",
        ))
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_feed_delivers_new_ratings_without_saying_who() {
    let s = spawn_service().await;
    let mut feed = s
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut only_book_3 = s
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: 3 })
        .await
        .unwrap()
        .into_inner();
    s.rate("ada", 7, 5).await;
    s.rate("ada", 3, 2).await;
    let e = tokio::time::timeout(Duration::from_secs(10), feed.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.kind, RatingEventKind::Rated as i32);
    let r = e.rating.unwrap();
    assert_eq!((r.book_id, r.stars), (7, 5));
    assert!(r.user_id.is_empty());
    // The event names its book: watchers need not ask the marketplace.
    assert_eq!(e.title, "The Hobbit");
    let filtered = tokio::time::timeout(Duration::from_secs(10), only_book_3.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(filtered.rating.unwrap().book_id, 3);

    let bad = s
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: -4 })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn live_feeds_at_their_limit_never_starve_the_health_watches() {
    let s = crate::helpers::spawn_args(
        &platform::database::testing::sqlite_url("recs-streams"),
        &["--stream-limit", "1"],
    )
    .await;
    let _held = s
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let refused = s
        .client()
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // A gateway's balancer still learns the replica's state.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    for _ in 0..3 {
        let mut watch = health
            .watch(tonic_health::pb::HealthCheckRequest {
                service: recommendations::SERVICE_NAME.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.status, tonic_health::ServingStatus::Serving as i32);
    }
}
