//! Item-item similarity kept up to date as ratings arrive, in memory bounded by the catalog.
//!
//! Each rating is centred on the middle of the scale (stars - 3: liked is positive, disliked
//! negative), and two books are as similar as the cosine of their centred rating vectors.
//!
//! # What counts
//!
//! - **Per user**, every rating is kept compactly ([`Rated`]: a `u32` book and `i8` stars, 8 bytes)
//!   in rating-time order, most recent last. Only the most recent `C` of them
//!   ([`Limits::window`], default 50) — the user's *window* — contribute to the co-rating dot
//!   products and to the books' norms. So one very active reader adds at most `C·(C-1)` (directed)
//!   pair entries, and each of their ratings costs at most `4·(C-1)` list updates (its own pairs,
//!   and those of the rating it pushes out of the window), never work that grows with their
//!   history.
//! - The window is kept exactly consistent by two primitives: *window add* (a rating enters the
//!   window: its pairs with the other books in the window and its norm are added) and *window
//!   remove* (the reverse). A new rating is window-added, pushing the oldest one out
//!   (window-removed) once the window is full; rating again moves the book to the end (remove,
//!   then add); deleting a rating in the window window-removes it and lets the rating just before
//!   the window re-enter (window-added). The state after any sequence therefore equals a build
//!   from scratch of the final ratings (exactly, as long as no neighbour list has been cut).
//! - **Per book**, at most `M` neighbours ([`Limits::neighbours`], default 100) are kept: a list of
//!   `(neighbour, dot)` sorted by neighbour id (binary search), allowed to grow to `2M` entries,
//!   then cut back to the `M` largest dot products (ties by the lower id, so deterministic). A
//!   pair that reaches 0 leaves the list. Until a book's list is first cut, every non-zero pair is
//!   kept (negative ones too, so that small data stays exact). So similarity is **exact for books
//!   with at most `M` co-rated neighbours** (in fact for any book whose list never exceeded `2M`),
//!   and beyond that an **approximation that keeps the strongest neighbours**: once a list has
//!   been cut, a positive delta for an absent pair inserts it afresh (its earlier history is
//!   lost) and a negative delta for an absent pair is ignored.
//!   The two directions of a pair live in two lists and may be cut differently.
//!
//! # Memory
//!
//! With `B` books that have ratings (at most the catalog: 10,000), `R` stored ratings and `U`
//! users, [`SimilarityIndex::approx_bytes`] stays below [`bound_bytes`]:
//!
//! ```text
//! B × ((2M + 1) × 8 + 64)          neighbour lists and norms  (M = 100, B = 10k: 16.7 MB)
//! + R × 8 × 5/4                    ratings, 8 B each + ≤ 25 % growth room (1M ratings: 10 MB)
//! + U × (128 + user id length)     per-user map slot, headers (50k UUID users: 8.2 MB)
//! ```
//!
//! A user loaded at start holds exactly 8 B per rating; live appends grow a user's list by a
//! quarter at a time. For 1M ratings by 50k users over the catalog that is about 35 MB.
//!
//! It is never quadratic in any user's activity. Work per rating: at most `4·(C−1)` list updates,
//! each a binary search plus a move of at most `2M` entries. Personal picks read the user's most
//! recent `L` liked books ([`Limits::seeds`], default 50), each with at most `2M` neighbours.

mod corating;
mod index;
mod limits;
mod memory;
mod picks;
mod scoring;

pub use self::{
    corating::Rated,
    index::{BookId, SimilarityIndex},
    limits::Limits,
    memory::{IndexStats, bound_bytes},
    picks::Pick,
};
