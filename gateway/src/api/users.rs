//! Accounts: `/api/v1/users` (sign-up) and `/api/v1/users/{id}` (the owner reads, changes or
//! deletes it).

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    contract::{self, Validate},
    error::{ApiError, Problem},
    extract::{ApiAuth, ApiJson, ApiPath, ClientIp, present},
    model,
    state::AppState,
};

/// An account (never with its password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub create_time_unix_ms: i64,
    pub update_time_unix_ms: i64,
}

impl From<model::User> for User {
    fn from(u: model::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            create_time_unix_ms: u.create_time_unix_ms,
            update_time_unix_ms: u.update_time_unix_ms,
        }
    }
}

/// Sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// An address like name@example.com (unique, case-insensitive).
    pub email: String,
    /// 1..=64 characters.
    pub display_name: String,
    /// 8..=128 characters.
    pub password: String,
}

impl Validate for CreateUser {
    fn validate(&self) -> Result<(), ApiError> {
        contract::email("email", &self.email)?;
        contract::display_name(&self.display_name)?;
        contract::password("password", &self.password, contract::PASSWORD_MIN)
    }
}

/// Changes to an account: a display name and/or a password. A new password needs the current
/// one, and ends every other session of the account (the token making the change goes on).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// 1..=64 characters.
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<String>,
    /// 8..=128 characters; needs `current_password`.
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
    /// The account's password as it is now: required with `password`, and checked whenever
    /// given (a wrong one is 403 and changes nothing).
    #[serde(default, deserialize_with = "present")]
    pub current_password: Option<String>,
}

impl Validate for UpdateUser {
    fn validate(&self) -> Result<(), ApiError> {
        contract::update_user(
            self.display_name.as_deref(),
            self.password.as_deref(),
            self.current_password.as_deref(),
        )
    }
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User,
                headers(("Location" = String, description = "The new account: /api/v1/users/{id}"))),
              (status = 400, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 429, body = Problem, description = "This client's sign-up budget is spent (AUTH_RATE_PER_MINUTE); retry after Retry-After seconds.")))]
pub async fn create_user(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    s.auth_attempt(client, None)?;
    let user = s
        .users()
        .create_user(body.email, body.display_name, body.password)
        .await?;
    let location = format!("/api/v1/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(User::from(user)),
    )
        .into_response())
}

/// Reads the caller's own account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    contract::user_id(&id)?;
    Ok(Json(s.users().get_user(auth.as_ref(), id).await?.into()))
}

/// Changes the caller's display name and/or password. A new password needs
/// `current_password` and ends every other session of the account, in every service; the token
/// that made the change goes on.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = User),
              (status = 400, body = Problem, description = "The request breaks a documented constraint (the detail names the field), e.g. `password` without `current_password`."),
              (status = 401, body = Problem),
              (status = 403, body = Problem, description = "The token's owner is not this account, or `current_password` is wrong: nothing changed."),
              (status = 429, body = Problem, description = "Password checks: this client's budget (AUTH_RATE_PER_MINUTE) or this account's budget of wrong current passwords (AUTH_ACCOUNT_RATE_PER_MINUTE) is spent, or a service is at its concurrency limit; retry after Retry-After seconds.")))]
pub async fn update_user(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    contract::user_id(&id)?;
    // A current password is a password guess like a sign-in's: the same budgets, the account's
    // spent only by a wrong one (PERMISSION_DENIED).
    let attempt = match body.current_password {
        Some(_) => Some(s.auth_attempt(client, Some(&id))?),
        None => None,
    };
    let user = s
        .users()
        .update_user(
            auth.as_ref(),
            id,
            body.display_name,
            body.password,
            body.current_password,
        )
        .await;
    if let Some(attempt) = attempt {
        attempt.settle(&user, tonic::Code::PermissionDenied);
    }
    Ok(Json(user?.into()))
}

/// Deletes the caller's account.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_user(
    State(s): State<AppState>,
    ApiAuth(auth): ApiAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    contract::user_id(&id)?;
    s.users().delete_user(auth.as_ref(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The accounts' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", post(create_user))
        .route(
            "/api/v1/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
}
