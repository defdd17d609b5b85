//! The API's extractors: JSON bodies, query strings, paths and the bearer token, each refusing
//! bad input with a problem document (and checked against [`crate::contract`]), plus the serde
//! field readers the request types share.

use std::net::IpAddr;

use axum::{
    extract::{FromRequest, FromRequestParts},
    http::{StatusCode, header, request::Parts},
};
use serde::Deserialize;

use crate::{client_addr, contract::Validate, error::ApiError, state::AppState, upstream::Bearer};

/// JSON body extractor whose rejections are problem documents. The body must be sent as
/// `application/json` (or a `+json` type): anything else, a form's type included, is a 415
/// before the body is read. A web page can make a browser send a form or `text/plain` to
/// another site without asking (a CORS "simple" request), but never `application/json`.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Validate, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
        if !json {
            return Err(unsupported_media_type());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        value.validate()?;
        Ok(Self(value))
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send a JSON body with `Content-Type: application/json`",
    )
}

/// Query-string extractor whose rejections are problem documents; the values are checked
/// against the contract's constraints too.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned + Validate, S: Send + Sync> FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        value.validate()?;
        Ok(Self(value))
    }
}

/// Path extractor whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The caller's `authorization: Bearer …` header, if any. Cookies are not accepted here: the
/// API is for programs, and a cookie-authenticated API would invite cross-site requests.
pub struct ApiAuth(pub Option<Bearer>);

impl<S: Send + Sync> FromRequestParts<S> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(Bearer::from_authorization)
            .map(|b| Self(Some(b)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "authorization must be `Bearer <token>`",
                )
            })
    }
}

/// The client's address (see [`crate::client_addr`]); unspecified when served without connection
/// info (in-process tests).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr::of_request(
            &parts.headers,
            &parts.extensions,
            s.trust_forwarded_for,
        )))
    }
}

/// `Option<T>` that is absent or a value, never `null`: the API takes no nulls
/// (`#[serde(default, deserialize_with = "present")]`).
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An `i32` written as any JSON number with an integral value (`3` or `3.0`): JSON Schema's
/// `integer` is a mathematical integer, and clients that only have floats send `3.0`.
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).map_err(|_| D::Error::custom(format!("{i} is out of range")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) => {
            Ok(f as i32)
        }
        _ => Err(D::Error::custom(format!("expected an integer, got {n}"))),
    }
}
