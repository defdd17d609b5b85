//! Health that tells the truth about the database, restarts that keep data, metrics.

use std::time::Duration;

use protos::users::v1::{CreateUserRequest, SignInRequest};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};
use users::SERVICE_NAME;

use crate::helpers::{spawn_service, spawn_with, wait_serving};

#[tokio::test]
async fn without_a_reachable_database_the_service_is_not_serving_and_calls_are_unavailable() {
    // Nothing listens on port 1: the service keeps retrying and stays NOT_SERVING.
    let s = spawn_with("postgres://nobody:secret@127.0.0.1:1/none", &[]).await;
    let r = HealthClient::new(s.channel.clone())
        .check(HealthCheckRequest {
            service: SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::NotServing as i32);
    let e = s
        .client()
        .create_user(CreateUserRequest {
            email: "a@example.org".into(),
            display_name: "A".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let ready = reqwest::get(format!("http://{}/readyz", s.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = reqwest::get(format!("http://{}/livez", s.admin))
        .await
        .unwrap();
    assert_eq!(
        live.status(),
        200,
        "liveness does not depend on the database"
    );
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let mut first = spawn_service().await;
    first.account("ada@example.org", "correct horse").await;
    let url = first.database_url.clone();
    first.stop();
    tokio::time::timeout(Duration::from_secs(15), &mut first.handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let second = spawn_with(&url, &[]).await;
    wait_serving(&second).await;
    let r = second
        .client()
        .sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "correct horse".into(),
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn sign_ups_and_sign_ins_are_counted_by_outcome() {
    let s = spawn_service().await;
    s.account("ada@example.org", "correct horse").await;
    let _ = s
        .client()
        .sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "wrong horse".into(),
        })
        .await;
    let text = reqwest::get(format!("http://{}/metrics", s.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("users_signups_total 1"), "{text}");
    assert!(text.contains(r#"users_signins_total{outcome="success"} 1"#));
    assert!(text.contains(r#"users_signins_total{outcome="failure"} 1"#));
    assert!(!text.contains("correct horse"));
}
