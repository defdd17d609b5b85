//! Access that ends: signing out ends that token and no other; deleting an account ends its
//! tokens and removes its ratings from recommendations, even when recommendations is away at the
//! time (the outbox retries until it confirms).

use std::time::Duration;

use clap::Parser;
use platform::auth::TokenKey;
use protos::{
    recommendations::v1::{
        ListMyRatingsRequest, RateBookRequest,
        recommendations_service_client::RecommendationsServiceClient,
    },
    users::v1::{DeleteUserRequest, GetUserRequest, SignInRequest, SignOutRequest},
};
use secrecy::SecretString;
use sqlx::Row;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

use crate::helpers::{SECRET, authed, spawn_service, spawn_with, wait_serving};

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

/// The recommendations service on `addr` over `database_url`, SERVING; stopped by the sender.
async fn recommendations_at(
    addr: std::net::SocketAddr,
    database_url: &str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>, Channel) {
    let grpc = TcpListener::bind(addr).await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = recommendations::Config::try_parse_from([
        "recommendations",
        "--token-secret",
        SECRET,
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
    let key = TokenKey::new(&SecretString::from(SECRET.to_owned())).unwrap();
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
