//! What the recommender answers: popular books by Bayesian average, "readers who liked this
//! also liked", and personal picks filled up with popular books.

use std::sync::Arc;

use super::state::{Recommender, State};
use crate::similarity::BookId;

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

impl Recommender {
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

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::Digest;

    use crate::recommender::loader::{loaded, rating};

    /// The mean of the catalog's stars for `book`.
    fn mean_stars(r: &Recommender, book: BookId) -> f64 {
        let t = r.catalog_tally(r.catalog().position(book).unwrap());
        t.sum as f64 / t.count as f64
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
}
