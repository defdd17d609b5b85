//! The whole suite as a user meets it: four real processes, driven over HTTP only.

mod metrics;
mod pages;
mod ratings;
mod validation;

use std::time::Duration;

use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::{Value, json};
use tests::{Suite, unique};

struct Reader {
    id: String,
    token: String,
}

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn sign_up(s: &Suite, c: &Client, name: &str) -> Reader {
    let email = format!("{name}-{}@example.org", unique());
    let r = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "display_name": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let user: Value = r.json().await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/users/{id}"));
    assert!(user.get("password").is_none());
    let session: Value = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email.to_uppercase(), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["token_type"], "Bearer");
    Reader {
        id,
        token: session["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn rate(s: &Suite, c: &Client, who: &Reader, book: i64, stars: i64) -> StatusCode {
    c.put(format!("{}/api/v1/me/ratings/{book}", s.base_url))
        .bearer_auth(&who.token)
        .json(&json!({ "stars": stars }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn json_get(c: &Client, url: String, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value, list: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["book"]["id"]
                .as_i64()
                .or_else(|| r["id"].as_i64())
                .unwrap()
        })
        .collect()
}
