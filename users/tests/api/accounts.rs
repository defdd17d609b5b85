//! Sign-up, sign-in and the owner's profile: every RPC and every error code.

use protos::users::v1::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, SignInRequest, UpdateUserRequest,
};
use tonic::Code;

use crate::helpers::{authed, spawn_service};

#[tokio::test]
async fn sign_up_returns_the_account_without_any_password() {
    let s = spawn_service().await;
    let u = s
        .client()
        .create_user(CreateUserRequest {
            email: " Ada@Example.org ".into(),
            display_name: " Ada ".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(u.email, "Ada@Example.org");
    assert_eq!(u.display_name, "Ada");
    assert!(uuid::Uuid::parse_str(&u.id).is_ok());
    assert!(u.create_time_unix_ms > 0);
}

#[tokio::test]
async fn an_email_is_taken_whatever_its_case() {
    let s = spawn_service().await;
    s.account("ada@example.org", "correct horse").await;
    let e = s
        .client()
        .create_user(CreateUserRequest {
            email: "ADA@EXAMPLE.ORG".into(),
            display_name: "Other".into(),
            password: "another password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn bad_sign_up_fields_are_invalid_argument_naming_the_field_and_store_nothing() {
    let s = spawn_service().await;
    let mut c = s.client();
    for (email, name, password, field) in [
        ("not-an-email", "Ada", "correct horse", "email"),
        ("ada@example.org", "   ", "correct horse", "display_name"),
        ("ada@example.org", "Ada", "short", "password"),
    ] {
        let e = c
            .create_user(CreateUserRequest {
                email: email.into(),
                display_name: name.into(),
                password: password.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(field), "{}", e.message());
    }
    // Nothing was stored: the email is still free.
    s.account("ada@example.org", "correct horse").await;
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let s = spawn_service().await;
    s.account("ada@example.org", "correct horse").await;
    let mut c = s.client();
    let wrong = c
        .sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "wrong horse".into(),
        })
        .await
        .unwrap_err();
    let unknown = c
        .sign_in(SignInRequest {
            email: "bob@example.org".into(),
            password: "wrong horse".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), unknown.message());
}

#[tokio::test]
async fn only_the_owner_may_read_change_or_delete_an_account() {
    let s = spawn_service().await;
    let (ada, ada_token) = s.account("ada@example.org", "correct horse").await;
    let (bob, bob_token) = s.account("bob@example.org", "battery staple").await;
    let mut c = s.client();

    let me = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &ada_token))
        .await
        .unwrap();
    assert_eq!(me.into_inner().user.unwrap().email, "ada@example.org");

    let anonymous = c
        .get_user(GetUserRequest { id: ada.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let forged = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, "x.y"))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);

    let other = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &bob_token))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    let change = c
        .update_user(authed(
            UpdateUserRequest {
                id: ada.id.clone(),
                display_name: Some("Mallory".into()),
                password: None,
                current_password: None,
            },
            &bob_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(change.code(), Code::PermissionDenied);
    let delete = c
        .delete_user(authed(DeleteUserRequest { id: ada.id.clone() }, &bob_token))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::PermissionDenied);

    let bad_id = c
        .get_user(authed(GetUserRequest { id: "nope".into() }, &bob_token))
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    // Ada is untouched.
    let still = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &ada_token))
        .await
        .unwrap();
    assert_eq!(still.into_inner().user.unwrap().display_name, "Reader");
    let _ = bob;
}

#[tokio::test]
async fn updating_the_password_changes_what_signs_in() {
    let s = spawn_service().await;
    let (ada, token) = s.account("ada@example.org", "correct horse").await;
    let mut c = s.client();
    let u = c
        .update_user(authed(
            UpdateUserRequest {
                id: ada.id.clone(),
                display_name: Some("Ada L.".into()),
                password: Some("new password!".into()),
                current_password: Some("correct horse".into()),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(u.display_name, "Ada L.");
    assert!(u.update_time_unix_ms >= u.create_time_unix_ms);
    assert!(
        c.sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "new password!".into()
        })
        .await
        .is_ok()
    );
    assert_eq!(
        c.sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "correct horse".into()
        })
        .await
        .unwrap_err()
        .code(),
        Code::Unauthenticated
    );
    let nothing = c
        .update_user(authed(
            UpdateUserRequest {
                id: ada.id.clone(),
                display_name: None,
                password: None,
                current_password: None,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);
    let weak = c
        .update_user(authed(
            UpdateUserRequest {
                id: ada.id,
                display_name: None,
                password: Some("short".into()),
                current_password: Some("new password!".into()),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_deleted_account_is_gone() {
    let s = spawn_service().await;
    let (ada, token) = s.account("ada@example.org", "correct horse").await;
    let mut c = s.client();
    c.delete_user(authed(DeleteUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap();
    // The account's tokens ended with it.
    let e = c
        .get_user(authed(GetUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let again = c
        .delete_user(authed(DeleteUserRequest { id: ada.id }, &token))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    assert_eq!(
        c.sign_in(SignInRequest {
            email: "ada@example.org".into(),
            password: "correct horse".into()
        })
        .await
        .unwrap_err()
        .code(),
        Code::Unauthenticated
    );
}
