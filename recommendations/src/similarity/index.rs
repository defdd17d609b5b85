//! The index itself: every user's ratings in time order and the co-rating lists they feed,
//! changed one rating at a time or loaded a user at a time.

use std::collections::HashMap;

use super::{
    corating::{Book, Books, Rated, push, remove_at, stars8},
    limits::Limits,
};

/// A book id.
pub type BookId = i64;

/// Ratings by user, and per book the norms and strongest co-rating dot products.
#[derive(Debug)]
pub struct SimilarityIndex {
    pub(super) limits: Limits,
    pub(super) users: HashMap<Box<str>, Vec<Rated>>,
    pub(super) books: HashMap<u32, Book>,
    pub(super) ratings: usize,
    pub(super) pair_updates: u64,
}

impl Default for SimilarityIndex {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl SimilarityIndex {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                window: limits.window.max(1),
                neighbours: limits.neighbours.max(1),
                seeds: limits.seeds,
            },
            users: HashMap::new(),
            books: HashMap::new(),
            ratings: 0,
            pair_updates: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets (`Some`) or removes (`None`) `user`'s rating of `book`; returns the previous stars.
    /// A book id that does not fit a `u32` or stars outside 1..=5 change nothing.
    pub fn apply(&mut self, user: &str, book: BookId, stars: Option<i64>) -> Option<i64> {
        let book = u32::try_from(book).ok()?;
        let new = match stars {
            Some(s) => Some(Rated {
                book,
                stars: stars8(s)?,
            }),
            None => None,
        };
        let c = self.limits.window;
        let Self {
            users,
            books,
            ratings,
            pair_updates,
            limits,
        } = self;
        let mut books = Books {
            books,
            limits: *limits,
            pair_updates,
        };
        if !users.contains_key(user) {
            // Deleting a rating never made changes nothing.
            new?;
            users.insert(user.into(), Vec::new());
        }
        let list = users.get_mut(user).expect("present");
        let pos = list.iter().position(|r| r.book == book);
        let old = pos.map(|p| list[p]);
        match (pos, new) {
            (None, None) => {}
            (Some(p), Some(n)) if p + c >= list.len() => {
                // Rated again inside the window: the window keeps the same books, `book` moves
                // to the end with its new stars.
                let start = list.len().saturating_sub(c);
                books.window_update(&list[start..], list[p], -1);
                list.remove(p);
                list.push(n);
                let start = list.len().saturating_sub(c);
                books.window_update(&list[start..], n, 1);
            }
            (pos, new) => {
                if let Some(p) = pos {
                    remove_at(&mut books, list, p, c);
                    *ratings -= 1;
                }
                if let Some(n) = new {
                    push(&mut books, list, n, c);
                    *ratings += 1;
                }
            }
        }
        if list.is_empty() {
            users.remove(user);
        }
        old.map(|r| i64::from(r.stars))
    }

    /// Loads a new user's ratings, oldest first, as a build from scratch would (only the final
    /// window's pairs are computed); invalid entries are skipped. Returns `false`, changing
    /// nothing, when the user already has ratings or a book appears twice: apply those one by
    /// one with [`Self::apply`].
    #[must_use]
    pub fn load_user(&mut self, user: &str, ratings: &[(BookId, i64)]) -> bool {
        let mut list: Vec<Rated> = ratings
            .iter()
            .filter_map(|&(b, s)| {
                Some(Rated {
                    book: u32::try_from(b).ok()?,
                    stars: stars8(s)?,
                })
            })
            .collect();
        let mut ids: Vec<u32> = list.iter().map(|r| r.book).collect();
        ids.sort_unstable();
        let distinct = ids.windows(2).all(|w| w[0] != w[1]);
        if !distinct || self.users.contains_key(user) {
            return false;
        }
        if list.is_empty() {
            return true;
        }
        list.shrink_to_fit();
        let c = self.limits.window;
        let mut books = Books {
            books: &mut self.books,
            limits: self.limits,
            pair_updates: &mut self.pair_updates,
        };
        let start = list.len().saturating_sub(c);
        for i in start..list.len() {
            books.window_update(&list[start..i], list[i], 1);
        }
        self.ratings += list.len();
        self.users.insert(user.into(), list);
        true
    }

    /// Forgets every rating.
    pub fn clear(&mut self) {
        *self = Self::new(self.limits);
    }

    /// `user`'s ratings, oldest first.
    pub fn ratings_of(&self, user: &str) -> Option<&[Rated]> {
        self.users.get(user).map(Vec::as_slice)
    }

    /// The books `user` rated, sorted by id (for binary search).
    pub fn rated_books(&self, user: &str) -> Vec<BookId> {
        let mut ids: Vec<BookId> = self
            .ratings_of(user)
            .unwrap_or_default()
            .iter()
            .map(|r| BookId::from(r.book))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every user's ratings as a set, users sorted by id and ratings by book: the part of the
    /// index that a rebuild from the same ratings reproduces whatever order they arrived in.
    pub fn rating_sets(&self) -> Vec<(&str, Vec<Rated>)> {
        let mut users: Vec<(&str, Vec<Rated>)> = self
            .users
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(id, list)| {
                let mut set = list.clone();
                set.sort_unstable_by_key(|r| r.book);
                (&**id, set)
            })
            .collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        users
    }

    /// Per book: norm and neighbour list, sorted by book (for comparing two indexes).
    #[cfg(test)]
    pub(super) fn snapshot(&self) -> Vec<(u32, Book)> {
        let mut v: Vec<_> = self
            .books
            .iter()
            .filter(|(_, b)| b.norm2 != 0 || !b.neighbours.is_empty())
            .map(|(&id, b)| (id, b.clone()))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }
}

/// An index of `ratings` applied in order (for tests).
#[cfg(test)]
pub(super) fn index(ratings: &[(&str, BookId, i64)]) -> SimilarityIndex {
    let mut ix = SimilarityIndex::default();
    for &(u, b, s) in ratings {
        ix.apply(u, b, Some(s));
    }
    ix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_updates_equal_a_rebuild_from_scratch() {
        let mut live = index(&[
            ("a", 1, 5),
            ("a", 2, 2),
            ("b", 1, 4),
            ("b", 2, 5),
            ("c", 2, 4),
            ("c", 3, 5),
        ]);
        live.apply("a", 2, Some(5)); // rate again: replaces
        live.apply("c", 3, None); // delete
        live.apply("c", 1, Some(5));
        let rebuilt = index(&[
            ("a", 1, 5),
            ("a", 2, 5),
            ("b", 1, 4),
            ("b", 2, 5),
            ("c", 2, 4),
            ("c", 1, 5),
        ]);
        for (x, y) in [(1, 2), (1, 3), (2, 3)] {
            assert_eq!(live.similarity(x, y), rebuilt.similarity(x, y), "{x}~{y}");
        }
        assert_eq!(live.similarity(2, 3), 0.0);
        assert_eq!(live.snapshot(), rebuilt.snapshot());
    }

    #[test]
    fn rating_again_returns_the_previous_stars() {
        let mut ix = SimilarityIndex::default();
        assert_eq!(ix.apply("a", 1, Some(3)), None);
        assert_eq!(ix.apply("a", 1, Some(5)), Some(3));
        assert_eq!(ix.apply("a", 1, None), Some(5));
        assert!(ix.ratings_of("a").is_none());
        assert_eq!(ix.apply("a", 1, None), None);
        assert_eq!(ix.stats().users, 0);
    }
}
