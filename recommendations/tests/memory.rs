//! The memory bound of the similarity index (`similarity::bound_bytes`), checked in every
//! `cargo test` at a scale a debug build indexes in seconds: 100,000 synthetic ratings by 5,000
//! readers with the catalog's popularity and a heavy tail (`synthetic`), loaded as the service
//! loads them at start (snapshot, user by user) and then applied one by one as the change log
//! applies them. The 1,000,000-rating run of the release binary is `make bench-recommendations`.
//!
//! A test binary of its own: the resident set is per process, so no other test may allocate
//! beside this one while it measures.

use catalog::Digest;
use recommendations::{
    recommender::Recommender,
    similarity::{Limits, bound_bytes},
    store::RatingRow,
};
use workload::{START_MS, Spec, Synthetic, SyntheticRating};

const RATINGS: u64 = 100_000;
const USERS: u32 = 5_000;
/// Synthetic user ids are UUIDs.
const ID_LEN: usize = 36;
const MIB: f64 = 1024.0 * 1024.0;

/// The process's resident set (`VmRSS`), where `/proc` has it.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[test]
fn an_index_of_100k_synthetic_ratings_stays_within_its_documented_memory_bound() {
    let catalog = Digest::builtin().unwrap();
    let synthetic = Synthetic::new(
        &catalog,
        Spec {
            ratings: RATINGS,
            users: USERS,
            seed: 7,
            ..Spec::default()
        },
    );
    // Readers past the window (C = 50) and lists past 2M neighbours are what the bound is about.
    let heaviest = (0..synthetic.users())
        .map(|u| synthetic.activity(u))
        .max()
        .unwrap();
    assert!(
        heaviest >= 500,
        "no heavy reader: at most {heaviest} ratings"
    );

    // The first eleven months are the snapshot the service loads at start, the last month
    // arrives through the change log, in time order.
    let cut = START_MS + 335 * 24 * 3600 * 1000;
    let row = |r: &SyntheticRating| RatingRow {
        user_id: synthetic.user_id(r.user),
        book_id: r.book_id,
        stars: r.stars,
        updated_at_ms: r.updated_at_ms,
    };
    let mut live: Vec<RatingRow> = synthetic
        .iter()
        .filter(|r| r.updated_at_ms >= cut)
        .map(|r| row(&r))
        .collect();
    live.sort_by_key(|r| r.updated_at_ms);
    assert!(!live.is_empty() && live.len() < RATINGS as usize / 4);

    // Measured from an empty recommender (the catalog's share is in the baseline); the snapshot
    // is streamed in, never held, so no freed input makes room for the index.
    let recommender = Recommender::new(catalog.clone());
    let before = rss_bytes();
    let mut loader = recommender.loader();
    for r in synthetic.iter().filter(|r| r.updated_at_ms < cut) {
        loader.push(row(&r));
    }
    let loaded = loader.finish();
    assert_eq!(loaded.skipped, 0);
    for r in &live {
        recommender.record(&r.user_id, r.book_id, Some(r.stars));
    }
    let after = rss_bytes();

    let stats = recommender.stats();
    assert_eq!(stats.ratings as u64, RATINGS, "{stats:?}");
    assert_eq!(stats.users as u32, USERS, "{stats:?}");
    assert!(stats.books <= catalog.len(), "{stats:?}");
    let bound = bound_bytes(
        Limits::default(),
        stats.books,
        stats.ratings,
        stats.users,
        ID_LEN,
    );
    println!(
        "{} ratings ({} live) by {} readers (heaviest {heaviest}) over {} books: \
         index {:.1} MiB estimated, bound {:.1} MiB",
        stats.ratings,
        live.len(),
        stats.users,
        stats.books,
        stats.approx_bytes as f64 / MIB,
        bound as f64 / MIB
    );
    assert!(
        stats.approx_bytes <= bound,
        "the index holds {} bytes, above its bound of {bound}: {stats:?}",
        stats.approx_bytes
    );
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "resident set grew by {:.1} MiB ({:.2}x the bound)",
            grown as f64 / MIB,
            grown as f64 / bound as f64
        );
        // What the process really pays (allocator headers, the room a `Vec` or map leaves when it
        // grows) stays within the bound too: about 0.6x of it at this scale.
        assert!(
            grown <= bound,
            "the process grew by {grown} bytes building the index, above its bound of {bound}"
        );
    }

    // The figure the documentation gives for the catalog, 1M ratings and 50k readers.
    let at_1m = bound_bytes(Limits::default(), catalog.len(), 1_000_000, 50_000, ID_LEN);
    assert!(at_1m <= 36_000_000, "{at_1m} bytes at 1M ratings");
}
