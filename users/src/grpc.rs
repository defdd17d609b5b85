//! The gRPC face of accounts: validates requests, enforces "only the owner", hashes off the
//! async runtime, and turns rows into proto messages (never with a password or hash).

use std::{sync::Arc, time::Duration};

use platform::auth::{Revocations, TokenSigner, caller};
use prometheus::IntCounterVec;
use protos::users::v1::{self as pb, users_service_server::UsersService};
use rules::{
    DisplayName, Email, RuleError,
    account::{check_new_password, is_user_id, password_too_long},
};
use tonic::{Request, Response, Status};

use crate::{
    account,
    store::{NewPassword, SessionRow, StoreError, UserRow, UserStore},
};

/// One message for an unknown email and a wrong password: no account enumeration.
const BAD_CREDENTIALS: &str = "email or password is incorrect";
/// A password change whose `current_password` is not the account's password.
const WRONG_CURRENT_PASSWORD: &str = "current_password is incorrect";

/// The users service.
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn UserStore>,
    tokens: TokenSigner,
    token_ttl: Duration,
    signups: IntCounterVec,
    signins: IntCounterVec,
    /// Verified against when the email is unknown, so both failures take the same time.
    decoy_hash: Arc<str>,
    hash_permits: Arc<tokio::sync::Semaphore>,
    /// One reusable working memory per permit.
    hash_memory: Arc<std::sync::Mutex<Vec<account::HashMemory>>>,
    /// Ended tokens, refused by the interceptor (same list).
    revocations: Revocations,
    /// Wakes the outbox delivery after a change was queued.
    outbox_wake: Arc<tokio::sync::Notify>,
}

impl Users {
    pub fn new(
        store: Arc<dyn UserStore>,
        tokens: TokenSigner,
        token_ttl: Duration,
        hash_concurrency: usize,
        metrics: &platform::metrics::Metrics,
    ) -> Self {
        Self {
            store,
            tokens,
            token_ttl,
            signups: metrics.counter_vec("users_signups_total", "Accounts created.", &[]),
            signins: metrics.counter_vec(
                "users_signins_total",
                "Sign-in attempts by outcome (success, failure).",
                &["outcome"],
            ),
            decoy_hash: account::hash_password(
                "decoy password never used",
                &mut account::HashMemory::new(),
            )
            .into(),
            hash_permits: Arc::new(tokio::sync::Semaphore::new(hash_concurrency.max(1))),
            hash_memory: Arc::default(),
            revocations: Revocations::default(),
            outbox_wake: Arc::default(),
        }
    }

    /// The list of ended tokens (give the same one to the interceptor) and the outbox's wake-up.
    pub fn with_revocations(
        mut self,
        revocations: Revocations,
        outbox_wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        self.revocations = revocations;
        self.outbox_wake = outbox_wake;
        self
    }
}

/// A request that breaks an input rule.
fn invalid(e: RuleError) -> Status {
    Status::invalid_argument(e.0)
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Status::already_exists(e.to_string()),
            // What was checked as the current password no longer is.
            StoreError::PasswordChanged => Status::permission_denied(WRONG_CURRENT_PASSWORD),
            StoreError::NotReady(_) => Status::unavailable(e.to_string()),
            StoreError::Database(error) => {
                tracing::error!(%error, "users database failed");
                Status::unavailable("the users database is unavailable; try again")
            }
        }
    }
}

fn to_proto(u: UserRow) -> pb::User {
    pb::User {
        id: u.id,
        email: u.email,
        display_name: u.display_name,
        create_time_unix_ms: u.created_at_ms,
        update_time_unix_ms: u.updated_at_ms,
    }
}

impl Users {
    /// Runs a password hash or check off the async runtime, at most `hash_concurrency` at once:
    /// each takes 19 MiB and a core for tens of milliseconds, so an unbounded burst of sign-ins
    /// would exhaust memory instead of queueing.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut account::HashMemory) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let _permit = self
            .hash_permits
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        let pool = self.hash_memory.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_default();
            let out = f(&mut memory);
            pool.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
            out
        })
        .await
        .map_err(|_| Status::internal("internal error"))
    }

    /// Checks `current` against account `id`'s password; the hash it matched.
    async fn check_current_password(&self, id: &str, current: String) -> Result<String, Status> {
        let user = self.store.by_id(id).await?.ok_or_else(|| gone(id))?;
        if password_too_long(&current) {
            return Err(Status::permission_denied(WRONG_CURRENT_PASSWORD));
        }
        let hash: Arc<str> = user.password_hash.as_str().into();
        let matches = self
            .hashing(move |m| account::verify_password(&current, &hash, m))
            .await?;
        if !matches {
            tracing::info!(user_id = %id, "password change refused: wrong current password");
            return Err(Status::permission_denied(WRONG_CURRENT_PASSWORD));
        }
        Ok(user.password_hash)
    }
}

/// The caller, who must own account `id`.
fn owner<T>(req: &Request<T>, id: &str) -> Result<String, Status> {
    let me = caller(req)?;
    if id.is_empty() {
        return Err(Status::invalid_argument("id is required"));
    }
    if !is_user_id(id) {
        return Err(Status::invalid_argument(format!(
            "id must be a user id (a UUID), got {id:?}"
        )));
    }
    if me.user_id != id {
        return Err(Status::permission_denied(
            "you may only read or change your own account",
        ));
    }
    Ok(me.user_id)
}

fn gone(id: &str) -> Status {
    Status::not_found(format!("user {id} not found"))
}

#[tonic::async_trait]
impl UsersService for Users {
    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let req = request.into_inner();
        let (email, email_lower) = Email::parse(&req.email).map_err(invalid)?.into_parts();
        let display_name = DisplayName::parse(&req.display_name)
            .map_err(invalid)?
            .into_string();
        check_new_password(&req.password).map_err(invalid)?;
        if self.store.by_email(&email_lower).await?.is_some() {
            return Err(StoreError::EmailTaken.into());
        }
        let password = req.password;
        let password_hash = self
            .hashing(move |m| account::hash_password(&password, m))
            .await?;
        let now = platform::now_unix_ms();
        let user = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            email,
            display_name,
            password_hash,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.store.insert(&user, &email_lower).await?;
        self.signups.with_label_values(&[] as &[&str]).inc();
        tracing::info!(user_id = %user.id, "account created");
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(to_proto(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn sign_in(
        &self,
        request: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let req = request.into_inner();
        if req.email.trim().is_empty() {
            return Err(Status::invalid_argument("email is required"));
        }
        if req.password.is_empty() {
            return Err(Status::invalid_argument("password is required"));
        }
        if password_too_long(&req.password) {
            self.signins.with_label_values(&["failure"]).inc();
            return Err(Status::unauthenticated(BAD_CREDENTIALS));
        }
        let user = self
            .store
            .by_email(&req.email.trim().to_lowercase())
            .await?;
        let hash: Arc<str> = match &user {
            Some(u) => u.password_hash.as_str().into(),
            None => self.decoy_hash.clone(),
        };
        let password = req.password;
        let matches = self
            .hashing(move |m| account::verify_password(&password, &hash, m))
            .await?;
        match user {
            Some(user) if matches => {
                let (access_token, claims) = self.tokens.issue(&user.id, self.token_ttl);
                // Recorded, so that a password change can end it; refused if the password
                // changed while it was being checked.
                let session = SessionRow {
                    id: claims.sid.clone(),
                    user_id: user.id.clone(),
                    expires_at_ms: claims.exp.saturating_mul(1000),
                };
                let started = self
                    .store
                    .start_session(&session, &user.password_hash, platform::now_unix_ms())
                    .await?;
                if !started {
                    self.signins.with_label_values(&["failure"]).inc();
                    return Err(Status::unauthenticated(BAD_CREDENTIALS));
                }
                self.signins.with_label_values(&["success"]).inc();
                tracing::info!(user_id = %user.id, "signed in");
                Ok(Response::new(pb::SignInResponse {
                    access_token,
                    expires_in_seconds: claims.exp - claims.iat,
                    user: Some(to_proto(user)),
                }))
            }
            _ => {
                self.signins.with_label_values(&["failure"]).inc();
                Err(Status::unauthenticated(BAD_CREDENTIALS))
            }
        }
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let id = owner(&request, &request.get_ref().id)?;
        let user = self.store.by_id(&id).await?.ok_or_else(|| gone(&id))?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(to_proto(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let id = owner(&request, &request.get_ref().id)?;
        let session = caller(&request)?.session_id;
        let req = request.into_inner();
        if req.display_name.is_none() && req.password.is_none() {
            return Err(Status::invalid_argument(
                "nothing to update: set display_name and/or password",
            ));
        }
        if req.password.is_some() && req.current_password.is_none() {
            return Err(Status::invalid_argument(
                "current_password is required to change the password",
            ));
        }
        let display_name = req
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(invalid)?
            .map(DisplayName::into_string);
        if let Some(p) = &req.password {
            check_new_password(p).map_err(invalid)?;
        }
        // The current password, whenever given, must be right: else nothing changes.
        let checked_hash = match req.current_password {
            Some(current) => Some(self.check_current_password(&id, current).await?),
            None => None,
        };
        let new_hash = match req.password {
            Some(p) => Some(self.hashing(move |m| account::hash_password(&p, m)).await?),
            None => None,
        };
        let password = match (&new_hash, &checked_hash) {
            (Some(hash), Some(replaces)) => Some(NewPassword {
                hash,
                replaces,
                keep_session: &session,
            }),
            _ => None,
        };
        let updated = self
            .store
            .update(
                &id,
                display_name.as_deref(),
                password,
                platform::now_unix_ms(),
            )
            .await?
            .ok_or_else(|| gone(&id))?;
        for ended in &updated.ended {
            self.revocations.insert(
                Revocations::session_key(&ended.id),
                ended.expires_at_ms.div_euclid(1000) + 1,
            );
        }
        if new_hash.is_some() {
            self.outbox_wake.notify_one();
            tracing::info!(
                user_id = %id,
                ended_sessions = updated.ended.len(),
                "password changed; the account's other sessions ended"
            );
        }
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(to_proto(updated.user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let id = owner(&request, &request.get_ref().id)?;
        let now = platform::now_unix_ms();
        // Every token of the account may still be valid this long.
        let until = now + self.token_ttl.as_millis() as i64 + 1_000;
        if !self.store.delete(&id, until, now).await? {
            return Err(gone(&id));
        }
        self.revocations
            .insert(Revocations::user_key(&id), until / 1000 + 1);
        self.outbox_wake.notify_one();
        tracing::info!(user_id = %id, "account deleted; its tokens ended, its ratings queued for deletion");
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn sign_out(
        &self,
        request: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let me = caller(&request)?;
        let until = me.expires_at.saturating_mul(1000);
        self.store
            .sign_out(&me.session_id, until, platform::now_unix_ms())
            .await?;
        self.revocations
            .insert(Revocations::session_key(&me.session_id), me.expires_at);
        self.outbox_wake.notify_one();
        tracing::info!(user_id = %me.user_id, "signed out");
        Ok(Response::new(pb::SignOutResponse {}))
    }
}
