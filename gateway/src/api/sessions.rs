//! Sign-in and sign-out: `/api/v1/sessions` and `/api/v1/sessions/current`.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{delete, post},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    api::users::User,
    contract::{self, Validate},
    error::{ApiError, Problem},
    extract::{ApiAuth, ApiJson, ClientIp},
    model,
    state::AppState,
};

/// Sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

impl Validate for SignIn {
    fn validate(&self) -> Result<(), ApiError> {
        contract::email("email", &self.email)?;
        contract::password("password", &self.password, 1)
    }
}

/// A bearer token for `authorization: Bearer …`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub user: User,
}

impl From<model::Session> for Session {
    fn from(s: model::Session) -> Self {
        Self {
            access_token: s.access_token,
            token_type: "Bearer".into(),
            expires_in: s.expires_in,
            user: s.user.into(),
        }
    }
}

/// Signs in: email and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "users", request_body = SignIn,
    responses((status = 201, body = Session), (status = 400, body = Problem),
              (status = 401, body = Problem, description = "Email or password is incorrect."),
              (status = 429, body = Problem, description = "This client's sign-in budget (AUTH_RATE_PER_MINUTE) or this account's budget of failed sign-ins (AUTH_ACCOUNT_RATE_PER_MINUTE; a right password is refused too while it is spent) is spent; retry after Retry-After seconds.")))]
pub async fn sign_in(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let attempt = s.auth_attempt(client, Some(&body.email))?;
    let session = s.users().sign_in(body.email, body.password).await;
    // Only a wrong email or password spends the account's budget.
    attempt.settle(&session, tonic::Code::Unauthenticated);
    Ok((StatusCode::CREATED, Json(session?.into())))
}

/// Signs out: the caller's token is refused from now on, by every service.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "The session has ended.")))]
pub async fn sign_out(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
) -> Result<StatusCode, ApiError> {
    s.users().sign_out(auth.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The sessions' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", post(sign_in))
        .route("/api/v1/sessions/current", delete(sign_out))
}
