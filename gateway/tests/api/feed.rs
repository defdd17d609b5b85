//! The live feed's events name their books with the title recommendations sends, and ask the
//! marketplace only for an event without one (from a replica older than that field).

use std::time::{Duration, Instant};

use crate::{
    fakes::fake_services,
    helpers::{app, get},
};

#[tokio::test]
async fn feed_events_carry_the_title_recommendations_sends_and_ask_the_catalog_only_without() {
    let (url, calls) = fake_services(true).await;
    let app = app(&url, 2_000);
    let started = Instant::now();
    // The fake feed sends two events and ends, so the whole stream can be read.
    let body = loop {
        let (status, ct, body) = get(&app, "/api/v1/ratings/stream").await;
        if status == 200 {
            assert!(ct.starts_with("text/event-stream"), "{ct}");
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no feed after 10 s ({status}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let events: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{body:?}");
    assert_eq!(events[0]["book_id"], 11);
    assert_eq!(events[0]["title"], "Event title 11", "{body}");
    assert_eq!(events[1]["book_id"], 12);
    assert_eq!(events[1]["title"], "Catalog title 12", "{body}");
    assert_eq!(
        calls.lock().unwrap().get_ids,
        [12],
        "GetBook for book 12 only"
    );
}
