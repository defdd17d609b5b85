//! The `grpc-timeout` header on the wire: the one encoder and the one parser of its value.

use std::time::Duration;

/// The header carrying a call's deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The longest `grpc-timeout` value (8 digits) in the unit that holds it.
pub fn encode_grpc_timeout(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let ns = d.as_nanos();
    for (unit, per) in [
        ("n", 1u128),
        ("u", 1_000),
        ("m", 1_000_000),
        ("S", 1_000_000_000),
        ("M", 60_000_000_000),
    ] {
        let v = ns.div_ceil(per);
        if v <= MAX {
            return format!("{v}{unit}");
        }
    }
    format!("{}H", ns.div_ceil(3_600_000_000_000).min(MAX))
}

/// Parses a `grpc-timeout` header value (`1..=8` digits and a unit of H, M, S, m, u or n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// [`encode_grpc_timeout`] as a header value.
pub fn grpc_timeout_value(d: Duration) -> http::HeaderValue {
    http::HeaderValue::try_from(encode_grpc_timeout(d))
        .expect("digits and a unit letter are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("99u"), Some(Duration::from_micros(99)));
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "12", "1x", "123456789m", "-1m", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_encoded_timeout_parses_back_to_at_least_the_duration() {
        for d in [
            Duration::from_nanos(7),
            Duration::from_micros(1500),
            Duration::from_millis(800),
            Duration::from_secs(5),
            Duration::from_secs(200_000),
        ] {
            let back = parse_grpc_timeout(&encode_grpc_timeout(d)).unwrap();
            assert!(
                back >= d && back - d < d / 1000 + Duration::from_micros(1),
                "{d:?}"
            );
        }
    }
}
