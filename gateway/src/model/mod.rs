//! The gateway's own model: what the upstream calls answer, in plain Rust. `upstream/` turns the
//! services' protos into these, `api/` and `pages/` render them; neither protos nor REST shapes
//! reach this far down, so a change to either stays on its own floor.

mod book;
mod rating;
mod recommendation;
mod user;

pub use self::{
    book::{Book, BookPage, BookView},
    rating::{Rating, RatingChange, RatingChangeKind, RatingPage},
    recommendation::{Pick, Recommendation, RecommendationSource},
    user::{Session, User},
};
