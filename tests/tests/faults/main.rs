//! Faults under load, on the real binaries over loopback: replicas killed or drained, the
//! gateway drained, recommendations crashed and restarted, the database cut off and back, writes
//! cut by a crash, bursts beyond the limits. Every loop is bounded in count and time, every test
//! prints the figures it saw (`cargo test -p tests --test faults -- --nocapture`).

mod crashes;
mod database;
mod gateway;
mod load;
mod replicas;

use tests::{Suite, metric};

fn book_urls(s: &Suite, n: i64) -> Vec<String> {
    (1..=n)
        .map(|id| format!("{}/api/v1/books/{id}", s.base_url))
        .collect()
}

async fn ready_replicas(s: &Suite, upstream: &str) -> f64 {
    metric(
        s.admin("gateway").unwrap(),
        "gateway_upstream_ready_replicas",
        &[&format!("upstream=\"{upstream}\"")],
    )
    .await
}

fn skip_external() -> bool {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "faults: signal processes, so they run only against a suite they started",
        );
        return true;
    }
    false
}

const GET_BOOK_OK: &str = "grpc_method=\"GetBook\"";

/// Small helpers on futures of numbers, so waits read as sentences.
trait MapEq {
    fn map_eq(self, want: f64) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = f64>> MapEq for F {
    async fn map_eq(self, want: f64) -> bool {
        self.await == want
    }
}
