//! Accounts: the users service's calls as the gateway uses them, answering the gateway's model
//! types.

use protos::users::v1::{self as us, users_service_client::UsersServiceClient};

use super::{Bearer, Upstream, client::Client};
use crate::{
    error::ApiError,
    model::{Session, User},
};

impl From<us::User> for User {
    fn from(u: us::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            create_time_unix_ms: u.create_time_unix_ms,
            update_time_unix_ms: u.update_time_unix_ms,
        }
    }
}

/// The users service for one request.
pub type Users = Client<UsersServiceClient<Upstream>>;

impl Users {
    /// Creates an account.
    pub async fn create_user(
        &self,
        email: String,
        display_name: String,
        password: String,
    ) -> Result<User, ApiError> {
        let message = us::CreateUserRequest {
            email,
            display_name,
            password,
        };
        self.call(
            message,
            None,
            |mut c, r| async move { c.create_user(r).await },
        )
        .await?
        .user
        .map(User::from)
        .ok_or_else(|| self.missing("user"))
    }

    /// The account `id`, as its owner (`auth`) may read it.
    pub async fn get_user(&self, auth: Option<&Bearer>, id: String) -> Result<User, ApiError> {
        self.call(us::GetUserRequest { id }, auth, |mut c, r| async move {
            c.get_user(r).await
        })
        .await?
        .user
        .map(User::from)
        .ok_or_else(|| self.missing("user"))
    }

    /// Changes the display name and/or password of the account `id` (a new password needs
    /// the current one, and ends every other session of the account).
    pub async fn update_user(
        &self,
        auth: Option<&Bearer>,
        id: String,
        display_name: Option<String>,
        password: Option<String>,
        current_password: Option<String>,
    ) -> Result<User, ApiError> {
        let message = us::UpdateUserRequest {
            id,
            display_name,
            password,
            current_password,
        };
        self.call(
            message,
            auth,
            |mut c, r| async move { c.update_user(r).await },
        )
        .await?
        .user
        .map(User::from)
        .ok_or_else(|| self.missing("user"))
    }

    /// Deletes the account `id`.
    pub async fn delete_user(&self, auth: Option<&Bearer>, id: String) -> Result<(), ApiError> {
        self.call(us::DeleteUserRequest { id }, auth, |mut c, r| async move {
            c.delete_user(r).await
        })
        .await
        .map(drop)
    }

    /// Email and password for a session.
    pub async fn sign_in(&self, email: String, password: String) -> Result<Session, ApiError> {
        let r = self
            .call(
                us::SignInRequest { email, password },
                None,
                |mut c, r| async move { c.sign_in(r).await },
            )
            .await?;
        let user = r.user.ok_or_else(|| self.missing("user"))?;
        Ok(Session {
            access_token: r.access_token,
            expires_in: r.expires_in_seconds,
            user: user.into(),
        })
    }

    /// Ends the session of `auth`: its token is refused from now on.
    pub async fn sign_out(&self, auth: Option<&Bearer>) -> Result<(), ApiError> {
        self.call(us::SignOutRequest {}, auth, |mut c, r| async move {
            c.sign_out(r).await
        })
        .await
        .map(drop)
    }
}
