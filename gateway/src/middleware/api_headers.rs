//! The API's security headers, on every answer under `/api/` (errors, shed and timed-out requests
//! included, which is why it is a layer of the whole stack, not of the API's router):
//! `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on the routes that answer
//! with personal data (accounts, sessions and their tokens, the caller's own ratings and picks).
//! The catalogue stays cacheable.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::http::{HeaderValue, header};

use crate::error::is_api_path;

/// What a path's answers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not the API: untouched (the pages set their own headers).
    Other,
    /// Public API data: `nosniff`.
    Public,
    /// Personal data: `nosniff` and `no-store`.
    Personal,
}

/// Path prefixes whose answers hold personal data: each is the whole path or a path under it.
const PERSONAL: [&str; 3] = ["/api/v1/users", "/api/v1/sessions", "/api/v1/me"];

impl Kind {
    fn of(path: &str) -> Self {
        if !is_api_path(path) {
            return Self::Other;
        }
        let personal = PERSONAL.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        if personal {
            Self::Personal
        } else {
            Self::Public
        }
    }
}

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiHeadersLayer;

impl<S> tower::Layer<S> for ApiHeadersLayer {
    type Service = ApiHeaders<S>;
    fn layer(&self, inner: S) -> ApiHeaders<S> {
        ApiHeaders(inner)
    }
}

/// See [`ApiHeadersLayer`].
#[derive(Clone)]
pub struct ApiHeaders<S>(S);

impl<S, B, ResB> tower::Service<http::Request<B>> for ApiHeaders<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = ApiHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        ApiHeadersFuture {
            kind: Kind::of(req.uri().path()),
            inner: self.0.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with the headers its path calls for.
    pub struct ApiHeadersFuture<F> {
        #[pin]
        inner: F,
        kind: Kind,
    }
}

impl<F, E, ResB> Future for ApiHeadersFuture<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let Ok(res) = &mut result
            && *this.kind != Kind::Other
        {
            let h = res.headers_mut();
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if *this.kind == Kind::Personal {
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_sessions_and_the_callers_own_data_are_personal_the_catalogue_is_not() {
        for path in [
            "/api/v1/users",
            "/api/v1/users/0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61",
            "/api/v1/sessions",
            "/api/v1/sessions/current",
            "/api/v1/me/ratings",
            "/api/v1/me/ratings/7",
            "/api/v1/me/recommendations",
        ] {
            assert_eq!(Kind::of(path), Kind::Personal, "{path}");
        }
        for path in [
            "/api/v1/books",
            "/api/v1/books/7/similar",
            "/api/v1/recommendations/popular",
            "/api/v1/ratings/stream",
            "/api/v1/openapi.json",
            "/api/v1/usersx",
            "/api",
        ] {
            assert_eq!(Kind::of(path), Kind::Public, "{path}");
        }
        for path in ["/", "/books/7", "/static/site.css", "/apix"] {
            assert_eq!(Kind::of(path), Kind::Other, "{path}");
        }
    }
}
