//! What the index holds: its sizes, the heap bytes it estimates from real capacities, and the
//! documented bound that estimate stays below.

use super::{corating::Rated, index::SimilarityIndex, limits::Limits};

/// Sizes and an estimate of the memory held (see [`crate::similarity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    pub users: usize,
    pub ratings: usize,
    pub books: usize,
    /// Neighbour entries held over every book.
    pub neighbour_entries: usize,
    /// Neighbour list updates made so far (work done, for tests and benchmarks).
    pub pair_updates: u64,
    /// Estimated heap bytes held by the index.
    pub approx_bytes: usize,
}

/// Bytes of one user's map slot (at the map's load factor) and allocation headers, besides the
/// ratings and the id's characters.
const PER_USER_BYTES: usize = 96;
/// The bound's allowance per user: [`PER_USER_BYTES`] plus up to 4 spare rating slots.
const PER_USER_BOUND: usize = PER_USER_BYTES + 4 * size_of::<Rated>();
/// Bytes of one book's map slot and list header besides its neighbour entries.
const PER_BOOK_BYTES: usize = 64;

/// The documented upper bound of [`SimilarityIndex::approx_bytes`] for `books` books with
/// ratings, `ratings` stored ratings and `users` users whose ids average `id_len` bytes.
pub fn bound_bytes(
    limits: Limits,
    books: usize,
    ratings: usize,
    users: usize,
    id_len: usize,
) -> usize {
    books * ((2 * limits.neighbours.max(1) + 1) * size_of::<(u32, i32)>() + PER_BOOK_BYTES)
        + ratings * size_of::<Rated>() * 5 / 4
        + users * (PER_USER_BOUND + id_len)
}

impl SimilarityIndex {
    /// Sizes and the estimated heap bytes held, counted from the real capacities.
    pub fn stats(&self) -> IndexStats {
        let users = self.users.len();
        let user_bytes: usize = self
            .users
            .iter()
            .map(|(id, list)| id.len() + list.capacity() * size_of::<Rated>())
            .sum();
        let book_bytes: usize = self
            .books
            .values()
            .map(|b| b.neighbours.capacity() * size_of::<(u32, i32)>())
            .sum();
        IndexStats {
            users,
            ratings: self.ratings,
            books: self.books.len(),
            neighbour_entries: self.books.values().map(|b| b.neighbours.len()).sum(),
            pair_updates: self.pair_updates,
            approx_bytes: user_bytes
                + users * PER_USER_BYTES
                + book_bytes
                + self.books.len() * PER_BOOK_BYTES,
        }
    }

    /// Estimated heap bytes held (see [`crate::similarity`] for the bound).
    pub fn approx_bytes(&self) -> usize {
        self.stats().approx_bytes
    }
}
