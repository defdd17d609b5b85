//! The replicas' `WatchRatings` streams: each event's arrival per replica, and each replica's
//! counters (CPU, changes applied), read before and after a phase.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use protos::recommendations::v1::{
    RatingEventKind, WatchRatingsRequest,
    recommendations_service_client::RecommendationsServiceClient,
};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::{
    common::Error,
    procs::{Proc, cpu_seconds, get_text, metric},
};

pub(crate) const REPLICAS: usize = 3;
/// Events kept per stream (far above what the default run makes).
const MAX_EVENTS: usize = 1_000_000;

/// What identifies a rating on the streams within a run: (book_id, stars, update_time_unix_ms).
/// Book ids are cycled through the catalog, so a book is rated again only after every other one.
pub(crate) type Key = (i64, i32, i64);

/// What one replica's stream has delivered: each event's key and arrival.
#[derive(Default)]
pub(crate) struct Feed {
    pub(crate) events: Vec<(Key, Instant)>,
    pub(crate) ended: Option<String>,
}

/// A replica under test.
pub(crate) struct Replica {
    pub(crate) proc: Proc,
    pub(crate) grpc: SocketAddr,
    pub(crate) feed: Arc<Mutex<Feed>>,
}

/// Per-replica counters read at a phase's edges.
#[derive(Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) cpu: f64,
    pub(crate) applied: f64,
    pub(crate) delay_sum: f64,
    pub(crate) delay_count: f64,
    pub(crate) writes: f64,
}

impl Counters {
    pub(crate) async fn of(http: &reqwest::Client, r: &Replica) -> Result<Self, Error> {
        let text = get_text(http, &format!("http://{}/metrics", r.proc.admin)).await?;
        Ok(Self {
            cpu: cpu_seconds(r.proc.pid()),
            applied: metric(&text, "recommendations_log_applied_total", &[]),
            delay_sum: metric(&text, "recommendations_log_apply_delay_seconds_sum", &[]),
            delay_count: metric(&text, "recommendations_log_apply_delay_seconds_count", &[]),
            writes: metric(
                &text,
                "grpc_server_handled_total",
                &["grpc_method=\"RateBook\""],
            ),
        })
    }

    pub(crate) fn minus(self, before: Self) -> Self {
        Self {
            cpu: self.cpu - before.cpu,
            applied: self.applied - before.applied,
            delay_sum: self.delay_sum - before.delay_sum,
            delay_count: self.delay_count - before.delay_count,
            writes: self.writes - before.writes,
        }
    }
}

/// Opens a replica's `WatchRatings` (every book) and records each event's arrival until the
/// stream ends or the task is aborted.
pub(crate) async fn watch(replica: &Replica, tasks: &mut JoinSet<()>) -> Result<(), Error> {
    let channel = Channel::from_shared(format!("http://{}", replica.grpc))?
        .connect()
        .await?;
    let mut stream = RecommendationsServiceClient::new(channel)
        .watch_ratings(WatchRatingsRequest { book_id: 0 })
        .await?
        .into_inner();
    let feed = replica.feed.clone();
    tasks.spawn(async move {
        loop {
            let next = stream.message().await;
            let at = Instant::now();
            let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
            match next {
                Ok(Some(event)) => {
                    if event.kind == RatingEventKind::Rated as i32
                        && let Some(r) = event.rating
                        && feed.events.len() < MAX_EVENTS
                    {
                        feed.events
                            .push(((r.book_id, r.stars, r.update_time_unix_ms), at));
                    }
                }
                Ok(None) => {
                    feed.ended = Some("the stream ended".into());
                    return;
                }
                Err(status) => {
                    feed.ended = Some(format!("the stream failed: {status}"));
                    return;
                }
            }
        }
    });
    Ok(())
}

pub(crate) async fn counters(
    http: &reqwest::Client,
    replicas: &[Replica],
) -> Result<Vec<Counters>, Error> {
    let mut v = Vec::with_capacity(replicas.len());
    for r in replicas {
        v.push(Counters::of(http, r).await?);
    }
    Ok(v)
}
