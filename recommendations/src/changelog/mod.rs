//! Replicas that agree: every replica builds its index from a snapshot of the ratings table, then
//! follows the change log (`rating_changes`) that each write appends in its own transaction, and
//! applies each change once, whichever replica took the write (its own included). The live feed
//! is served from the same log, so every replica's feed carries every rating.
//!
//! - **Waking.** On PostgreSQL a commit sends `NOTIFY rating_changes` and [`listen`] wakes the
//!   follower; a notification lost with its connection costs nothing but time, because the
//!   follower reads the log from its own position, after a reconnect and every `poll_every` at
//!   the latest. SQLite has no notifications: the log is polled every `poll_every`.
//! - **Gaps.** PostgreSQL hands out positions from a sequence when a row is inserted, so a
//!   transaction that took position 7 may commit after the one that took 8. A position skipped
//!   over is held as a *gap* and asked for again at every read until it appears or `gap_wait`
//!   has passed (the transaction rolled back, or the sequence jumped). Two writes of one rating
//!   cannot trade places: the second waits for the first's row lock before it takes a position.
//! - **Start: snapshot plus tail.** The ratings are read in one transaction together with the
//!   log's head and the positions below it not yet committed (the snapshot's gaps); the tail
//!   starts there, so nothing is missed and nothing is applied twice.
//! - **Retention.** Changes older than `retention` are deleted (by any replica, every tenth of
//!   it), and the highest deleted position is recorded. A replica that finds its position below
//!   that one has missed changes: it reloads a snapshot by itself, serving the old index until
//!   the new one is built (its live feed skips the changes it missed). A replica that was down
//!   simply starts from a snapshot.

mod cursor;
mod follower;
mod listener;
mod metrics;
mod retry;
mod snapshot;

pub use self::{
    follower::{Follower, IndexState, Settings},
    listener::listen,
    snapshot::rebuild_digest,
};
