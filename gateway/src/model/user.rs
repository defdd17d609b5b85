//! Accounts and their sessions, as the users service answers them.

/// An account (never with its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub create_time_unix_ms: i64,
    pub update_time_unix_ms: i64,
}

/// A signed-in session: the bearer token and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_token: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub user: User,
}
