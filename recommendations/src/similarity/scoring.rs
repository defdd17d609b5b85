//! Scoring: two books are as similar as the cosine of their centred rating vectors, read from
//! the co-rating lists.

use super::index::{BookId, SimilarityIndex};

impl SimilarityIndex {
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
}

#[cfg(test)]
mod tests {
    use crate::similarity::index::index;

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
    fn ties_are_broken_by_book_id() {
        let ix = index(&[("a", 1, 5), ("a", 3, 5), ("a", 2, 5)]);
        let ids: Vec<_> = ix.similar(1).into_iter().map(|(b, _)| b).collect();
        assert_eq!(ids, vec![2, 3]);
    }
}
