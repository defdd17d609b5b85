//! The co-rating lists: per book its norm and strongest neighbours, and the window add and
//! remove that keep them equal to a build from scratch of a user's most recent ratings.

use std::collections::HashMap;

use super::limits::Limits;

/// One stored rating: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rated {
    pub book: u32,
    pub stars: i8,
}

impl Rated {
    pub(super) fn centred(self) -> i32 {
        i32::from(self.stars) - 3
    }
}

/// Stars 1..=5 as an `i8`, or `None` when out of range.
pub(super) fn stars8(stars: i64) -> Option<i8> {
    (1..=5)
        .contains(&stars)
        .then(|| i8::try_from(stars).unwrap_or(3))
}

/// A book's norm and its strongest neighbours.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Book {
    /// Sum of squared centred stars over the windows that hold this book.
    pub(super) norm2: i64,
    /// `(neighbour, dot)` sorted by neighbour id; at most `2M` entries.
    pub(super) neighbours: Vec<(u32, i32)>,
    /// The list has been cut to its `M` strongest at least once.
    pub(super) cut: bool,
}

/// The books a window update touches, split from the users so both can be borrowed at once.
pub(super) struct Books<'a> {
    pub(super) books: &'a mut HashMap<u32, Book>,
    pub(super) limits: Limits,
    pub(super) pair_updates: &'a mut u64,
}

impl Books<'_> {
    /// `sign` = 1: `r` enters the window `others` (window add); -1: it leaves it (window remove).
    /// `others` may contain `r` itself, which is skipped.
    pub(super) fn window_update(&mut self, others: &[Rated], r: Rated, sign: i32) {
        let c = r.centred() * sign;
        if c == 0 {
            return;
        }
        for &o in others {
            if o.book == r.book {
                continue;
            }
            let d = c * o.centred();
            if d != 0 {
                self.bump(r.book, o.book, d);
                self.bump(o.book, r.book, d);
            }
        }
        self.books.entry(r.book).or_default().norm2 += i64::from(sign * c * c);
    }

    /// Adds `d` to the dot product of `a` with `b` as `a`'s list holds it.
    fn bump(&mut self, a: u32, b: u32, d: i32) {
        *self.pair_updates += 1;
        let m = self.limits.neighbours.max(1);
        let book = self.books.entry(a).or_default();
        let list = &mut book.neighbours;
        match list.binary_search_by_key(&b, |&(id, _)| id) {
            Ok(i) => {
                let v = &mut list[i].1;
                *v = v.saturating_add(d);
                if *v == 0 {
                    list.remove(i);
                }
            }
            Err(_) if d < 0 && book.cut => {}
            Err(i) => {
                if list.len() == list.capacity() {
                    // Grow up to exactly 2M + 1 entries, never beyond.
                    let want = (list.len() * 2).clamp(4, 2 * m + 1);
                    list.reserve_exact(want.saturating_sub(list.len()));
                }
                list.insert(i, (b, d));
                if list.len() > 2 * m {
                    cut(list, m);
                    book.cut = true;
                }
            }
        }
    }
}

/// Keeps the `m` largest dot products of `list` (ties by lower id), sorted by id again.
fn cut(list: &mut Vec<(u32, i32)>, m: usize) {
    if list.len() <= m {
        return;
    }
    list.select_nth_unstable_by(m, |x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    list.truncate(m);
    list.sort_unstable_by_key(|&(id, _)| id);
}

/// Removes `list[p]`: when it was in the window, window-removes it and lets the rating just
/// before the window re-enter.
pub(super) fn remove_at(books: &mut Books<'_>, list: &mut Vec<Rated>, p: usize, c: usize) {
    let start = list.len().saturating_sub(c);
    let in_window = p >= start;
    if in_window {
        books.window_update(&list[start..], list[p], -1);
    }
    list.remove(p);
    if in_window && list.len() >= c {
        let start = list.len() - c;
        books.window_update(&list[start..], list[start], 1);
    }
    if list.capacity() > list.len() + list.len() / 4 + 4 {
        list.shrink_to(list.len() + list.len() / 8 + 4);
    }
}

/// Appends `r`: the oldest rating of a full window leaves it, `r` enters.
pub(super) fn push(books: &mut Books<'_>, list: &mut Vec<Rated>, r: Rated, c: usize) {
    if list.len() >= c {
        let start = list.len() - c;
        books.window_update(&list[start..], list[start], -1);
    }
    if list.len() == list.capacity() {
        // Grow by a quarter (at least 4), not double: at most 25 % spare, plus 4 slots.
        list.reserve_exact((list.len() / 4).max(4));
    }
    list.push(r);
    let start = list.len().saturating_sub(c);
    books.window_update(&list[start..], r, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::SplitMix64;

    use crate::similarity::{
        index::{BookId, SimilarityIndex},
        memory::bound_bytes,
    };

    #[test]
    fn a_heavy_reader_adds_a_bounded_window_of_pairs() {
        let limits = Limits::default();
        let c = limits.window;
        let mut ix = SimilarityIndex::new(limits);
        let mut rng = SplitMix64::new(7);
        let mut before = 0;
        for book in 1..=5_000 {
            ix.apply("heavy", book, Some(1 + rng.below(5) as i64));
            let work = ix.stats().pair_updates - before;
            // Its own pairs plus those of the rating it pushed out, both directions.
            assert!(work <= 4 * (c as u64 - 1), "{work}");
            before = ix.stats().pair_updates;
        }
        let stats = ix.stats();
        assert_eq!(stats.ratings, 5_000);
        assert!(
            stats.neighbour_entries <= c * (c - 1),
            "{}",
            stats.neighbour_entries
        );
        // Exactly the final window's pairs, as a build from scratch has them.
        let mut scratch = SimilarityIndex::new(limits);
        let final_ratings: Vec<(BookId, i64)> = ix
            .ratings_of("heavy")
            .unwrap()
            .iter()
            .map(|r| (BookId::from(r.book), i64::from(r.stars)))
            .collect();
        assert!(scratch.load_user("heavy", &final_ratings));
        assert_eq!(ix.snapshot(), scratch.snapshot());
        assert!(scratch.stats().pair_updates <= (c * (c - 1)) as u64);
        assert!(
            stats.approx_bytes <= bound_bytes(limits, stats.books, 5_000, 1, 5),
            "{stats:?}"
        );
    }

    /// Random rates, re-rates and deletes (many inside the window) over a few users and books,
    /// with a small window and no cut: the live index equals builds from scratch of the end state.
    #[test]
    fn a_sliding_window_stays_equal_to_a_build_from_scratch() {
        for seed in 0..20 {
            let limits = Limits {
                window: 4,
                neighbours: 1_000,
                seeds: 50,
            };
            let mut live = SimilarityIndex::new(limits);
            let mut rng = SplitMix64::new(seed);
            let users = ["a", "b", "c"];
            for _ in 0..400 {
                let user = users[rng.below(3) as usize];
                let book = 1 + rng.below(12) as i64;
                let stars = if rng.below(4) == 0 {
                    None
                } else {
                    Some(1 + rng.below(5) as i64)
                };
                live.apply(user, book, stars);
            }
            let mut loaded = SimilarityIndex::new(limits);
            let mut replayed = SimilarityIndex::new(limits);
            for user in users {
                let rs: Vec<(BookId, i64)> = live
                    .ratings_of(user)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| (BookId::from(r.book), i64::from(r.stars)))
                    .collect();
                assert!(loaded.load_user(user, &rs));
                for &(b, s) in &rs {
                    replayed.apply(user, b, Some(s));
                }
            }
            assert_eq!(live.snapshot(), loaded.snapshot(), "seed {seed}");
            assert_eq!(live.snapshot(), replayed.snapshot(), "seed {seed}");
            assert_eq!(live.stats().ratings, loaded.stats().ratings);
        }
    }

    #[test]
    fn deleting_a_rating_in_the_window_lets_the_one_before_it_back_in() {
        let limits = Limits {
            window: 2,
            ..Limits::default()
        };
        let mut ix = SimilarityIndex::new(limits);
        ix.apply("a", 1, Some(5));
        ix.apply("a", 2, Some(5));
        ix.apply("a", 3, Some(5)); // 1 leaves the window
        assert_eq!(ix.similarity(1, 2), 0.0);
        assert!(ix.similarity(2, 3) > 0.99);
        ix.apply("a", 3, None); // 1 comes back
        assert!(ix.similarity(1, 2) > 0.99);
        assert_eq!(ix.similarity(2, 3), 0.0);
        ix.apply("a", 1, Some(4)); // rated again: moves to the end, the window stays {1, 2}
        assert!(ix.similarity(1, 2) > 0.99);
        ix.apply("a", 3, Some(5)); // 2 leaves
        assert!(ix.similarity(1, 3) > 0.99);
        assert_eq!(ix.similarity(1, 2), 0.0);
    }

    #[test]
    fn a_cut_keeps_the_strongest_neighbours() {
        let limits = Limits {
            window: 2,
            neighbours: 3,
            seeds: 50,
        };
        let mut ix = SimilarityIndex::new(limits);
        // Book 1 is co-rated first with books 6, 7 and 8 by 3, 4 and 5 readers, then with
        // books 9..=30 by one reader each, which overflows its list again and again.
        let mut n = 0;
        let mut co_rate = |ix: &mut SimilarityIndex, k: BookId| {
            n += 1;
            let u = format!("u{n}");
            ix.apply(&u, 1, Some(5));
            ix.apply(&u, k, Some(5));
        };
        for k in 6..=8 {
            for _ in 0..(k - 3) {
                co_rate(&mut ix, k);
            }
        }
        for k in 9..=30 {
            co_rate(&mut ix, k);
        }
        let book = &ix.books[&1];
        assert!(book.cut && book.neighbours.len() <= 6, "{book:?}");
        assert!(book.neighbours.contains(&(8, 20)) && book.neighbours.contains(&(6, 12)));
        let ids: Vec<_> = ix.similar(1).into_iter().map(|(b, _)| b).take(3).collect();
        assert_eq!(ids, vec![8, 7, 6]);
        // The cut was deterministic: ties by the lower id.
        let mut v = vec![(5, 4), (2, 4), (9, 1), (3, 4), (4, 7)];
        v.sort_unstable_by_key(|x| x.0);
        cut(&mut v, 3);
        assert_eq!(v, vec![(2, 4), (3, 4), (4, 7)]);
    }

    #[test]
    fn every_list_stays_within_2m_entries() {
        let limits = Limits {
            window: 20,
            neighbours: 10,
            seeds: 50,
        };
        let mut ix = SimilarityIndex::new(limits);
        let mut rng = SplitMix64::new(3);
        for u in 0..300 {
            let user = format!("u{u}");
            for _ in 0..30 {
                ix.apply(
                    &user,
                    1 + rng.below(400) as i64,
                    Some(1 + rng.below(5) as i64),
                );
            }
        }
        for b in ix.books.values() {
            assert!(b.neighbours.len() <= 20);
            assert!(b.neighbours.capacity() <= 21);
            assert!(b.neighbours.windows(2).all(|w| w[0].0 < w[1].0));
        }
        let s = ix.stats();
        assert!(s.approx_bytes <= bound_bytes(limits, s.books, s.ratings, s.users, 4));
    }
}
