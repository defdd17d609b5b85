//! The token keys users starts with: a private key that does not parse, or whose public key the
//! verifiers are not given, stops start-up; tokens carry the signing key's id, and tokens of an
//! older key still listed in TOKEN_PUBLIC_KEYS keep working through a rotation.

use std::time::Duration;

use base64::Engine;
use platform::auth::{TokenSigner, generate_keys};
use protos::users::v1::GetUserRequest;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::helpers::{KEYS, authed, config, spawn_with, wait_serving};

/// What `users::run` answers with `flags`, or a panic if it serves.
async fn start_up_error(flags: &[&str]) -> String {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = config(
        &platform::database::testing::sqlite_url("users-keys"),
        flags,
    );
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        users::run(grpc, admin, config, std::future::pending()),
    )
    .await
    .expect("start-up is refused at once");
    outcome.unwrap_err().to_string()
}

#[tokio::test]
async fn a_signing_key_that_is_not_an_ed25519_private_key_stops_start_up() {
    let weak = format!("k1={}", "a".repeat(32));
    let message = start_up_error(&["--token-signing-key", &weak]).await;
    assert!(message.contains("TOKEN_SIGNING_KEY"), "{message}");
    assert!(
        !message.contains("aaaaaaaa"),
        "never the key itself: {message}"
    );
    let message = start_up_error(&["--token-signing-key", &"a".repeat(32)]).await;
    assert!(message.contains("KID=BASE64"), "{message}");
}

#[tokio::test]
async fn a_signing_key_whose_public_key_is_not_published_stops_start_up() {
    let other = generate_keys();
    let message = start_up_error(&["--token-public-keys", &other.public_key]).await;
    assert!(message.contains("not in TOKEN_PUBLIC_KEYS"), "{message}");
    assert!(message.contains(&KEYS.kid), "{message}");
    // The right key id with another public key is no better.
    let (_, other_key) = other.public_key.split_once('=').unwrap();
    let message =
        start_up_error(&["--token-public-keys", &format!("{}={other_key}", KEYS.kid)]).await;
    assert!(message.contains("not in TOKEN_PUBLIC_KEYS"), "{message}");
}

#[tokio::test]
async fn after_a_switch_of_signing_key_tokens_of_both_keys_are_accepted() {
    // Step two of a rotation: users signs with the new key; both public keys are listed.
    let new = generate_keys();
    let both = format!("{},{}", KEYS.public_key, new.public_key);
    let s = spawn_with(
        &platform::database::testing::sqlite_url("users-rotation"),
        &[
            "--token-signing-key",
            new.signing_key.expose_secret(),
            "--token-public-keys",
            &both,
        ],
    )
    .await;
    wait_serving(&s).await;
    let (ada, token) = s.account("ada@example.org", "correct horse").await;
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new.kid.as_str(), "signed with the new key");
    assert_eq!(header["alg"], "EdDSA");
    let old = TokenSigner::from_secret(&KEYS.signing_key).unwrap();
    let (old_token, _) = old.issue(&ada.id, Duration::from_secs(60));
    for token in [token, old_token] {
        s.client()
            .get_user(authed(GetUserRequest { id: ada.id.clone() }, &token))
            .await
            .unwrap();
    }
    // A key that was never listed is refused.
    let stranger = TokenSigner::from_secret(&generate_keys().signing_key).unwrap();
    let (foreign, _) = stranger.issue(&ada.id, Duration::from_secs(60));
    let refused = s
        .client()
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &foreign))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
