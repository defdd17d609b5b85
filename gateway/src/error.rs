//! The gateway's one error type: every failure becomes an RFC 9457 problem (`application/problem+json`),
//! gRPC statuses mapped to HTTP the way grpc-gateway maps them. Server-side detail is logged,
//! never echoed.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::Code;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, naming the field or resource when the caller is at fault.
    pub detail: String,
    /// The gRPC status code behind the problem, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_code: Option<String>,
}

/// An error answered as a problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub grpc_code: Option<Code>,
    /// `Retry-After` in seconds for 429 and 503 (1 when not given).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            grpc_code: None,
            retry_after_secs: None,
        }
    }

    /// Too many attempts from one client; the next is allowed after `wait`.
    pub fn too_many(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, detail);
        e.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// Maps an upstream's status; 5xx detail goes to the log, a generic sentence to the caller.
    pub fn from_status(upstream: &str, status: &tonic::Status) -> Self {
        // tonic reports the expiry of a call's own deadline as CANCELLED "Timeout expired":
        // for the caller that is a timeout (504), not a cancelled request (499).
        let code = match status.code() {
            Code::Cancelled if status.message() == "Timeout expired" => Code::DeadlineExceeded,
            c => c,
        };
        let http = http_status(code);
        let detail = if http.is_server_error() {
            tracing::warn!(upstream, code = ?status.code(), message = status.message(), "upstream call failed");
            match code {
                Code::Unavailable => {
                    format!("the {upstream} service is unavailable; try again shortly")
                }
                Code::DeadlineExceeded => format!("the {upstream} service did not answer in time"),
                Code::Unimplemented => format!("the {upstream} service does not support this"),
                _ => "internal error".to_owned(),
            }
        } else {
            status.message().to_owned()
        };
        Self {
            status: http,
            detail,
            grpc_code: Some(code),
            retry_after_secs: None,
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            grpc_code: self.grpc_code.map(code_name),
        }
    }
}

/// The HTTP status grpc-gateway gives each gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Shed load and absent replicas are short-lived: tell clients when to come back.
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_secs.unwrap_or(1)),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            _ => r.status(),
        };
        Self::new(status, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        let status = match &r {
            PathRejection::FailedToDeserializePathParams(_) => StatusCode::BAD_REQUEST,
            _ => r.status(),
        };
        Self::new(status, r.body_text())
    }
}

/// What a caught panic answers: a 500 problem document; the panic's message goes to the log only.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// Whether `path` belongs to the API (answered with problem documents, never pages).
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_as_grpc_gateway_maps_them() {
        let cases = [
            (Code::NotFound, 404),
            (Code::InvalidArgument, 400),
            (Code::AlreadyExists, 409),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::FailedPrecondition, 400),
            (Code::Internal, 500),
            (Code::Cancelled, 499),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn a_client_error_keeps_the_services_message() {
        let e = ApiError::from_status("marketplace", &tonic::Status::not_found("book 7 not found"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.problem().detail, "book 7 not found");
        assert_eq!(e.problem().grpc_code.as_deref(), Some("NotFound"));
    }

    #[test]
    fn an_expired_call_deadline_is_a_gateway_timeout_not_a_cancellation() {
        let e = ApiError::from_status("marketplace", &tonic::Status::cancelled("Timeout expired"));
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.grpc_code, Some(Code::DeadlineExceeded));
        let cancelled =
            ApiError::from_status("marketplace", &tonic::Status::cancelled("client went away"));
        assert_eq!(cancelled.status.as_u16(), 499);
    }

    #[test]
    fn a_server_error_hides_its_detail() {
        let e = ApiError::from_status(
            "users",
            &tonic::Status::internal("connection to 10.0.0.7:5432 refused"),
        );
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.problem().detail.contains("10.0.0.7"));
        let e = ApiError::from_status("users", &tonic::Status::unavailable("tcp connect error"));
        assert_eq!(
            e.problem().detail,
            "the users service is unavailable; try again shortly"
        );
    }

    #[test]
    fn problems_are_served_as_problem_json() {
        let r = ApiError::bad_request("page_size must be between 1 and 100").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
