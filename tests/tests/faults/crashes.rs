//! Recommendations crashed and restarted: the other routes stay whole, and no acknowledged write
//! is lost, on SQLite and on PostgreSQL.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Client;
use serde_json::{Value, json};
use tests::{Suite, SuiteOptions, unique, wait_until};

use crate::{
    book_urls,
    load::{Load, assert_clean},
    skip_external,
};

#[tokio::test]
async fn recommendations_crash_leaves_other_routes_whole_and_the_section_returns_by_itself() {
    if skip_external() {
        return;
    }
    let mut s = Suite::start().await;
    let c = Client::new();
    let mut independent = book_urls(&s, 50);
    independent.push(format!("{}/api/v1/books?page_size=5", s.base_url));
    independent.push(format!("{}/api/v1/books/search?q=hobbit", s.base_url));
    let api = Load::start(c.clone(), independent, 4, 5_000);
    let pages = Load::start(c.clone(), vec![format!("{}/", s.base_url)], 2, 2_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.signal("recommendations", "KILL").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let home = c
        .get(format!("{}/", s.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !home.contains("Popular now"),
        "the section is left out while it is down"
    );
    s.restart("recommendations").await;
    let back = Instant::now();
    wait_until("the section returns", Duration::from_secs(15), || async {
        c.get(format!("{}/", s.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Popular now")
    })
    .await;
    println!(
        "the recommendations section returned {:?} after the restart",
        back.elapsed()
    );
    assert_clean("independent API routes", &api.finish().await);
    assert_clean("home page", &pages.finish().await);
}

pub(crate) async fn sign_up(s: &Suite, c: &Client) -> String {
    let email = format!("w{}@example.com", unique());
    let r = c
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": email, "password": "correct horse battery", "display_name": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.sign_in(c, &email, "correct horse battery").await
}

/// Writes ratings (each to a new book) from 4 writers while recommendations is SIGKILLed and
/// restarted; every acknowledged rating must be there afterwards with its stars.
pub(crate) async fn no_acknowledged_write_is_lost(db: Option<String>) {
    let mut s = Suite::start_options(SuiteOptions {
        recommendations_db: db,
        ..SuiteOptions::default()
    })
    .await;
    let c = Client::new();
    let token = sign_up(&s, &c).await;
    let acked: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (c, token, acked, stop, base) = (
                c.clone(),
                token.clone(),
                acked.clone(),
                stop.clone(),
                s.base_url.clone(),
            );
            tokio::spawn(async move {
                let (mut tried, mut failed) = (0u32, 0u32);
                for i in 0..2_000i64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let book = 1 + w * 2_000 + i;
                    let stars = 1 + (book % 5);
                    tried += 1;
                    let r = c
                        .put(format!("{base}/api/v1/me/ratings/{book}"))
                        .bearer_auth(&token)
                        .json(&json!({ "stars": stars }))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().push((book, stars))
                        }
                        _ => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (tried, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.signal("recommendations", "KILL").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.restart("recommendations").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut tried, mut failed) = (0, 0);
    for w in writers {
        let (t, f) = w.await.unwrap();
        tried += t;
        failed += f;
    }
    let acked = acked.lock().unwrap().clone();
    let mut stored = std::collections::HashMap::new();
    let mut page_token = String::new();
    for _ in 0..200 {
        let r: Value = c
            .get(format!(
                "{}/api/v1/me/ratings?page_size=100&page_token={page_token}",
                s.base_url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for x in r["ratings"].as_array().unwrap() {
            stored.insert(x["book_id"].as_i64().unwrap(), x["stars"].as_i64().unwrap());
        }
        page_token = r["next_page_token"].as_str().unwrap_or_default().to_owned();
        if page_token.is_empty() {
            break;
        }
    }
    println!(
        "{tried} writes tried, {} acknowledged, {failed} failed while down, {} stored",
        acked.len(),
        stored.len()
    );
    assert!(
        acked.len() > 10,
        "writes were acknowledged before and after the crash"
    );
    let missing: Vec<_> = acked
        .iter()
        .filter(|(b, st)| stored.get(b) != Some(st))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write_on_sqlite() {
    if skip_external() {
        return;
    }
    no_acknowledged_write_is_lost(None).await;
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write_on_postgres() {
    if skip_external() {
        return;
    }
    let Some(pg) = platform::database::testing::postgres_url("writes").await else {
        return;
    };
    no_acknowledged_write_is_lost(Some(pg)).await;
}
