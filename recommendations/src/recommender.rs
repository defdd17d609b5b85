//! The recommender: the catalog's rating distributions plus the ratings held here, kept in memory
//! and updated as each rating is stored. Answers popular, similar and personal lists.
//!
//! Memory is bounded by the catalog, not by any reader's activity: the similarity index's bound
//! is documented in [`crate::similarity`]; per catalog book there is its digest entry (id,
//! title, histogram: about 70 bytes) and one tally of local ratings (16 bytes).

use std::sync::{Arc, RwLock};

use catalog::Digest;

use crate::{
    popularity::{Prior, Tally},
    similarity::{BookId, IndexStats, Limits, SimilarityIndex},
    store::RatingRow,
};

/// Where a recommendation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Popular,
    Similar,
    Personal,
}

impl Source {
    /// Every source, in the order of `label`'s arms (keep the two together).
    pub const ALL: [Source; 3] = [Source::Popular, Source::Similar, Source::Personal];

    pub fn label(self) -> &'static str {
        match self {
            Source::Popular => "popular",
            Source::Similar => "similar",
            Source::Personal => "personal",
        }
    }
}

/// One recommended book.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub book_id: BookId,
    pub score: f64,
    pub source: Source,
    pub reason: String,
    pub because_book_id: Option<BookId>,
}

struct State {
    index: SimilarityIndex,
    /// The ratings held here, per catalog book (by its position in the digest).
    local: Vec<Tally>,
    /// Book ids by Bayesian average (best first, ties by id); rebuilt lazily after changes.
    popular: Option<Arc<Vec<(BookId, f64)>>>,
}

/// Recommendations over the catalog and the local ratings.
pub struct Recommender {
    catalog: Digest,
    prior: Prior,
    state: RwLock<State>,
}

impl Recommender {
    /// A recommender over `catalog` with no ratings yet and the default [`Limits`]; load the
    /// stored ratings with [`Recommender::loader`].
    pub fn new(catalog: Digest) -> Self {
        Self::with_limits(catalog, Limits::default())
    }

    pub fn with_limits(catalog: Digest, limits: Limits) -> Self {
        let prior = Prior::from_catalog(catalog.histograms().iter().map(Tally::from_histogram));
        let local = vec![Tally::default(); catalog.len()];
        Self {
            catalog,
            prior,
            state: RwLock::new(State {
                index: SimilarityIndex::new(limits),
                local,
                popular: None,
            }),
        }
    }

    pub fn catalog(&self) -> &Digest {
        &self.catalog
    }

    /// The catalog's ratings of the book at `position`.
    fn catalog_tally(&self, position: usize) -> Tally {
        Tally::from_histogram(&self.catalog.histogram(position))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `user` now rates `book` with `stars` (`None`: no longer rates it). Books
    /// outside the catalog are ignored.
    pub fn record(&self, user: &str, book: BookId, stars: Option<i64>) {
        let Some(position) = self.catalog.position(book) else {
            return;
        };
        let mut s = self.write();
        apply(&mut s, user, (book, position), stars);
    }

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
    /// [`SimilarityIndex::load_user`]).
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

    /// Forgets every rating (to load again after a failed load).
    pub fn clear(&self) {
        let mut s = self.write();
        s.index.clear();
        s.local.fill(Tally::default());
        s.popular = None;
    }

    /// Sizes and memory of the similarity index.
    pub fn stats(&self) -> IndexStats {
        self.read().index.stats()
    }

    /// A fingerprint of the ratings held (every user's set) and of the per-book tallies: two
    /// indexes over the same ratings have the same digest, whatever order the ratings came in.
    pub fn digest(&self) -> IndexDigest {
        let s = self.read();
        let mut hash = Fnv1a::default();
        let sets = s.index.rating_sets();
        let mut ratings = 0;
        for (user, set) in &sets {
            hash.write(user.as_bytes());
            hash.write(&[0xff]);
            for r in set {
                hash.write(&r.book.to_le_bytes());
                hash.write(&r.stars.to_le_bytes());
            }
            ratings += set.len();
        }
        for t in &s.local {
            hash.write(&t.count.to_le_bytes());
            hash.write(&t.sum.to_le_bytes());
        }
        IndexDigest {
            users: sets.len(),
            ratings,
            digest: format!("{:016x}", hash.0),
        }
    }

    fn title(&self, id: BookId) -> &str {
        self.catalog.title_of(id).unwrap_or("a book")
    }

    /// Every book by Bayesian average, best first; `offset`/`limit` select a page.
    pub fn popular(&self, offset: usize, limit: usize) -> (Vec<Recommendation>, usize) {
        let ranked = self.ranked_popular();
        let total = ranked.len();
        let page = ranked
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&(id, score)| self.popular_rec(id, score))
            .collect();
        (page, total)
    }

    fn popular_rec(&self, id: BookId, score: f64) -> Recommendation {
        let count = self.catalog.position(id).map_or(0, |p| {
            self.catalog_tally(p).count + self.read().local[p].count
        });
        Recommendation {
            book_id: id,
            score,
            source: Source::Popular,
            reason: format!("Popular with readers: {score:.2} stars over {count} ratings"),
            because_book_id: None,
        }
    }

    fn ranked_popular(&self) -> Arc<Vec<(BookId, f64)>> {
        if let Some(p) = &self.read().popular {
            return p.clone();
        }
        let mut s = self.write();
        let State { local, popular, .. } = &mut *s;
        let ranked = popular.get_or_insert_with(|| {
            let mut v: Vec<(BookId, f64)> = local
                .iter()
                .enumerate()
                .map(|(p, &t)| {
                    let score = self.prior.score(self.catalog_tally(p), t);
                    (self.catalog.id(p), score)
                })
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            Arc::new(v)
        });
        ranked.clone()
    }

    /// "Readers who liked this also liked": most similar first, at most `limit`.
    pub fn similar(&self, book: BookId, limit: usize) -> Vec<Recommendation> {
        let s = self.read();
        let title = self.title(book);
        s.index
            .similar(book)
            .into_iter()
            .take(limit)
            .map(|(id, score)| Recommendation {
                book_id: id,
                score,
                source: Source::Similar,
                reason: format!("Readers who liked {title} also liked this"),
                because_book_id: Some(book),
            })
            .collect()
    }

    /// Personal picks for `user`, then popular books they have not rated to fill `limit`.
    pub fn for_user(&self, user: &str, limit: usize) -> Vec<Recommendation> {
        let (mut out, rated): (Vec<Recommendation>, Vec<BookId>) = {
            let s = self.read();
            let picks = s.index.for_user(user);
            let out = picks
                .into_iter()
                .take(limit)
                .map(|p| Recommendation {
                    book_id: p.book,
                    score: p.score,
                    source: Source::Personal,
                    reason: format!("Because you liked {}", self.title(p.because)),
                    because_book_id: Some(p.because),
                })
                .collect();
            (out, s.index.rated_books(user))
        };
        if out.len() < limit {
            let taken: Vec<BookId> = out.iter().map(|r| r.book_id).collect();
            let fill: Vec<(BookId, f64)> = self
                .ranked_popular()
                .iter()
                .copied()
                .filter(|(id, _)| rated.binary_search(id).is_err() && !taken.contains(id))
                .take(limit - out.len())
                .collect();
            out.extend(
                fill.into_iter()
                    .map(|(id, score)| self.popular_rec(id, score)),
            );
        }
        out
    }
}

/// What [`Recommender::digest`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDigest {
    pub users: usize,
    pub ratings: usize,
    /// 64-bit FNV-1a of the ratings and tallies, in hex.
    pub digest: String,
}

/// FNV-1a, 64 bits: a stable fingerprint (not a defence against anyone).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The recommender this process serves from: absent until the first load, replaced whole
/// when a replica reloads. Readers take the current one and keep it for their call.
#[derive(Clone, Default)]
pub struct Engine(Arc<RwLock<Option<Arc<Recommender>>>>);

impl Engine {
    pub fn get(&self) -> Option<Arc<Recommender>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, recommender: Arc<Recommender>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(recommender);
    }
}

/// Applies one rating of the catalog book `(id, position)`.
fn apply(s: &mut State, user: &str, (book, position): (BookId, usize), stars: Option<i64>) {
    let old = s.index.apply(user, book, stars);
    let tally = &mut s.local[position];
    if let Some(o) = old {
        tally.remove(o);
    }
    if let Some(n) = stars.filter(|n| (1..=5).contains(n)) {
        tally.add(n);
    }
    s.popular = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(u: &str, b: BookId, s: i64) -> RatingRow {
        RatingRow {
            user_id: u.into(),
            book_id: b,
            stars: s,
            updated_at_ms: 0,
        }
    }

    /// The mean of the catalog's stars for `book`.
    fn mean_stars(r: &Recommender, book: BookId) -> f64 {
        let t = r.catalog_tally(r.catalog().position(book).unwrap());
        t.sum as f64 / t.count as f64
    }

    fn loaded(rows: &[RatingRow]) -> Recommender {
        let r = Recommender::new(Digest::builtin().unwrap());
        let mut loader = r.loader();
        for row in rows {
            loader.push(row.clone());
        }
        loader.finish();
        r
    }

    #[test]
    fn popular_books_follow_the_catalogs_real_ratings() {
        let r = Recommender::new(Digest::builtin().unwrap());
        let (top, total) = r.popular(0, 10);
        assert_eq!(total, 10_000);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        // Well-loved, much-rated books lead: every top-ten book averages above 4.3.
        for rec in &top {
            let stars = mean_stars(&r, rec.book_id);
            let title = r.catalog().title_of(rec.book_id).unwrap();
            assert!(stars > 4.3, "{title} {stars}");
        }
    }

    #[test]
    fn personal_picks_come_first_then_unrated_popular_books_fill_the_list() {
        let r = loaded(&[rating("a", 1, 5), rating("a", 2, 5), rating("me", 1, 5)]);
        let recs = r.for_user("me", 5);
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].book_id, 2);
        assert_eq!(recs[0].source, Source::Personal);
        assert_eq!(recs[0].because_book_id, Some(1));
        assert!(
            recs[0]
                .reason
                .starts_with("Because you liked The Hunger Games")
        );
        assert!(
            recs[1..]
                .iter()
                .all(|x| x.source == Source::Popular && x.book_id != 1)
        );
    }

    #[test]
    fn a_new_rating_changes_what_is_similar_at_once() {
        let r = Recommender::new(Digest::builtin().unwrap());
        assert!(r.similar(1, 5).is_empty());
        r.record("a", 1, Some(5));
        r.record("a", 7, Some(4));
        assert_eq!(r.similar(1, 5)[0].book_id, 7);
        r.record("a", 7, None);
        assert!(r.similar(1, 5).is_empty());
    }

    #[test]
    fn thirty_local_fans_lift_a_well_rated_mid_ranked_book_into_the_top_twenty() {
        let r = Recommender::new(Digest::builtin().unwrap());
        let (ranked, _) = r.popular(0, 10_000);
        let (book, before) = ranked
            .iter()
            .enumerate()
            .skip(500)
            .find(|(_, x)| mean_stars(&r, x.book_id) >= 4.3)
            .map(|(i, x)| (x.book_id, i))
            .unwrap();
        for u in 0..30 {
            r.record(&format!("fan{u}"), book, Some(5));
        }
        let (top, _) = r.popular(0, 20);
        assert!(
            top.iter().any(|x| x.book_id == book),
            "book {book} (rank {before}) is not in the top twenty: {top:?}"
        );
        // One perfect rating does not do it.
        let r = Recommender::new(Digest::builtin().unwrap());
        r.record("fan", book, Some(5));
        assert!(r.popular(0, 20).0.iter().all(|x| x.book_id != book));
    }

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
