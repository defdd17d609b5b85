//! The recommender: the catalog's rating distributions plus the ratings held here, kept in memory
//! and updated as each rating is stored. Answers popular, similar and personal lists.
//!
//! Memory is bounded by the catalog, not by any reader's activity: the similarity index's bound
//! is documented in [`crate::similarity`]; per catalog book there is its digest entry (id,
//! title, histogram: about 70 bytes) and one tally of local ratings (16 bytes).

mod digest;
mod lists;
mod loader;
mod state;

pub use self::{
    digest::IndexDigest,
    lists::{Recommendation, Source},
    loader::{LoadSummary, Loader},
    state::{Engine, Recommender},
};
