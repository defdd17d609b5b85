//! Rating storage behind a trait, with the real implementation on `sqlx` (SQLite or PostgreSQL).
//!
//! Every write also appends to the change log (`rating_changes`) in the same transaction, so
//! the log and the ratings table never disagree; replicas follow the log (see
//! [`crate::changelog`]) and start from a [`Snapshot`] of the table taken with the log's position.

mod backend;
mod rating_store;
mod snapshot;
mod sql;

pub use self::{
    backend::{Backend, PORTABLE, POSTGRES_ONLY, SQLITE_ONLY, migrator},
    rating_store::{Change, RatingRow, RatingStore, Snapshot, StoreError, Written},
    snapshot::PAGE_ROWS,
    sql::{CHANNEL, SqlRatingStore},
};
