//! The client half: every outgoing call states the time left (`grpc-timeout`) and carries its
//! [`Deadline`] in its extensions, so the layers under it (retries) need not parse the header.

use std::time::Duration;

use tonic::{Request, Status};

use super::{Deadline, GRPC_TIMEOUT, encode_grpc_timeout, wire::grpc_timeout_value};
use crate::bearer::Bearer;

impl Deadline {
    /// A gRPC request carrying the remaining time (`grpc-timeout`), never longer than `cap`
    /// (optional page sections wait less), and the caller's token.
    pub fn call_within<T>(
        &self,
        message: T,
        auth: Option<&Bearer>,
        cap: Duration,
    ) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let left = self.remaining()?.min(cap);
        // Whole milliseconds, rounded down: the header then repeats from call to call (a call
        // made within the same millisecond of its request's budget), so HTTP/2 sends it as an
        // index into its header table instead of encoding it anew, and the service decodes
        // nothing. Under a millisecond it is sent as it is.
        let whole_ms = Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        let sent = if whole_ms.is_zero() { left } else { whole_ms };
        if let Ok(value) = encode_grpc_timeout(sent).parse() {
            request.metadata_mut().insert(GRPC_TIMEOUT, value);
        }
        request.extensions_mut().insert(Deadline::after(sent));
        if let Some(token) = auth {
            token.insert_into(request.metadata_mut());
        }
        Ok(request)
    }
}

/// States `left` in `headers` again: a retry sends what remains, not what the caller first said.
pub fn restate(headers: &mut http::HeaderMap, left: Duration) {
    headers.insert(GRPC_TIMEOUT, grpc_timeout_value(left));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::parse_grpc_timeout;

    #[test]
    fn each_call_carries_the_remaining_time_and_the_token() {
        let d = Deadline::after(Duration::from_secs(2));
        let r = d
            .call_within((), Bearer::parse("t0k3n").as_ref(), Duration::MAX)
            .unwrap();
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer t0k3n");
        let timeout = r.metadata().get("grpc-timeout").unwrap().to_str().unwrap();
        let sent = parse_grpc_timeout(timeout).unwrap();
        // Whole milliseconds, never more than what is left.
        assert_eq!(sent.subsec_nanos() % 1_000_000, 0, "{timeout}");
        assert!(
            sent <= Duration::from_secs(2) && sent > Duration::from_millis(1900),
            "{timeout}"
        );
        // The same deadline travels typed, for the layers under the client.
        let typed = r.extensions().get::<Deadline>().unwrap();
        assert_eq!(typed.budget(), sent);
    }

    #[test]
    fn a_spent_deadline_refuses_to_call() {
        let d = Deadline::after(Duration::ZERO);
        assert_eq!(
            d.call_within((), None, Duration::MAX).unwrap_err().code(),
            tonic::Code::DeadlineExceeded
        );
    }

    #[test]
    fn a_sent_timeout_is_what_tonic_itself_would_write() {
        // tonic's `Request::set_timeout` truncates to the first unit that fits; for the whole
        // milliseconds (and sub-millisecond rests) a call sends, the one encoder agrees.
        for d in [
            Duration::from_millis(1999),
            Duration::from_millis(30),
            Duration::from_micros(750),
            Duration::from_secs(120),
        ] {
            let mut tonic_request = Request::new(());
            tonic_request.set_timeout(d);
            assert_eq!(
                tonic_request.metadata().get(GRPC_TIMEOUT).unwrap(),
                encode_grpc_timeout(d).as_str(),
                "{d:?}"
            );
        }
    }
}
