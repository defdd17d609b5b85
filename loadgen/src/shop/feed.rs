//! The live feed step: open the ratings stream, read it for a while, count its rating events.

use std::time::Instant;

use http::Method;
use http_body_util::BodyExt;
use workload::SplitMix64;

use super::{Done, Shop, failure_text};
use crate::{http::Failure, request::detail_of, stats::Outcome, steps::Step};

impl Shop {
    /// Opens the live feed, reads it for `feed_time`, closes it. Its latency is the time to the
    /// response's headers; the rating events read are counted.
    pub(super) async fn feed(&self, rng: &mut SplitMix64) -> Done {
        let step = Step::Feed;
        let mut req = self
            .http
            .request(Method::GET, "/api/v1/ratings/stream", None, None);
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
        let trace_id = self.trace(&mut req, rng);
        let opened = self.http.open(req, self.timeout).await;
        let mut done = Done {
            step,
            outcome: Outcome::Timeout {
                expected: self.expect.transport,
            },
            answered: Instant::now(),
            trace_id,
            detail: format!("the feed did not open within {:?}", self.timeout),
            feed_events: 0,
            retry_after: None,
        };
        let resp = match opened {
            Err(Failure::Timeout) => return done,
            Err(e) => {
                done.outcome = self.classify_error(&e);
                done.detail = failure_text(&e);
                return done;
            }
            Ok(resp) => resp,
        };
        done.answered = Instant::now();
        let status = resp.status().as_u16();
        done.outcome = self.classify_status(step, status);
        done.detail.clear();
        let mut body = resp.into_body();
        if status >= 300 {
            let whole = tokio::time::timeout(self.timeout, body.collect()).await;
            done.detail = match whole {
                Ok(Ok(b)) => detail_of(&b.to_bytes()),
                _ => String::new(),
            };
            return done;
        }
        let mut pending: Vec<u8> = Vec::new();
        let until = tokio::time::Instant::now() + self.feed_time;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await {
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&chunk);
            while let Some(n) = pending.iter().position(|&b| b == b'\n') {
                if pending[..n].trim_ascii() == b"event: rating" {
                    done.feed_events += 1;
                }
                pending.drain(..=n);
            }
            // A line longer than any event is not an event line; bound the buffer.
            if pending.len() > 64 * 1024 {
                pending.clear();
            }
        }
        done
    }
}
