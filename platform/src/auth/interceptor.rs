//! The services' side of a call's token: the interceptor that turns it into a [`Caller`].

use tonic::{Request, Status};

use super::{Revocations, TokenError, TokenVerifier};

/// The authenticated caller, put into a request's extensions by [`AuthInterceptor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    /// The session of the token (empty for no session).
    pub session_id: String,
    /// When the token expires, seconds since the epoch.
    pub expires_at: i64,
}

/// Checks `authorization: Bearer …` metadata when present: a bad, expired or ended token is
/// UNAUTHENTICATED at once; a good one becomes a [`Caller`]; none at all leaves the call
/// anonymous, and the handlers that need a caller ask for it with [`caller`].
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    keys: TokenVerifier,
    revocations: Revocations,
}

impl AuthInterceptor {
    pub fn new(keys: TokenVerifier) -> Self {
        Self::with_revocations(keys, Revocations::default())
    }

    /// An interceptor that also refuses the tokens in `revocations`.
    pub fn with_revocations(keys: TokenVerifier, revocations: Revocations) -> Self {
        Self { keys, revocations }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = req.metadata().get(crate::bearer::AUTHORIZATION) else {
            return Ok(req);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(crate::bearer::token_of)
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let claims = self
            .keys
            .verify(token)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        if self.revocations.ends(&claims) {
            return Err(Status::unauthenticated(TokenError::Revoked.to_string()));
        }
        req.extensions_mut().insert(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            expires_at: claims.exp,
        });
        Ok(req)
    }
}

/// The caller of a call that needs one; UNAUTHENTICATED when it came without a token.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("this call needs a bearer token: sign in first"))
}
