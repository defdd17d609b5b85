//! The logs: they carry the trace without an exporter, and no password or token reaches them.

use std::{collections::HashSet, time::Duration};

use serde_json::json;
use tests::{Suite, unique, wait_until};

use crate::collector::random_hex;

/// The JSON log lines of `name` that carry `trace_id`.
pub(crate) fn trace_lines(s: &Suite, name: &str, trace_id: &str) -> Vec<serde_json::Value> {
    s.log(name)
        .lines()
        .filter(|l| l.contains(trace_id))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect()
}

/// Without an exporter no OpenTelemetry span is built, but the trace still travels: every
/// process's log lines for one page view carry the caller's trace id, each with a span id of
/// its own, and the services' calls continue the gateway's trace rather than starting new ones.
#[tokio::test]
async fn without_an_exporter_logs_still_carry_one_trace_across_processes() {
    if Suite::is_external() {
        platform::database::testing::note_skip("tracing: reads the logs of a suite it started");
        return;
    }
    // Every page view asks for the popular panel and the grid (each otherwise kept a second).
    let s = Suite::start_with(&[("POPULAR_CACHE_MS", "0"), ("GRID_CACHE_MS", "0")]).await;
    let trace_id = random_hex(16);
    let parent = random_hex(8);
    let page = reqwest::Client::new()
        .get(format!("{}/", s.base_url))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let mut span_ids = HashSet::new();
    for name in ["gateway", "marketplace", "recommendations"] {
        wait_until(
            &format!("{name} logs a line with trace {trace_id}"),
            Duration::from_secs(5),
            || async { !trace_lines(&s, name, &trace_id).is_empty() },
        )
        .await;
        for l in &trace_lines(&s, name, &trace_id) {
            assert_eq!(l["trace_id"], trace_id.as_str(), "{l}");
            let span = l["span_id"].as_str().unwrap_or_default();
            assert!(span.len() == 16 && span != parent, "{l}");
            span_ids.insert(span.to_owned());
        }
    }
    assert!(
        span_ids.len() >= 3,
        "one span per process at least: {span_ids:?}"
    );
}

#[tokio::test]
async fn no_password_or_token_reaches_a_log() {
    if Suite::is_external() {
        platform::database::testing::note_skip("tracing: reads the logs of a suite it started");
        return;
    }
    let s = Suite::start().await;
    let c = reqwest::Client::new();
    let email = format!("quiet-{}@example.org", unique());
    let password = format!("Pa55-{}", unique());
    let signed_up = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "display_name": "Q", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_up.status(),
        201,
        "{}",
        signed_up.text().await.unwrap()
    );
    let token = s.sign_in(&c, &email, &password).await;
    c.get(format!("{}/api/v1/me/ratings", s.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    c.post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    for name in ["gateway", "users", "recommendations"] {
        let log = s.log(name);
        assert!(
            log.contains("request answered") || log.contains("rpc handled"),
            "{name} logs requests"
        );
        assert!(!log.contains(&password), "{name} logged a password");
        assert!(!log.contains("wrong-password"), "{name} logged a password");
        assert!(!log.contains(&token), "{name} logged a token");
    }
}
