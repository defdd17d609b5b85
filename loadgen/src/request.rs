//! What every request loadgen sends carries or is read for: its random choices (one generator
//! per task, from the run's seed), a W3C traceparent, percent-encoded query values, and the
//! detail of a problem answer. Shared by the shoppers and the seeder.

use serde_json::Value;
use workload::SplitMix64;

/// Per-request choices: a fresh generator for each task, from the run's seed.
pub fn rng_for(seed: u64, stream: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64();
    r
}

/// A random seed from the operating system.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A clock-based seed is good enough when the OS has no randomness to give.
    if getrandom::getrandom(&mut b).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
    }
    u64::from_le_bytes(b)
}

/// A W3C `traceparent` (version 00, random trace and span ids, written by the platform's own
/// writer) and its trace id.
pub fn traceparent(rng: &mut SplitMix64, sampled: bool) -> (http::HeaderValue, String) {
    let (a, b) = (rng.next_u64() | 1, rng.next_u64());
    let ids = platform::telemetry::context::TraceIds {
        trace_id: u128::from(a) << 64 | u128::from(b),
        span_id: rng.next_u64() | 1,
        flags: u8::from(sampled),
    };
    (
        platform::telemetry::context::traceparent(ids),
        format!("{:032x}", ids.trace_id),
    )
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The detail of a problem document, or the start of the body.
pub fn detail_of(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned());
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_w3c_shaped() {
        let mut r = SplitMix64::new(3);
        let (tp, id) = traceparent(&mut r, true);
        let parts: Vec<&str> = tp.to_str().unwrap().split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], id);
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_ne!(parts[1], "0".repeat(32));
        assert!(
            traceparent(&mut r, false)
                .0
                .to_str()
                .unwrap()
                .ends_with("-00")
        );
    }

    #[test]
    fn encoding_and_details() {
        assert_eq!(encode("the hobbit&x=1"), "the%20hobbit%26x%3D1");
        assert_eq!(
            detail_of(
                br#"{"type":"about:blank","detail":"the recommendations service is unavailable"}"#
            ),
            "the recommendations service is unavailable"
        );
        assert_eq!(detail_of(b"plain"), "plain");
    }
}
