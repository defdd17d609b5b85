//! Bad input: a 4xx that names the problem, and nothing stored.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tests::{Suite, unique};

use crate::{client, json_get, rate, sign_up};

pub(crate) async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{status}"
    );
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem_and_stores_nothing() {
    let s = Suite::start().await;
    let c = client();
    let users = format!("{}/api/v1/users", s.base_url);
    let email = format!("strict-{}@example.org", unique());

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(&users).header("content-type", "application/json").body("{not json"), 400, "JSON"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "correct horse", "admin": true})), 400, "unknown field"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x"})), 400, "password"),
        (c.post(&users).json(&json!({"email": "nope", "display_name": "x", "password": "correct horse"})), 400, "email"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "short"})), 400, "password"),
        (c.post(&users).body("email=x"), 415, "Content-Type"),
        (c.post(&users).json(&json!({"email": email, "display_name": "x", "password": "p".repeat(40_000)})), 413, "length limit"),
        (c.get(format!("{}/api/v1/books?page_size=101", s.base_url)), 400, "page_size"),
        (c.get(format!("{}/api/v1/books?page_token=forged", s.base_url)), 400, "page_token"),
        (c.get(format!("{}/api/v1/books?colour=red", s.base_url)), 400, "colour"),
        (c.get(format!("{}/api/v1/books/abc", s.base_url)), 400, "abc"),
        (c.get(format!("{}/api/v1/books/0", s.base_url)), 400, "id"),
        (c.get(format!("{}/api/v1/books/99999", s.base_url)), 404, "99999"),
        (c.get(format!("{}/api/v1/books/search?q=", s.base_url)), 400, "q must be"),
        (c.get(format!("{}/api/v1/me/ratings", s.base_url)), 401, "token"),
        (c.get(format!("{}/api/v1/me/ratings", s.base_url)).header("authorization", "Basic abc"), 401, "Bearer"),
        (c.put(format!("{}/api/v1/me/ratings/1", s.base_url)).bearer_auth("forged.token").json(&json!({"stars": 3})), 401, "token"),
        (c.get(format!("{}/api/v1/nothing-here", s.base_url)), 404, "route"),
    ];
    for (req, status, needle) in cases {
        let (got, body) = problem(req.send().await.unwrap()).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert_eq!(body["status"], status);
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }

    let r = c
        .post(&users)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // JSON sent as a form (what any web page can make a visitor's browser send to another
    // site without a preflight, and curl's `-d` default) is refused, and nothing is stored.
    let forged = format!("curl-{}@example.org", unique());
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        let r = c
            .post(&users)
            .header("content-type", content_type)
            .body(
                json!({"email": forged, "display_name": "curl", "password": "correct horse"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
    }
    let stored = c
        .post(&users)
        .json(&json!({"email": forged, "display_name": "curl", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201, "the refused sign-ups stored nothing");

    // None of the refused sign-ups was stored: the address is still free, once.
    let ok = c
        .post(&users)
        .json(&json!({"email": email, "display_name": "x", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let (status, body) = problem(c.post(&users).json(&json!({"email": email.to_uppercase(), "display_name": "y", "password": "correct horse"})).send().await.unwrap()).await;
    assert_eq!(status, 409, "{body}");

    let reader = sign_up(&s, &c, "rater").await;
    for stars in [0, 6] {
        assert_eq!(rate(&s, &c, &reader, 1, stars).await, 400);
    }
    assert_eq!(rate(&s, &c, &reader, 99_999, 3).await, 404);
    let (_, mine) = json_get(
        &c,
        format!("{}/api/v1/me/ratings", s.base_url),
        Some(&reader.token),
    )
    .await;
    assert!(
        mine["ratings"].as_array().unwrap().is_empty(),
        "no refused rating was stored"
    );

    let (status, spec) = json_get(&c, format!("{}/api/v1/openapi.json", s.base_url), None).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/api/v1/me/ratings/{book_id}"]["put"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}
