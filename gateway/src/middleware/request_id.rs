//! Request ids, echoed back in `x-request-id`.

use tower_http::request_id::{MakeRequestId, RequestId};

/// Request ids: a random per-process prefix and a counter (`3f9a1c0e2b7d4a55-42`), unique without
/// a system call for randomness on every request (as a v4 UUID per request would need).
#[derive(Clone)]
pub struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            prefix: format!("{:016x}", platform::random_below(u64::MAX)).into(),
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        use std::fmt::Write;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Sized exactly, so the header value takes the string's buffer as it is: no second
        // allocation or copy.
        let digits = n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let mut id = String::with_capacity(self.prefix.len() + 1 + digits);
        let _ = write!(id, "{}-{n}", self.prefix);
        http::HeaderValue::try_from(id).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_count_up_after_the_process_prefix() {
        let mut ids = RequestIds::default();
        let req = http::Request::new(());
        let prefix = ids.prefix.clone();
        let mut seen = Vec::new();
        for _ in 0..12 {
            let id = ids.make_request_id(&req).unwrap();
            seen.push(id.header_value().to_str().unwrap().to_owned());
        }
        assert_eq!(prefix.len(), 16);
        assert_eq!(seen[0], format!("{prefix}-0"));
        assert_eq!(seen[9], format!("{prefix}-9"));
        assert_eq!(seen[10], format!("{prefix}-10"));
        // A clone (one per connection) draws from the same counter.
        let mut other = ids.clone();
        let next = other.make_request_id(&req).unwrap();
        assert_eq!(next.header_value(), &format!("{prefix}-12"));
    }
}
