//! Closed-loop load and its tally: what every fault test sends while the fault happens, and the
//! check that nothing was lost or answered wrongly.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Client;

/// The outcome of every request a [`Load`] sent.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    /// Non-2xx answers: (status, url).
    pub(crate) bad: Vec<(u16, String)>,
    /// Requests that got no answer at all.
    pub(crate) lost: Vec<String>,
}

/// Closed-loop load: `workers` tasks each sending the next URL of `urls` as soon as the previous
/// answered, until stopped, at most `max` requests each and 60 s in all.
pub(crate) struct Load {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    pub(crate) fn start(client: Client, urls: Vec<String>, workers: usize, max: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let urls = Arc::new(urls);
        let next = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (client, urls, next, stop) =
                    (client.clone(), urls.clone(), next.clone(), stop.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut t = Tally::default();
                    while !stop.load(Ordering::SeqCst)
                        && t.sent < max
                        && started.elapsed() < Duration::from_secs(60)
                    {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize % urls.len();
                        let url = &urls[i];
                        t.sent += 1;
                        match client
                            .get(url)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                t.ok += 1;
                            }
                            Ok(r) => t.bad.push((r.status().as_u16(), url.clone())),
                            Err(e) => t.lost.push(format!("{url}: {e}")),
                        }
                    }
                    t
                })
            })
            .collect();
        Load { stop, tasks }
    }

    pub(crate) async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.await_all().await
    }
}

pub(crate) fn assert_clean(what: &str, t: &Tally) {
    println!(
        "{what}: {} requests, {} ok, {} non-2xx, {} unanswered",
        t.sent,
        t.ok,
        t.bad.len(),
        t.lost.len()
    );
    assert!(t.sent > 0, "{what}: no traffic");
    assert!(
        t.bad.is_empty() && t.lost.is_empty(),
        "{what}: failures {:?} {:?}",
        &t.bad[..t.bad.len().min(5)],
        &t.lost[..t.lost.len().min(5)]
    );
}

impl Load {
    /// Waits until every worker sent its `max` requests.
    pub(crate) async fn await_all(self) -> Tally {
        let mut all = Tally::default();
        for t in self.tasks {
            let t = t.await.unwrap();
            all.sent += t.sent;
            all.ok += t.ok;
            all.bad.extend(t.bad);
            all.lost.extend(t.lost);
        }
        all
    }
}
