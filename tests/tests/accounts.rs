//! Access that ends, as a user meets it through the gateway: signing out (API or the pages'
//! form) ends the token everywhere, a password change (which needs the current password) ends
//! every other session of the account everywhere, and deleting an account ends its tokens and
//! takes its ratings with it.

use std::time::Duration;

use reqwest::{Client, StatusCode, redirect::Policy};
use serde_json::{Value, json};
use tests::{Suite, unique};

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Signs up and in; returns (user id, email, token).
async fn account(s: &Suite, c: &Client) -> (String, String, String) {
    let email = format!("leaver-{}@example.org", unique());
    let user: Value = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(
            &json!({"email": email, "display_name": "Leaver", "password": "correct horse battery"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = sign_in(s, c, &email).await;
    (user["id"].as_str().unwrap().to_owned(), email, token)
}

async fn sign_in(s: &Suite, c: &Client, email: &str) -> String {
    s.sign_in(c, email, "correct horse battery").await
}

async fn my_ratings(s: &Suite, c: &Client, token: &str) -> StatusCode {
    c.get(format!("{}/api/v1/me/ratings", s.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn rate(s: &Suite, c: &Client, token: &str, book: i64) -> StatusCode {
    c.put(format!("{}/api/v1/me/ratings/{book}", s.base_url))
        .bearer_auth(token)
        .json(&json!({"stars": 5}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn signing_out_ends_the_token_in_every_service() {
    let s = Suite::start().await;
    let c = client();
    let (id, email, token) = account(&s, &c).await;
    let other = sign_in(&s, &c, &email).await;
    assert_eq!(rate(&s, &c, &token, 1).await, StatusCode::CREATED);
    let out = c
        .delete(format!("{}/api/v1/sessions/current", s.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    // Refused by users at once, and by recommendations once users has told it (outbox).
    let user = c
        .get(format!("{}/api/v1/users/{id}", s.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::UNAUTHORIZED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while my_ratings(&s, &c, &token).await != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "recommendations still takes the token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rate(&s, &c, &token, 2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        my_ratings(&s, &c, &other).await,
        StatusCode::OK,
        "the other session lives"
    );

    // The pages' sign-out form ends the cookie's token too.
    let forms = tests::Forms::open(&c, &s.base_url).await;
    let signed_in = forms
        .post(
            &c,
            &format!("{}/signin", s.base_url),
            &[
                ("email", email.as_str()),
                ("password", "correct horse battery"),
            ],
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let page_token = cookies
        .iter()
        .find_map(|c| c.strip_prefix("bookstore_session="))
        .unwrap()
        .to_owned();
    assert_eq!(my_ratings(&s, &c, &page_token).await, StatusCode::OK);
    let form = forms
        .post(
            &c,
            &format!("{}/signout", s.base_url),
            &[],
            Some(&cookies.join("; ")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let user = c
        .get(format!("{}/api/v1/users/{id}", s.base_url))
        .bearer_auth(&page_token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(my_ratings(&s, &c, &other).await, StatusCode::OK);
}

#[tokio::test]
async fn deleting_an_account_ends_its_tokens_and_removes_its_ratings() {
    let s = Suite::start().await;
    let c = client();
    let (id, email, token) = account(&s, &c).await;
    for book in [1, 2, 3] {
        assert_eq!(rate(&s, &c, &token, book).await, StatusCode::CREATED);
    }
    // A second token, to look at the ratings through until the deletion is told.
    let gone = c
        .delete(format!("{}/api/v1/users/{id}", s.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while my_ratings(&s, &c, &token).await != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted account's token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rate(&s, &c, &token, 4).await, StatusCode::UNAUTHORIZED);
    let again = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // The ratings went with it: the users log says the outbox delivered, and the ratings'
    // owner can no longer be found in any listing (a new account sees no trace either).
    if !Suite::is_external() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !s
            .log("recommendations")
            .contains("ratings of a deleted account removed")
        {
            assert!(tokio::time::Instant::now() < deadline, "{}", s.log("users"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            s.log("recommendations").contains("\"deleted\":3"),
            "{}",
            s.log("recommendations")
        );
    }
}

async fn change_password(s: &Suite, c: &Client, id: &str, token: &str, body: Value) -> Value {
    let r = c
        .patch(format!("{}/api/v1/users/{id}", s.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let mut doc: Value = r.json().await.unwrap_or(Value::Null);
    doc["status"] = status.into();
    doc
}

async fn read_account(s: &Suite, c: &Client, id: &str, token: &str) -> StatusCode {
    c.get(format!("{}/api/v1/users/{id}", s.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let s = Suite::start().await;
    let c = client();
    let (id, email, token) = account(&s, &c).await;
    let other = sign_in(&s, &c, &email).await;
    assert_eq!(rate(&s, &c, &other, 1).await, StatusCode::CREATED);

    // A bearer token alone cannot change the password, nor can a wrong current password.
    let missing = change_password(&s, &c, &id, &token, json!({"password": "a new password"})).await;
    assert_eq!(missing["status"], 400, "{missing}");
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("current_password"),
        "{missing}"
    );
    let wrong = change_password(
        &s,
        &c,
        &id,
        &token,
        json!({"password": "a new password", "current_password": "wrong horse battery"}),
    )
    .await;
    assert_eq!(wrong["status"], 403, "{wrong}");
    // Nothing changed: the other session goes on and the old password still signs in.
    assert_eq!(read_account(&s, &c, &id, &other).await, StatusCode::OK);
    assert_eq!(rate(&s, &c, &other, 2).await, StatusCode::CREATED);
    let still = sign_in(&s, &c, &email).await;

    let changed = change_password(
        &s,
        &c,
        &id,
        &token,
        json!({"password": "a new password", "current_password": "correct horse battery"}),
    )
    .await;
    assert_eq!(changed["status"], 200, "{changed}");
    assert_eq!(changed["id"], id.as_str());

    // Every other session ends: in users at once, in recommendations once users has told it.
    for ended in [&other, &still] {
        assert_eq!(
            read_account(&s, &c, &id, ended).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Recommendations hears of each ended session through the outbox, one at a time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rate(&s, &c, &other, 3).await != StatusCode::UNAUTHORIZED
        || my_ratings(&s, &c, &still).await != StatusCode::UNAUTHORIZED
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "recommendations still takes a session the password change ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The token that made the change goes on, everywhere.
    assert_eq!(read_account(&s, &c, &id, &token).await, StatusCode::OK);
    assert_eq!(rate(&s, &c, &token, 4).await, StatusCode::CREATED);
    assert_eq!(my_ratings(&s, &c, &token).await, StatusCode::OK);
    // The old password no longer signs in; the new one does.
    let old = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let fresh = s.sign_in(&c, &email, "a new password").await;
    assert_eq!(read_account(&s, &c, &id, &fresh).await, StatusCode::OK);
}
