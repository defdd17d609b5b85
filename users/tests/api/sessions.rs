//! Access that ends: signing out ends that token and no other; a password change needs the
//! current password and ends every other session of the account, here and in recommendations;
//! deleting an account ends its tokens and removes its ratings from recommendations, even when
//! recommendations is away at the time (the outbox retries until it confirms).

use std::time::Duration;

use clap::Parser;
use protos::{
    recommendations::v1::{
        ListMyRatingsRequest, RateBookRequest,
        recommendations_service_client::RecommendationsServiceClient,
    },
    users::v1::{
        DeleteUserRequest, GetUserRequest, SignInRequest, SignOutRequest, UpdateUserRequest,
    },
};
use sqlx::Row;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

use crate::helpers::{KEYS, authed, signer, spawn_service, spawn_with, wait_serving};

#[tokio::test]
async fn signing_out_ends_that_token_and_no_other() {
    let s = spawn_service().await;
    let (ada, first) = s.account("ada@example.org", "correct horse").await;
    let mut c = s.client();
    let second = c
        .sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    c.sign_out(authed(SignOutRequest {}, &first)).await.unwrap();
    let ended = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &first))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated);
    assert!(ended.message().contains("ended"), "{}", ended.message());
    c.get_user(authed(GetUserRequest { id: ada.id.clone() }, &second))
        .await
        .expect("another session of the same account still works");
    let anonymous = c.sign_out(SignOutRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_sign_out_recorded_by_one_replica_is_refused_by_another() {
    let url = platform::database::testing::sqlite_url("users-replicas");
    let a = spawn_with(&url, &["--outbox-poll-ms", "50"]).await;
    wait_serving(&a).await;
    let b = spawn_with(&url, &["--outbox-poll-ms", "50"]).await;
    wait_serving(&b).await;
    let (ada, token) = a.account("ada@example.org", "correct horse").await;
    b.client()
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap();
    a.client()
        .sign_out(authed(SignOutRequest {}, &token))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = b
            .client()
            .get_user(authed(GetUserRequest { id: ada.id.clone() }, &token))
            .await;
        match r {
            Err(e) if e.code() == Code::Unauthenticated => break,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("replica b still accepts the ended token: {r:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Signs `email` in with `password`: a new session's token.
async fn another_session(s: &crate::helpers::TestService, email: &str, password: &str) -> String {
    s.client()
        .sign_in(SignInRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

fn new_password(id: &str, password: &str, current: Option<&str>) -> UpdateUserRequest {
    UpdateUserRequest {
        id: id.into(),
        display_name: None,
        password: Some(password.into()),
        current_password: current.map(Into::into),
    }
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_wrong_one_changes_nothing() {
    let s = spawn_service().await;
    let (ada, token) = s.account("ada@example.org", "correct horse").await;
    let other = another_session(&s, "ada@example.org", "correct horse").await;
    let mut c = s.client();

    let missing = c
        .update_user(authed(new_password(&ada.id, "new password!", None), &token))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(
        missing.message().contains("current_password"),
        "{}",
        missing.message()
    );
    let mut wrong = new_password(&ada.id, "new password!", Some("wrong horse"));
    wrong.display_name = Some("Mallory".into());
    let refused = c.update_user(authed(wrong, &token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("current_password"),
        "{}",
        refused.message()
    );
    // A wrong current password is refused even for a change of name alone.
    let name_only = UpdateUserRequest {
        id: ada.id.clone(),
        display_name: Some("Mallory".into()),
        password: None,
        current_password: Some("wrong horse".into()),
    };
    let refused = c.update_user(authed(name_only, &token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Nothing changed: the name, the password, and every session.
    let me = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &other))
        .await
        .expect("the other session goes on")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.display_name, "Reader");
    for password in ["correct horse", "new password!"] {
        let r = c
            .sign_in(SignInRequest {
                email: "ada@example.org".into(),
                password: password.into(),
            })
            .await;
        assert_eq!(r.is_ok(), password == "correct horse", "{password}: {r:?}");
    }
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_of_the_account_and_keeps_the_callers() {
    let s = spawn_service().await;
    let (ada, token) = s.account("ada@example.org", "correct horse").await;
    let second = another_session(&s, "ada@example.org", "correct horse").await;
    let third = another_session(&s, "ada@example.org", "correct horse").await;
    let (bob, bobs) = s.account("bob@example.org", "correct horse").await;
    let mut c = s.client();

    c.update_user(authed(
        new_password(&ada.id, "new password!", Some("correct horse")),
        &token,
    ))
    .await
    .unwrap();

    for ended in [&second, &third] {
        let e = c
            .get_user(authed(GetUserRequest { id: ada.id.clone() }, ended))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(e.message().contains("ended"), "{}", e.message());
    }
    c.get_user(authed(GetUserRequest { id: ada.id.clone() }, &token))
        .await
        .expect("the session that made the change goes on");
    c.get_user(authed(GetUserRequest { id: bob.id }, &bobs))
        .await
        .expect("another account's session is untouched");
    // The new password signs in, and that new session is not ended by the old change.
    let fresh = another_session(&s, "ada@example.org", "new password!").await;
    c.get_user(authed(GetUserRequest { id: ada.id.clone() }, &fresh))
        .await
        .unwrap();
    // Each ended session is recorded (and queued for recommendations), and a replica reading
    // the same database refuses them from its revocations table.
    let revoked = "SELECT COUNT(*) FROM revocations WHERE id LIKE $1";
    assert_eq!(count(&s.database_url, revoked, "s:%").await, 2);
    let b = spawn_with(&s.database_url, &["--outbox-poll-ms", "50"]).await;
    wait_serving(&b).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = b
            .client()
            .get_user(authed(GetUserRequest { id: ada.id.clone() }, &second))
            .await;
        match r {
            Err(e) if e.code() == Code::Unauthenticated => break,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("replica b still accepts the ended session: {r:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    b.client()
        .get_user(authed(GetUserRequest { id: ada.id }, &token))
        .await
        .expect("and takes the caller's");
}

#[tokio::test]
async fn sessions_a_password_change_ended_are_refused_by_recommendations() {
    let recs_db = platform::database::testing::sqlite_url("recs-password");
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (_stop, _handle, channel) = recommendations_at(addr, &recs_db).await;
    let users = spawn_with(
        &platform::database::testing::sqlite_url("users-password"),
        &[
            "--recommendations-url",
            &format!("http://{addr}"),
            "--outbox-poll-ms",
            "50",
        ],
    )
    .await;
    wait_serving(&users).await;
    let (ada, token) = users.account("ada@example.org", "correct horse").await;
    let second = another_session(&users, "ada@example.org", "correct horse").await;
    let mut recs = RecommendationsServiceClient::new(channel);
    let rate = |token: &str, book_id| authed(RateBookRequest { book_id, stars: 4 }, token);
    recs.rate_book(rate(&second, 1)).await.unwrap();
    users
        .client()
        .update_user(authed(
            new_password(&ada.id, "new password!", Some("correct horse")),
            &token,
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match recs.rate_book(rate(&second, 2)).await {
            Err(e) if e.code() == Code::Unauthenticated => break,
            r => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "recommendations still takes the ended session: {r:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    recs.rate_book(rate(&token, 3))
        .await
        .expect("the caller's session goes on in recommendations too");
}

/// The recommendations service on `addr` over `database_url`, SERVING; stopped by the sender.
async fn recommendations_at(
    addr: std::net::SocketAddr,
    database_url: &str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>, Channel) {
    let grpc = TcpListener::bind(addr).await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = recommendations::Config::try_parse_from([
        "recommendations",
        "--token-public-keys",
        KEYS.public_key.as_str(),
        "--database-url",
        database_url,
    ])
    .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        recommendations::run(grpc, admin, config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    platform::health::wait_for_status(
        channel.clone(),
        recommendations::SERVICE_NAME,
        tonic_health::ServingStatus::Serving,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    (tx, handle, channel)
}

async fn count(url: &str, sql: &str, bind: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query(sql)
        .bind(bind)
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn deleting_an_account_removes_its_ratings_even_if_recommendations_was_away() {
    let recs_db = platform::database::testing::sqlite_url("recs-for-users");
    let users_db = platform::database::testing::sqlite_url("users-outbox");
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (stop, handle, channel) = recommendations_at(addr, &recs_db).await;
    let url = format!("http://{addr}");
    let users = spawn_with(
        &users_db,
        &["--recommendations-url", &url, "--outbox-poll-ms", "50"],
    )
    .await;
    wait_serving(&users).await;
    let (ada, token) = users.account("ada@example.org", "correct horse").await;
    let mut recs = RecommendationsServiceClient::new(channel);
    for book in [1, 2, 3] {
        recs.rate_book(authed(
            RateBookRequest {
                book_id: book,
                stars: 5,
            },
            &token,
        ))
        .await
        .unwrap();
    }
    let ratings = "SELECT COUNT(*) FROM ratings WHERE user_id = $1";
    assert_eq!(count(&recs_db, ratings, &ada.id).await, 3);

    // Recommendations goes away; the account is deleted meanwhile.
    let _ = stop.send(());
    handle.await.unwrap();
    users
        .client()
        .delete_user(authed(DeleteUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap();
    let pending = "SELECT COUNT(*) FROM outbox WHERE subject = $1 AND attempts > 0";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(&users_db, pending, &ada.id).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&recs_db, ratings, &ada.id).await,
        3,
        "not deleted yet"
    );

    // It comes back at the same address: the outbox delivers, the ratings go, the token ends.
    let (_stop, _handle, channel) = recommendations_at(addr, &recs_db).await;
    let queued = "SELECT COUNT(*) FROM outbox WHERE subject = $1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(&users_db, queued, &ada.id).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&recs_db, ratings, &ada.id).await, 0);
    let mut recs = RecommendationsServiceClient::new(channel);
    let refused = recs
        .rate_book(authed(
            RateBookRequest {
                book_id: 4,
                stars: 5,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = recs
        .list_my_ratings(authed(ListMyRatingsRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn only_the_users_service_or_the_user_may_delete_a_users_ratings() {
    let recs_db = platform::database::testing::sqlite_url("recs-authz");
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (_stop, _handle, channel) = recommendations_at(addr, &recs_db).await;
    let key = signer();
    let mut recs = RecommendationsServiceClient::new(channel);
    let (bob, _) = key.issue("bob", Duration::from_secs(60));
    let denied = recs
        .delete_user_ratings(authed(
            protos::recommendations::v1::DeleteUserRatingsRequest {
                user_id: "ada".into(),
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = recs
        .revoke_session(authed(
            protos::recommendations::v1::RevokeSessionRequest {
                session_id: "x".into(),
                expire_time_unix_ms: i64::MAX / 2,
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let (service, _) = key.issue(platform::auth::USERS_SERVICE, Duration::from_secs(60));
    recs.delete_user_ratings(authed(
        protos::recommendations::v1::DeleteUserRatingsRequest {
            user_id: "ada".into(),
        },
        &service,
    ))
    .await
    .unwrap();
}
