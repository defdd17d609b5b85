//! The HTTP middleware of the public router, each layer in a file of its own; `router.rs`
//! stacks them outermost-first.

mod access_log;
mod api_headers;
mod read_body;
mod request_id;
mod trace;

pub(crate) use self::read_body::BodyTurn;
pub use self::{
    access_log::AccessLogLayer,
    api_headers::{ApiHeaders, ApiHeadersFuture, ApiHeadersLayer},
    read_body::{ReadBody, ReadBodyLayer},
    request_id::RequestIds,
    trace::{http_span, record_status},
};
