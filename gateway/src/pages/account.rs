//! The account forms' POST routes: `/signin`, `/signup` (then signed in) and `/signout`. Each
//! answers with a redirect to a page that shows the outcome as a notice, so reloading never
//! posts twice; a form the services would refuse is named precisely before any call.

use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, header},
    response::Response,
};
use serde::Deserialize;
use tonic::Code;

use super::{forms::FormGuard, respond::see_other, session};
use crate::{contract, error::ApiError, extract::ClientIp, model::Session, state::AppState};

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: String,
    display_name: String,
    password: String,
}

/// A redirect to `to` that starts `session` in the browser.
fn signed_in(forms: &FormGuard, session: &Session, to: &str) -> Response {
    let mut r = see_other(to);
    for c in session::start(session, forms.secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// Back to the account forms with a notice.
fn back(notice: &str) -> Response {
    see_other(&format!("/?notice={notice}#account"))
}

/// The notice for a refused sign-in or sign-up.
fn notice_for(e: &ApiError, form: &'static str) -> &'static str {
    match e.grpc_code {
        Some(Code::Unauthenticated) => "bad-credentials",
        Some(Code::AlreadyExists) => "email-taken",
        Some(Code::InvalidArgument) => form,
        _ => "unavailable",
    }
}

/// What is wrong with a sign-up form, as a notice code, before the users service is asked.
/// The email is only checked to be an address: the service takes non-ASCII ones from the form.
fn signup_problem(f: &SignUpForm) -> Option<&'static str> {
    let email = f.email.trim();
    if email.is_empty() || !email.contains('@') || email.chars().count() > contract::EMAIL_MAX {
        return Some("invalid-email");
    }
    if contract::display_name(&f.display_name).is_err() {
        return Some("invalid-name");
    }
    if contract::password("password", &f.password, contract::PASSWORD_MIN).is_err() {
        return Some("short-password");
    }
    None
}

/// POST `/signin`.
pub async fn sign_in(
    State(s): State<AppState>,
    forms: FormGuard,
    ClientIp(client): ClientIp,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return back("invalid-signin");
    };
    if f.email.trim().is_empty() || f.password.is_empty() {
        return back("invalid-signin");
    }
    let Ok(attempt) = s.auth_attempt(client, Some(&f.email)) else {
        return back("too-many-attempts");
    };
    let outcome = s.users().sign_in(f.email, f.password).await;
    attempt.settle(&outcome, Code::Unauthenticated);
    match outcome {
        Ok(session) => signed_in(&forms, &session, "/?notice=signed-in"),
        Err(e) => back(notice_for(&e, "invalid-signin")),
    }
}

/// POST `/signup`: creates the account, then signs in.
pub async fn sign_up(
    State(s): State<AppState>,
    forms: FormGuard,
    ClientIp(client): ClientIp,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return back("invalid-signup");
    };
    if let Some(problem) = signup_problem(&f) {
        return back(problem);
    }
    if s.auth_attempt(client, None).is_err() {
        return back("too-many-attempts");
    }
    // One deadline for both calls: the request's budget, not one per call.
    let users = s.users();
    if let Err(e) = users
        .create_user(f.email.clone(), f.display_name, f.password.clone())
        .await
    {
        return back(notice_for(&e, "invalid-signup"));
    }
    match users.sign_in(f.email, f.password).await {
        Ok(session) => signed_in(&forms, &session, "/?notice=signed-up"),
        Err(e) => back(notice_for(&e, "invalid-signup")),
    }
}

/// POST `/signout`: ends the session's token (not only the cookie), then drops the cookies.
pub async fn sign_out(State(s): State<AppState>, forms: FormGuard, headers: HeaderMap) -> Response {
    if let Some(sess) = session::from_cookies(&headers)
        && let Err(e) = s.users().sign_out(Some(&sess.token)).await
    {
        // An already ended or expired token is signed out; anything else is worth a line.
        if e.grpc_code != Some(Code::Unauthenticated) {
            tracing::warn!(
                status = e.status.as_u16(),
                "sign-out could not end the token"
            );
        }
    }
    let mut r = see_other("/?notice=signed-out");
    for c in session::end(forms.secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(email: &str, name: &str, password: &str) -> SignUpForm {
        SignUpForm {
            email: email.into(),
            display_name: name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn a_sign_up_form_names_its_first_problem() {
        assert_eq!(
            signup_problem(&form("", "Ada", "long enough")),
            Some("invalid-email")
        );
        assert_eq!(
            signup_problem(&form("ada", "Ada", "long enough")),
            Some("invalid-email")
        );
        assert_eq!(
            signup_problem(&form("ada@example.org", " ", "long enough")),
            Some("invalid-name")
        );
        assert_eq!(
            signup_problem(&form("ada@example.org", "Ada", "short")),
            Some("short-password")
        );
        assert_eq!(
            signup_problem(&form("adä@example.org", "Ada", "long enough")),
            None
        );
    }

    #[test]
    fn every_notice_a_form_can_send_has_a_text() {
        for code in [
            "bad-credentials",
            "email-taken",
            "invalid-signin",
            "invalid-signup",
            "invalid-email",
            "invalid-name",
            "short-password",
            "too-many-attempts",
            "unavailable",
            "signed-in",
            "signed-up",
            "signed-out",
        ] {
            assert!(super::super::notice::notice_text(code).is_some(), "{code}");
        }
    }
}
