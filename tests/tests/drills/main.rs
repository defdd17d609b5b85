//! The drills of docs/reliability.md ("Drills: fault injection"), run with the real `loadgen` binary
//! against the real suite: no fault, a slow marketplace, recommendations failing, users not
//! ready; and `loadgen seed` run twice with one seed. Each run is bounded (a few hundred
//! requests); `cargo test -p tests --test drills -- --nocapture` prints loadgen's summaries.

mod baseline;
mod injected;
mod run;
mod seeding;

use tests::Suite;

/// Faults are injected through the admin ports of a suite the test started.
fn skip_external() -> bool {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "drills: inject faults, so they run only against a suite they started",
        );
        return true;
    }
    false
}

const RECOMMENDATIONS: &str =
    "grpc_service=\"bookstore.recommendations.v1.RecommendationsService\"";
