//! Driving ratings through the gateway in an open loop: readers signed up first, then each
//! phase's ratings sent at its rate and acknowledged (or not).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    common::Error,
    streams::{Counters, Key, REPLICAS, Replica},
};

/// Ratings in flight at once; beyond it a scheduled rating is counted as not sent.
pub(crate) const MAX_IN_FLIGHT: usize = 2_000;

/// A rating the gateway acknowledged.
pub(crate) struct Acked {
    pub(crate) key: Key,
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
}

/// What one phase saw.
pub(crate) struct Phase {
    pub(crate) rate: u32,
    pub(crate) planned: u64,
    pub(crate) not_sent: u64,
    pub(crate) failed: u64,
    pub(crate) first_failures: Vec<String>,
    pub(crate) acked: Vec<Acked>,
    pub(crate) send_seconds: f64,
    pub(crate) latest_start: Duration,
    /// Per acknowledged rating: its arrival on each replica, minus its send.
    pub(crate) latencies: Vec<[Option<Duration>; REPLICAS]>,
    pub(crate) counters: Vec<Counters>,
}

impl Phase {
    pub(crate) fn missing(&self) -> usize {
        self.latencies
            .iter()
            .filter(|l| l.iter().any(Option::is_none))
            .count()
    }

    /// Time to every replica, of the ratings that reached them all.
    pub(crate) fn to_every(&self) -> Vec<Duration> {
        self.latencies
            .iter()
            .filter_map(|l| {
                l.iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()?
                    .into_iter()
                    .max()
            })
            .collect()
    }

    pub(crate) fn to_replica(&self, r: usize) -> Vec<Duration> {
        self.latencies.iter().filter_map(|l| l[r]).collect()
    }

    pub(crate) fn acks(&self) -> Vec<Duration> {
        self.acked.iter().map(|a| a.answered - a.sent).collect()
    }
}

/// Signs up `n` readers through the gateway (a few at a time: sign-up and sign-in each hash a
/// password); their bearer tokens.
pub(crate) async fn sign_up(
    http: &reqwest::Client,
    api: &str,
    n: usize,
) -> Result<Vec<String>, Error> {
    let gate = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (http, api, gate) = (http.clone(), api.to_owned(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let email = format!("bench-{i}@example.org");
            let password = format!("bench-password-{i}");
            let r = http
                .post(format!("{api}/users"))
                .json(&serde_json::json!({
                    "email": email, "display_name": format!("Bench {i}"), "password": password
                }))
                .send()
                .await?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("sign-up answered {}: {}", r.status(), r.text().await?).into());
            }
            let r = http
                .post(format!("{api}/sessions"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("sign-in answered {}: {}", r.status(), r.text().await?).into());
            }
            let body: serde_json::Value = r.json().await?;
            body["access_token"]
                .as_str()
                .map(|t| (i, t.to_owned()))
                .ok_or_else(|| Error::from("no access_token in the session"))
        });
    }
    let mut tokens = vec![String::new(); n];
    while let Some(done) = set.join_next().await {
        let (i, token) = done??;
        tokens[i] = token;
    }
    Ok(tokens)
}

/// Everything a phase needs to drive ratings.
pub(crate) struct Driver {
    pub(crate) http: reqwest::Client,
    pub(crate) api: String,
    pub(crate) tokens: Arc<Vec<String>>,
    pub(crate) books: Arc<Vec<i64>>,
    /// Ratings scheduled so far in the run (the next one's sequence number).
    pub(crate) seq: u64,
}

pub(crate) enum Outcome {
    Acked(Acked),
    Failed(String),
}

impl Driver {
    /// Sends `rate`/s for `seconds` in an open loop: each PUT starts at its scheduled instant,
    /// whether or not the earlier ones have been answered.
    pub(crate) async fn drive(
        &mut self,
        rate: u32,
        seconds: u64,
    ) -> (Vec<Outcome>, u64, f64, Duration) {
        let planned = u64::from(rate) * seconds;
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut set = JoinSet::new();
        let mut not_sent = 0;
        let mut latest_start = Duration::ZERO;
        let start = Instant::now() + Duration::from_millis(10);
        for i in 0..planned {
            let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(at.into()).await;
            latest_start = latest_start.max(at.elapsed());
            let seq = self.seq;
            self.seq += 1;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                not_sent += 1;
                continue;
            };
            let token = self.tokens[(seq % self.tokens.len() as u64) as usize].clone();
            let book = self.books[(seq % self.books.len() as u64) as usize];
            let stars = (seq % 5) as i32 + 1;
            let request = self
                .http
                .put(format!("{}/me/ratings/{book}", self.api))
                .bearer_auth(token)
                .json(&serde_json::json!({ "stars": stars }));
            set.spawn(async move {
                let _permit = permit;
                let sent = Instant::now();
                let answer = match request.send().await {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(format!("PUT book {book}: {e}")),
                };
                let status = answer.status();
                if !status.is_success() {
                    let body = answer.text().await.unwrap_or_default();
                    return Outcome::Failed(format!("PUT book {book}: {status} {body}"));
                }
                match answer.json::<serde_json::Value>().await {
                    Ok(v) => Outcome::Acked(Acked {
                        key: (
                            v["book_id"].as_i64().unwrap_or(-1),
                            v["stars"].as_i64().unwrap_or(-1) as i32,
                            v["update_time_unix_ms"].as_i64().unwrap_or(-1),
                        ),
                        sent,
                        answered: Instant::now(),
                    }),
                    Err(e) => Outcome::Failed(format!("PUT book {book}: body: {e}")),
                }
            });
        }
        let send_seconds = start.elapsed().as_secs_f64();
        let mut outcomes = Vec::with_capacity(planned as usize);
        // Each PUT is bounded by the client's timeout.
        while let Some(done) = set.join_next().await {
            outcomes.push(
                done.unwrap_or_else(|e| Outcome::Failed(format!("a sender task failed: {e}"))),
            );
        }
        (outcomes, not_sent, send_seconds, latest_start)
    }
}

/// Each acknowledged rating's arrival on every replica's stream, minus its send.
pub(crate) fn arrivals(acked: &[Acked], replicas: &[Replica]) -> Vec<[Option<Duration>; REPLICAS]> {
    let mut seen: Vec<HashMap<Key, Instant>> = Vec::with_capacity(REPLICAS);
    for r in replicas {
        let feed = r.feed.lock().unwrap_or_else(|e| e.into_inner());
        let mut first = HashMap::with_capacity(feed.events.len());
        for &(key, at) in &feed.events {
            first.entry(key).or_insert(at);
        }
        seen.push(first);
    }
    acked
        .iter()
        .map(|a| {
            let mut row = [None; REPLICAS];
            for (slot, s) in row.iter_mut().zip(&seen) {
                *slot = s
                    .get(&a.key)
                    .map(|&at| at.saturating_duration_since(a.sent));
            }
            row
        })
        .collect()
}
