//! Whose tokens recommendations accepts: those signed by a private key whose public key it was
//! given, under that key's id; several during a rotation; never one it could have made itself.

use std::time::Duration;

use clap::Parser;
use platform::auth::{TokenSigner, generate_keys};
use protos::recommendations::v1::ListMyRatingsRequest;
use secrecy::{ExposeSecret, SecretString};
use tonic::Code;

use crate::helpers::{KEYS, TestService, as_user, spawn_args, spawn_service, with_token};

fn list() -> ListMyRatingsRequest {
    ListMyRatingsRequest {
        page_size: 10,
        ..Default::default()
    }
}

/// Asserts that `s` refuses `token` as UNAUTHENTICATED, with a message that contains `why`.
async fn assert_refused(s: &TestService, token: &str, why: &str) {
    let refused = s
        .client()
        .list_my_ratings(with_token(list(), token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains(why), "{}", refused.message());
}

#[tokio::test]
async fn a_token_signed_by_a_key_recommendations_does_not_know_is_refused() {
    let s = spawn_service().await;
    let stranger = TokenSigner::from_secret(&generate_keys().signing_key).unwrap();
    let (token, _) = stranger.issue("ada", Duration::from_secs(60));
    assert_refused(&s, &token, "key this service does not know").await;
    // The service's own key pair still works.
    s.client()
        .list_my_ratings(as_user(list(), "ada"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_naming_a_known_key_but_signed_by_another_is_refused() {
    let s = spawn_service().await;
    let other = generate_keys();
    let (_, other_der) = other.signing_key.expose_secret().split_once('=').unwrap();
    let impostor =
        TokenSigner::from_secret(&SecretString::from(format!("{}={other_der}", KEYS.kid))).unwrap();
    let (token, _) = impostor.issue("ada", Duration::from_secs(60));
    assert_refused(&s, &token, "signature is not valid").await;
}

#[tokio::test]
async fn during_a_rotation_tokens_of_the_old_and_the_new_key_are_accepted() {
    let new = generate_keys();
    let both = format!("{},{}", KEYS.public_key, new.public_key);
    let s = spawn_args(
        &platform::database::testing::sqlite_url("recs-rotation"),
        &["--token-public-keys", &both],
    )
    .await;
    let old_signer = TokenSigner::from_secret(&KEYS.signing_key).unwrap();
    let new_signer = TokenSigner::from_secret(&new.signing_key).unwrap();
    for signer in [old_signer, new_signer] {
        let (token, _) = signer.issue("ada", Duration::from_secs(60));
        s.client()
            .list_my_ratings(with_token(list(), &token))
            .await
            .unwrap_or_else(|e| panic!("a token of key {}: {e:?}", signer.kid()));
    }
}

#[tokio::test]
async fn an_hmac_era_token_is_refused() {
    let s = spawn_service().await;
    // The shape tokens had when users and recommendations shared TOKEN_SECRET.
    let old = "eyJzdWIiOiJhZGEiLCJzaWQiOiJzIiwiaWF0IjoxLCJleHAiOjk5OTk5OTk5OTl9.\
               c2lnbmF0dXJlLXRoYXQtd2FzLW9uY2UtYW4taG1hYw";
    assert_refused(&s, old, "malformed").await;
}

#[test]
fn recommendations_takes_no_signing_key_so_it_cannot_mint_tokens() {
    let keys = generate_keys();
    let with_private = recommendations::Config::try_parse_from([
        "recommendations",
        "--token-public-keys",
        keys.public_key.as_str(),
        "--token-signing-key",
        keys.signing_key.expose_secret(),
    ])
    .unwrap_err();
    assert_eq!(with_private.kind(), clap::error::ErrorKind::UnknownArgument);
    let old_secret = recommendations::Config::try_parse_from([
        "recommendations",
        "--token-public-keys",
        keys.public_key.as_str(),
        "--token-secret",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ])
    .unwrap_err();
    assert_eq!(old_secret.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn public_keys_of_the_wrong_length_stop_start_up_naming_the_setting() {
    let refused = recommendations::Config::try_parse_from([
        "recommendations",
        "--token-public-keys",
        "k1=YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh",
    ])
    .unwrap_err()
    .to_string();
    assert!(refused.contains("--token-public-keys"), "{refused}");
    assert!(refused.contains("30 bytes long"), "{refused}");
}
