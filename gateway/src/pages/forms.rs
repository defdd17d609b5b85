//! What a page's forms carry to pass the CSRF guard ([`super::csrf`]): the signed token in a
//! hidden field, handed to each page by the guard as a [`FormGuard`].

use axum::{extract::FromRequestParts, http::request::Parts};
use maud::{Markup, html};

/// The hidden field every state-changing form carries.
pub const FIELD: &str = "csrf";

/// What a page's forms need: the token for their hidden field, and whether cookies are set
/// `Secure` (served over TLS).
#[derive(Clone, Debug, Default)]
pub struct FormGuard {
    pub token: String,
    pub secure: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for FormGuard {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<FormGuard>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The hidden field that proves a form came from this site's own page (see `csrf`).
pub fn csrf_field(forms: &FormGuard) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(forms.token); }
}
