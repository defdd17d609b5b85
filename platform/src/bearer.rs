//! Bearer credentials on the wire, read and written in one place: `authorization: Bearer <token>`
//! in HTTP headers and gRPC metadata alike.

use tonic::metadata::{Ascii, MetadataMap, MetadataValue};

/// The header (and metadata key) that carries a token.
pub const AUTHORIZATION: &str = "authorization";

/// The token in an `authorization` value: what follows `Bearer ` (or `bearer `), trimmed;
/// `None` for any other scheme.
pub fn token_of(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
}

/// A bearer token as the caller sent it, checked to be a legal header value, ready to be sent on
/// as `authorization` metadata.
#[derive(Clone, Debug)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// `None` for anything that cannot be a token (the services would refuse it anyway).
    pub fn parse(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        format!("Bearer {token}").parse().ok().map(Self)
    }

    /// The token of an `authorization` value, when it is a bearer token that can be sent on.
    pub fn from_authorization(value: &str) -> Option<Self> {
        token_of(value).and_then(Self::parse)
    }

    /// The `authorization` header value, for a call sent on as HTTP.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(self.0.as_encoded_bytes())
            .expect("a parsed token is a legal header value")
    }

    /// Sends this token with a gRPC call.
    pub fn insert_into(&self, metadata: &mut MetadataMap) {
        metadata.insert(AUTHORIZATION, self.0.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_spaces_or_control_characters_is_not_forwarded() {
        assert!(Bearer::parse("abc.def").is_some());
        assert!(Bearer::parse("abc def").is_none());
        assert!(Bearer::parse("abc\ndef").is_none());
        assert!(Bearer::parse("").is_none());
    }

    #[test]
    fn the_token_is_read_after_either_spelling_of_the_scheme_and_only_there() {
        assert_eq!(token_of("Bearer abc"), Some("abc"));
        assert_eq!(token_of("bearer  abc "), Some("abc"));
        assert_eq!(token_of("Basic abc"), None);
        assert_eq!(token_of("Bearerabc"), None);
    }

    #[test]
    fn a_token_is_sent_as_bearer_metadata() {
        let mut metadata = MetadataMap::new();
        Bearer::from_authorization("bearer t0k3n")
            .unwrap()
            .insert_into(&mut metadata);
        assert_eq!(metadata.get(AUTHORIZATION).unwrap(), "Bearer t0k3n");
    }
}
