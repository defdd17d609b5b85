//! The traffic loop: one round of what users do, so every panel has something to draw.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Suite, unique};

/// A reader of the traffic loop.
pub(crate) struct Reader {
    email: String,
    token: String,
}

/// One round of what users do, touching every route, RPC and business counter the dashboards
/// draw: sign-up, sign-in (good and bad), browse, search, pages, rate, re-rate, delete,
/// recommendations of every source, and a few 4xx.
pub(crate) async fn one_round(s: &Suite, c: &Client, readers: &mut Vec<Reader>, books: &[i64]) {
    let api = format!("{}/api/v1", s.base_url);
    let email = format!("reader-{}@example.org", unique());
    let r = c
        .post(format!("{api}/users"))
        .json(
            &json!({"email": email, "display_name": "Reader", "password": "correct horse battery"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let session: Value = c
        .post(format!("{api}/sessions"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    readers.push(Reader {
        email,
        token: session["access_token"].as_str().unwrap().to_owned(),
    });
    let failed = c
        .post(format!("{api}/sessions"))
        .json(&json!({"email": readers[0].email, "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);

    // Every reader so far likes the same books, so "also liked" and "for you" have answers.
    for (i, who) in readers.iter().enumerate() {
        for (j, book) in books.iter().enumerate() {
            let stars = if (i + j) % 3 == 0 { 4 } else { 5 };
            let r = c
                .put(format!("{api}/me/ratings/{book}"))
                .bearer_auth(&who.token)
                .json(&json!({ "stars": stars }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "rating: {}", r.status());
        }
    }
    let newest = readers.last().unwrap();
    let gets = [
        (format!("{api}/books?page_size=5"), None, StatusCode::OK),
        (
            format!("{api}/books/search?q=the+hobbit&page_size=3"),
            None,
            StatusCode::OK,
        ),
        (format!("{api}/books/{}", books[0]), None, StatusCode::OK),
        (
            format!("{api}/books/{}/similar", books[0]),
            None,
            StatusCode::OK,
        ),
        (
            format!("{api}/recommendations/popular?page_size=5"),
            None,
            StatusCode::OK,
        ),
        (
            format!("{api}/me/recommendations"),
            Some(&newest.token),
            StatusCode::OK,
        ),
        (
            format!("{api}/me/ratings"),
            Some(&newest.token),
            StatusCode::OK,
        ),
        (format!("{api}/books/99999999"), None, StatusCode::NOT_FOUND),
        (
            format!("{api}/books?page_size=500"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (format!("{}/", s.base_url), None, StatusCode::OK),
        (
            format!("{}/books/{}", s.base_url, books[0]),
            None,
            StatusCode::OK,
        ),
        (
            format!("{}/no-such-page", s.base_url),
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (url, token, want) in gets {
        let mut req = c.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let got = req.send().await.unwrap().status();
        assert_eq!(got, want, "GET {url}");
    }
    let r = c
        .delete(format!("{api}/me/ratings/{}", books[books.len() - 1]))
        .bearer_auth(&newest.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "deleting a rating: {}", r.status());
}
