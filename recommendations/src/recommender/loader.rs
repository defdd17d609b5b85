//! Loading stored ratings a user at a time, so that only each user's final window is paired.

use super::state::{Recommender, apply};
use crate::{similarity::BookId, store::RatingRow};

impl Recommender {
    /// Streams stored ratings in: push rows ordered by user then time, then finish.
    pub fn loader(&self) -> Loader<'_> {
        Loader {
            recommender: self,
            user: String::new(),
            pending: Vec::new(),
            rows: 0,
            skipped: 0,
        }
    }

    /// Loads one user's ratings of catalog books, oldest first (see
    /// [`crate::similarity::SimilarityIndex::load_user`]).
    fn load_user(&self, user: &str, ratings: &[(BookId, i64)]) {
        let mut s = self.write();
        let positions = ratings
            .iter()
            .filter_map(|&(book, stars)| Some(((book, self.catalog.position(book)?), stars)));
        if s.index.load_user(user, ratings) {
            for ((_, position), stars) in positions {
                s.local[position].add(stars);
            }
            s.popular = None;
        } else {
            for (book, stars) in positions {
                apply(&mut s, user, book, Some(stars));
            }
        }
    }
}

/// Loads stored ratings row by row: rows of one user are gathered (8 bytes each) and indexed
/// together when the next user begins, so only that user's final window is paired. Rows must
/// come ordered by user, then time (oldest first); a user seen again later is still applied
/// correctly, one rating at a time.
pub struct Loader<'a> {
    recommender: &'a Recommender,
    user: String,
    pending: Vec<(BookId, i64)>,
    rows: u64,
    skipped: u64,
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSummary {
    /// Rows read.
    pub rows: u64,
    /// Rows ignored: a book not in the catalog or stars out of range.
    pub skipped: u64,
}

impl Loader<'_> {
    pub fn push(&mut self, row: RatingRow) {
        self.rows += 1;
        if !self.recommender.catalog.contains(row.book_id) || !(1..=5).contains(&row.stars) {
            self.skipped += 1;
            return;
        }
        if row.user_id != self.user {
            self.flush();
            self.user = row.user_id;
        }
        self.pending.push((row.book_id, row.stars));
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.recommender.load_user(&self.user, &self.pending);
            self.pending.clear();
        }
        if self.pending.capacity() > 4_096 {
            self.pending = Vec::new();
        }
    }

    pub fn finish(mut self) -> LoadSummary {
        self.flush();
        LoadSummary {
            rows: self.rows,
            skipped: self.skipped,
        }
    }
}

/// A rating row of `u` for `b` with `s` stars (for tests).
#[cfg(test)]
pub(super) fn rating(u: &str, b: BookId, s: i64) -> RatingRow {
    RatingRow {
        user_id: u.into(),
        book_id: b,
        stars: s,
        updated_at_ms: 0,
    }
}

/// A recommender over the built-in catalog loaded with `rows` (for tests).
#[cfg(test)]
pub(super) fn loaded(rows: &[RatingRow]) -> Recommender {
    let r = Recommender::new(catalog::Digest::builtin().unwrap());
    let mut loader = r.loader();
    for row in rows {
        loader.push(row.clone());
    }
    loader.finish();
    r
}

#[cfg(test)]
mod tests {
    use catalog::Digest;

    use super::*;

    #[test]
    fn loading_rows_equals_recording_them_and_skips_unknown_books() {
        let rows = [
            rating("a", 1, 5),
            rating("a", 2, 4),
            rating("a", 99_999, 5),
            rating("b", 1, 5),
            rating("b", 3, 5),
            rating("a", 4, 5), // "a" again, out of order: still applied
        ];
        let loaded = loaded(&rows);
        let live = Recommender::new(Digest::builtin().unwrap());
        for row in &rows {
            live.record(&row.user_id, row.book_id, Some(row.stars));
        }
        for book in 1..=4 {
            assert_eq!(loaded.similar(book, 10), live.similar(book, 10));
        }
        assert_eq!(loaded.popular(0, 50), live.popular(0, 50));
        assert_eq!(loaded.stats().ratings, 5);
        let mut l = loaded.loader();
        l.push(rating("c", 99_999, 5));
        l.push(rating("c", 1, 9));
        assert_eq!(
            l.finish(),
            LoadSummary {
                rows: 2,
                skipped: 2
            }
        );
        assert_eq!(loaded.digest(), live.digest());
        live.record("b", 3, None);
        assert_ne!(loaded.digest(), live.digest());
        loaded.clear();
        assert_eq!(loaded.stats().ratings, 0);
        assert!(loaded.similar(1, 10).is_empty());
    }
}
