//! Popular, similar and personal recommendations, exact and deterministic; survival of restarts.

use std::time::Duration;

use protos::recommendations::v1::{
    ListPopularBooksRequest, ListRecommendationsForMeRequest, ListSimilarBooksRequest,
    RecommendationSource,
};
use tonic::{Code, Request};

use crate::helpers::{as_user, spawn_service, spawn_with};

#[tokio::test]
async fn popular_books_page_by_bayesian_average() {
    let s = spawn_service().await;
    let mut c = s.client();
    let first = c
        .list_popular_books(ListPopularBooksRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.recommendations.len(), 10);
    assert!(
        first
            .recommendations
            .windows(2)
            .all(|w| w[0].score >= w[1].score)
    );
    assert!(
        first
            .recommendations
            .iter()
            .all(|r| r.source == RecommendationSource::Popular as i32)
    );
    let second = c
        .list_popular_books(ListPopularBooksRequest {
            page_size: 10,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(second.recommendations[0].score <= first.recommendations[9].score);
}

#[tokio::test]
async fn each_pick_names_its_book_so_callers_need_not_ask_the_marketplace() {
    let s = spawn_service().await;
    let picks = s
        .client()
        .list_popular_books(ListPopularBooksRequest {
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert!(
        picks
            .iter()
            .all(|r| !r.title.is_empty() && !r.authors.is_empty())
    );
    let digest = catalog::Digest::builtin().unwrap();
    for r in &picks {
        let p = digest.position(r.book_id).unwrap();
        assert_eq!(r.title, digest.title(p));
        assert_eq!(r.authors, digest.authors(p).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn readers_who_liked_this_also_liked_follows_the_ratings_exactly() {
    let s = spawn_service().await;
    assert!(
        s.similar_ids(1).await.is_empty(),
        "no ratings, no similarity"
    );
    // Ada and Bob both loved 1; Ada loved 2 and 3, Bob liked 2 and loved 5 and hated 6.
    for (u, b, st) in [
        ("ada", 1, 5),
        ("ada", 2, 5),
        ("ada", 3, 5),
        ("bob", 1, 5),
        ("bob", 2, 4),
        ("bob", 5, 5),
        ("bob", 6, 1),
    ] {
        s.rate(u, b, st).await;
    }
    assert_eq!(s.similar_ids(1).await, vec![2, 3, 5]);
    // Each pick names its book: the caller needs no marketplace call to show it.
    let also = s
        .client()
        .list_similar_books(ListSimilarBooksRequest {
            book_id: 1,
            page_size: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(
        also[0].title,
        "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)"
    );
    assert_eq!(also[0].authors, ["J.K. Rowling", "Mary GrandPré"]);
    assert_eq!(also[1].title, "Twilight (Twilight, #1)");
    assert_eq!(also[1].authors, ["Stephenie Meyer"]);
    // Carol's dislike of 2 alongside her love of 1 lowers 2 below the others.
    s.rate("carol", 1, 5).await;
    s.rate("carol", 2, 1).await;
    assert_eq!(s.similar_ids(1).await, vec![3, 5, 2]);

    let unknown = s
        .client()
        .list_similar_books(ListSimilarBooksRequest {
            book_id: 99_999,
            page_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn personal_picks_are_similar_to_what_i_liked_and_never_what_i_rated() {
    let s = spawn_service().await;
    for (u, b, st) in [
        ("ada", 1, 5),
        ("ada", 2, 5),
        ("ada", 3, 4),
        ("me", 1, 5),
        ("me", 3, 2),
    ] {
        s.rate(u, b, st).await;
    }
    let recs = s
        .client()
        .list_recommendations_for_me(as_user(
            ListRecommendationsForMeRequest { page_size: 5 },
            "me",
        ))
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0].book_id, 2);
    assert_eq!(recs[0].source, RecommendationSource::Personal as i32);
    assert_eq!(recs[0].because_book_id, 1);
    assert_eq!(
        recs[0].title,
        "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)"
    );
    assert_eq!(recs[0].authors, ["J.K. Rowling", "Mary GrandPré"]);
    assert!(
        recs[0]
            .reason
            .starts_with("Because you liked The Hunger Games"),
        "{}",
        recs[0].reason
    );
    assert!(
        recs.iter().all(|r| r.book_id != 1 && r.book_id != 3),
        "never a book I rated"
    );
    assert!(
        recs[1..]
            .iter()
            .all(|r| r.source == RecommendationSource::Popular as i32)
    );

    let anonymous = s
        .client()
        .list_recommendations_for_me(Request::new(ListRecommendationsForMeRequest {
            page_size: 5,
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn ratings_and_what_they_imply_survive_a_restart() {
    let mut first = spawn_service().await;
    for (u, b, st) in [("ada", 1, 5), ("ada", 2, 5)] {
        first.rate(u, b, st).await;
    }
    let url = first.database_url.clone();
    first.stop();
    tokio::time::timeout(Duration::from_secs(15), &mut first.handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second = spawn_with(&url).await;
    assert_eq!(second.similar_ids(1).await, vec![2]);
}

#[tokio::test]
async fn recommendations_served_are_counted_by_source() {
    let s = spawn_service().await;
    s.client()
        .list_popular_books(ListPopularBooksRequest {
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .unwrap();
    let text = reqwest::get(format!("http://{}/metrics", s.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"recommendations_served_total{source="popular"} 3"#),
        "{text}"
    );
}
