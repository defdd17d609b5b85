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

use std::collections::HashMap;

/// A book id.
pub type BookId = i64;

/// The bounds of the index (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `C`: a user's most recent ratings that contribute to co-ratings and norms.
    pub window: usize,
    /// `M`: neighbours kept per book after a cut (a list may grow to `2M` before it is cut).
    pub neighbours: usize,
    /// `L`: the most recent liked books that seed a user's personal picks.
    pub seeds: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: 50,
            neighbours: 100,
            seeds: 50,
        }
    }
}

/// One stored rating: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rated {
    pub book: u32,
    pub stars: i8,
}

impl Rated {
    fn centred(self) -> i32 {
        i32::from(self.stars) - 3
    }
}

/// Stars 1..=5 as an `i8`, or `None` when out of range.
fn stars8(stars: i64) -> Option<i8> {
    (1..=5)
        .contains(&stars)
        .then(|| i8::try_from(stars).unwrap_or(3))
}

/// A book's norm and its strongest neighbours.
#[derive(Debug, Default, Clone, PartialEq)]
struct Book {
    /// Sum of squared centred stars over the windows that hold this book.
    norm2: i64,
    /// `(neighbour, dot)` sorted by neighbour id; at most `2M` entries.
    neighbours: Vec<(u32, i32)>,
    /// The list has been cut to its `M` strongest at least once.
    cut: bool,
}

/// Sizes and an estimate of the memory held (see the module documentation).
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

/// Ratings by user, and per book the norms and strongest co-rating dot products.
#[derive(Debug)]
pub struct SimilarityIndex {
    limits: Limits,
    users: HashMap<Box<str>, Vec<Rated>>,
    books: HashMap<u32, Book>,
    ratings: usize,
    pair_updates: u64,
}

impl Default for SimilarityIndex {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The books a window update touches, split from the users so both can be borrowed at once.
struct Books<'a> {
    books: &'a mut HashMap<u32, Book>,
    limits: Limits,
    pair_updates: &'a mut u64,
}

impl Books<'_> {
    /// `sign` = 1: `r` enters the window `others` (window add); -1: it leaves it (window remove).
    /// `others` may contain `r` itself, which is skipped.
    fn window_update(&mut self, others: &[Rated], r: Rated, sign: i32) {
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

    /// Cosine similarity of two books' centred rating vectors as `a`'s neighbour list holds it
    /// (0 when either has none).
    pub fn similarity(&self, a: BookId, b: BookId) -> f64 {
        let (Ok(a), Ok(b)) = (u32::try_from(a), u32::try_from(b)) else {
            return 0.0;
        };
        let dot = self
            .books
            .get(&a)
            .and_then(|x| {
                x.neighbours
                    .binary_search_by_key(&b, |&(id, _)| id)
                    .ok()
                    .map(|i| x.neighbours[i].1)
            })
            .unwrap_or(0);
        self.cosine(a, b, dot)
    }

    fn norm2(&self, book: u32) -> i64 {
        self.books.get(&book).map_or(0, |b| b.norm2)
    }

    fn cosine(&self, a: u32, b: u32, dot: i32) -> f64 {
        let (na, nb) = (self.norm2(a), self.norm2(b));
        if dot == 0 || na <= 0 || nb <= 0 {
            0.0
        } else {
            f64::from(dot) / ((na as f64).sqrt() * (nb as f64).sqrt())
        }
    }

    /// Books positively similar to `book`, most similar first, ties by id.
    pub fn similar(&self, book: BookId) -> Vec<(BookId, f64)> {
        let Ok(book) = u32::try_from(book) else {
            return Vec::new();
        };
        let mut out: Vec<(BookId, f64)> = self
            .books
            .get(&book)
            .map(|b| b.neighbours.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|&&(_, d)| d > 0)
            .map(|&(other, d)| (BookId::from(other), self.cosine(book, other, d)))
            .filter(|&(_, s)| s > 0.0)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
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

    /// Personal picks for `user`: books similar to the most recent `L` they rated 4 or 5 stars,
    /// weighted by how much they liked each, never one they rated. Each pick names the liked book
    /// that contributed most (ties by lower id). Best first, ties by id.
    pub fn for_user(&self, user: &str) -> Vec<Pick> {
        let Some(rated) = self.users.get(user) else {
            return Vec::new();
        };
        let mut ids: Vec<u32> = rated.iter().map(|r| r.book).collect();
        ids.sort_unstable();
        let mut picks: HashMap<BookId, Pick> = HashMap::new();
        let seeds = rated
            .iter()
            .rev()
            .filter(|r| r.stars >= 4)
            .take(self.limits.seeds);
        for r in seeds {
            let (liked, w) = (BookId::from(r.book), f64::from(r.centred()));
            for (candidate, sim) in self.similar(liked) {
                if ids.binary_search(&(candidate as u32)).is_ok() {
                    continue;
                }
                let contribution = sim * w;
                let p = picks.entry(candidate).or_insert(Pick {
                    book: candidate,
                    score: 0.0,
                    because: liked,
                    best: f64::MIN,
                });
                p.score += contribution;
                if contribution > p.best || (contribution == p.best && liked < p.because) {
                    p.best = contribution;
                    p.because = liked;
                }
            }
        }
        let mut out: Vec<Pick> = picks.into_values().collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.book.cmp(&b.book)));
        out
    }

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

    /// Estimated heap bytes held (see the module documentation for the bound).
    pub fn approx_bytes(&self) -> usize {
        self.stats().approx_bytes
    }

    /// Per book: norm and neighbour list, sorted by book (for comparing two indexes).
    #[cfg(test)]
    fn snapshot(&self) -> Vec<(u32, Book)> {
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

/// Removes `list[p]`: when it was in the window, window-removes it and lets the rating just
/// before the window re-enter.
fn remove_at(books: &mut Books<'_>, list: &mut Vec<Rated>, p: usize, c: usize) {
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
fn push(books: &mut Books<'_>, list: &mut Vec<Rated>, r: Rated, c: usize) {
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

/// A personal recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub book: BookId,
    pub score: f64,
    /// The liked book that contributed most.
    pub because: BookId,
    best: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::SplitMix64;

    fn index(ratings: &[(&str, BookId, i64)]) -> SimilarityIndex {
        let mut ix = SimilarityIndex::default();
        for &(u, b, s) in ratings {
            ix.apply(u, b, Some(s));
        }
        ix
    }

    #[test]
    fn books_liked_by_the_same_readers_are_similar() {
        let ix = index(&[
            ("a", 1, 5),
            ("a", 2, 5),
            ("b", 1, 4),
            ("b", 2, 5),
            ("b", 3, 1),
        ]);
        let sim = ix.similar(1);
        assert_eq!(sim[0].0, 2);
        assert!(sim[0].1 > 0.9);
        assert!(
            sim.iter().all(|&(b, _)| b != 3),
            "a disliked book is not similar"
        );
    }

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

    #[test]
    fn ties_are_broken_by_book_id() {
        let ix = index(&[("a", 1, 5), ("a", 3, 5), ("a", 2, 5)]);
        let ids: Vec<_> = ix.similar(1).into_iter().map(|(b, _)| b).collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn personal_picks_skip_rated_books_and_name_the_liked_book_behind_them() {
        let ix = index(&[
            ("a", 10, 5),
            ("a", 20, 5),
            ("a", 30, 5),
            ("b", 10, 5),
            ("b", 40, 4),
            ("me", 10, 5),
            ("me", 20, 1),
        ]);
        let picks = ix.for_user("me");
        let ids: Vec<_> = picks.iter().map(|p| p.book).collect();
        assert!(!ids.contains(&10) && !ids.contains(&20), "{ids:?}");
        assert_eq!(ids, vec![30, 40]);
        assert!(picks.iter().all(|p| p.because == 10));
    }

    #[test]
    fn a_user_without_liked_books_gets_no_personal_picks() {
        let ix = index(&[("a", 1, 5), ("a", 2, 5), ("me", 1, 2)]);
        assert!(ix.for_user("me").is_empty());
        assert!(ix.for_user("nobody").is_empty());
    }

    #[test]
    fn only_the_most_recent_liked_books_seed_personal_picks() {
        let mut ix = SimilarityIndex::new(Limits {
            seeds: 1,
            ..Limits::default()
        });
        for (u, b, s) in [("a", 1, 5), ("a", 2, 5), ("b", 3, 5), ("b", 4, 5)] {
            ix.apply(u, b, Some(s));
        }
        ix.apply("me", 1, Some(5));
        ix.apply("me", 3, Some(5)); // the most recent liked book
        let ids: Vec<_> = ix.for_user("me").iter().map(|p| p.book).collect();
        assert_eq!(ids, vec![4]);
    }

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
