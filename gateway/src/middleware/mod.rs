//! The HTTP middleware of the public router, each layer in a file of its own; `router.rs`
//! stacks them outermost-first.

mod access_log;
mod api_headers;
mod request_id;
mod trace;

pub use self::{
    access_log::AccessLogLayer,
    api_headers::{ApiHeaders, ApiHeadersFuture, ApiHeadersLayer},
    request_id::RequestIds,
    trace::{http_span, record_status},
};
