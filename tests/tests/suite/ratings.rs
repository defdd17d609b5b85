//! Readers rating books: what they see changes accordingly, and the live feed carries it.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tests::{Suite, fresh_books};

use crate::{client, ids, json_get, rate, sign_up};

#[tokio::test]
async fn readers_rate_books_and_what_they_see_changes_accordingly() {
    let s = Suite::start().await;
    let c = client();
    let (ada, bob, cyd) = (
        sign_up(&s, &c, "ada").await,
        sign_up(&s, &c, "bob").await,
        sign_up(&s, &c, "cyd").await,
    );

    let (status, found) = json_get(
        &c,
        format!(
            "{}/api/v1/books/search?q=the%20hobbit&page_size=3",
            s.base_url
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["books"][0]["title"], "The Hobbit");

    let b = fresh_books(5);
    for (who, book, stars) in [
        (&ada, b[0], 5),
        (&ada, b[1], 5),
        (&ada, b[2], 5),
        (&bob, b[0], 5),
        (&bob, b[1], 4),
        (&bob, b[3], 5),
        (&cyd, b[0], 5),
    ] {
        assert_eq!(rate(&s, &c, who, book, stars).await, StatusCode::CREATED);
    }
    assert_eq!(
        rate(&s, &c, &cyd, b[0], 5).await,
        StatusCode::OK,
        "rating again replaces"
    );

    let similar = |book: i64| format!("{}/api/v1/books/{book}/similar", s.base_url);
    let (_, also) = json_get(&c, similar(b[0]), None).await;
    assert_eq!(ids(&also, "recommendations"), vec![b[1], b[2], b[3]]);

    let (_, first_title) =
        json_get(&c, format!("{}/api/v1/books/{}", s.base_url, b[0]), None).await;
    let mine = format!("{}/api/v1/me/recommendations?page_size=5", s.base_url);
    let (status, for_cyd) = json_get(&c, mine.clone(), Some(&cyd.token)).await;
    assert_eq!(status, 200);
    let recs = for_cyd["recommendations"].as_array().unwrap();
    assert_eq!(recs[0]["book"]["id"], b[1]);
    assert_eq!(recs[0]["source"], "personal");
    assert_eq!(
        recs[0]["reason"],
        format!(
            "Because you liked {}",
            first_title["title"].as_str().unwrap()
        )
    );
    assert!(
        recs.iter().all(|r| r["book"]["id"] != b[0]),
        "never a book Cyd rated"
    );

    // Cyd rates what was recommended: it leaves her list, the next similar books lead.
    rate(&s, &c, &cyd, b[1], 5).await;
    let (_, after) = json_get(&c, mine, Some(&cyd.token)).await;
    let after_ids = ids(&after, "recommendations");
    assert!(!after_ids.contains(&b[1]) && !after_ids.contains(&b[0]));
    assert_eq!(after_ids[..2], [b[2], b[3]]);

    // Ada withdraws her rating of b[2]: it is no longer "also liked" with b[0].
    let r = c
        .delete(format!("{}/api/v1/me/ratings/{}", s.base_url, b[2]))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, also) = json_get(&c, similar(b[0]), None).await;
    assert!(!ids(&also, "recommendations").contains(&b[2]));

    let (_, ratings) = json_get(
        &c,
        format!("{}/api/v1/me/ratings", s.base_url),
        Some(&ada.token),
    )
    .await;
    assert_eq!(ratings["ratings"].as_array().unwrap().len(), 2);

    // Accounts belong to their owners.
    let me = format!("{}/api/v1/users/{}", s.base_url, ada.id);
    assert_eq!(json_get(&c, me.clone(), Some(&ada.token)).await.0, 200);
    assert_eq!(json_get(&c, me.clone(), Some(&bob.token)).await.0, 403);
    assert_eq!(json_get(&c, me.clone(), None).await.0, 401);
    let patch = c
        .patch(&me)
        .bearer_auth(&bob.token)
        .json(&json!({"display_name": "Mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 403);
    let delete = c.delete(&me).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(delete.status(), 403);
    let (_, ada_now) = json_get(&c, me.clone(), Some(&ada.token)).await;
    assert_eq!(ada_now["display_name"], "ada");
    let patch = c
        .patch(&me)
        .bearer_auth(&ada.token)
        .json(&json!({"display_name": "Ada L."}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    let delete = c.delete(&me).bearer_auth(&ada.token).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    // The account's tokens ended with it.
    assert_eq!(json_get(&c, me, Some(&ada.token)).await.0, 401);
}

#[tokio::test]
async fn the_live_feed_delivers_a_new_rating_as_server_sent_events() {
    let s = Suite::start().await;
    let c = client();
    let reader = sign_up(&s, &c, "eve").await;
    let book = fresh_books(1)[0];
    let feed = c
        .get(format!(
            "{}/api/v1/ratings/stream?book_id={book}",
            s.base_url
        ))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(
        feed.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The subscription is open once the headers are back; now rate.
    assert_eq!(rate(&s, &c, &reader, book, 4).await, StatusCode::CREATED);
    let mut body = feed.bytes_stream();
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("event: rating") && seen.contains("\n\n") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(got, Ok(true)), "no rating event; got {seen:?}");
    let data = seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["kind"], "rated");
    assert_eq!(event["book_id"], book);
    assert_eq!(event["stars"], 4);
    assert!(event["title"].as_str().is_some_and(|t| !t.is_empty()));
}
