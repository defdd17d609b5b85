//! The REST calls the flows make around the browser: readers, ratings, titles.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{Suite, unique};

use super::PASSWORD;

/// A reader made through the public API.
pub struct Reader {
    pub email: String,
    pub name: String,
    pub token: String,
}

/// An HTTP client for the REST API, bounded.
/// The id of "The Hobbit", found through the API search as a reader would.
pub async fn hobbit_id(suite: &Suite) -> i64 {
    let found: Value = http()
        .get(format!(
            "{}/api/v1/books/search?q=the%20hobbit&page_size=1",
            suite.base_url
        ))
        .send()
        .await
        .expect("search answered")
        .json()
        .await
        .expect("JSON");
    found["books"][0]["id"].as_i64().expect("a book")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// Signs a new reader up through `POST /api/v1/users` and signs them in.
pub async fn api_reader(suite: &Suite, name: &str) -> Reader {
    let c = http();
    let email = format!("{name}-{}@example.org", unique());
    let r = c
        .post(format!("{}/api/v1/users", suite.base_url))
        .json(&json!({"email": email, "display_name": name, "password": PASSWORD}))
        .send()
        .await
        .expect("sign-up answered");
    assert_eq!(r.status(), StatusCode::CREATED, "sign-up of {email}");
    let token = suite.sign_in(&c, &email, PASSWORD).await;
    Reader {
        email,
        name: name.to_owned(),
        token,
    }
}

/// Rates `book` with `stars` through `PUT /api/v1/me/ratings/{book}`.
pub async fn api_rate(suite: &Suite, who: &Reader, book: i64, stars: i64) {
    let r = http()
        .put(format!("{}/api/v1/me/ratings/{book}", suite.base_url))
        .bearer_auth(&who.token)
        .json(&json!({ "stars": stars }))
        .send()
        .await
        .expect("rating answered");
    assert!(r.status().is_success(), "rating {book}: {}", r.status());
}

/// The stars `token`'s reader gave `book`, read back through `GET /api/v1/me/ratings`.
pub async fn api_my_stars(suite: &Suite, token: &str, book: i64) -> Option<i64> {
    let page: Value = http()
        .get(format!(
            "{}/api/v1/me/ratings?page_size=100",
            suite.base_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("ratings answered")
        .json()
        .await
        .expect("a JSON page of ratings");
    page["ratings"]
        .as_array()?
        .iter()
        .find(|r| r["book_id"] == book)
        .and_then(|r| r["stars"].as_i64())
}

/// A book's title, from `GET /api/v1/books/{id}`, as a page shows it: a browser collapses runs of
/// white space in text to one space (the catalog has titles such as "The Unexpected Mrs.
/// Pollifax  (Mrs. Pollifax #1)", with two), so that is what rendered text is compared with.
pub async fn api_title(suite: &Suite, book: i64) -> String {
    let b: Value = http()
        .get(format!("{}/api/v1/books/{book}", suite.base_url))
        .send()
        .await
        .expect("book answered")
        .json()
        .await
        .expect("a JSON book");
    let title = b["title"].as_str().expect("a title");
    title.split_whitespace().collect::<Vec<_>>().join(" ")
}
