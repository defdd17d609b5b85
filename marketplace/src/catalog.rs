//! The catalog as the marketplace serves it: the cleaned books of the `catalog` crate held in
//! memory in popularity order, with an id index and a search index.

use std::{collections::HashMap, path::Path};

pub use ::catalog::{Book, CatalogError};

use crate::search::SearchIndex;

/// All books, most popular first, with lookups by id and by words.
#[derive(Debug)]
pub struct Catalog {
    books: Vec<Book>,
    by_id: HashMap<i64, u32>,
    /// Built on first use (or by [`Catalog::with_search`]): readers that never search (the
    /// recommendations service) neither pay for it at start nor hold it in memory.
    search: std::sync::OnceLock<SearchIndex>,
}

impl Catalog {
    /// The built-in goodbooks-10k books.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_books(::catalog::builtin_books()?)
    }

    /// The books of the file at `path` when given, the built-in ones otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        Self::from_books(::catalog::load_books(path)?)
    }

    /// Builds the indexes over `books` (any order; they are sorted by popularity here). An empty
    /// list or an id seen twice is an error.
    pub fn from_books(mut books: Vec<Book>) -> Result<Self, CatalogError> {
        ::catalog::sort_by_popularity(&mut books)?;
        books.shrink_to_fit();
        let by_id = books
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id, i as u32))
            .collect();
        Ok(Self {
            books,
            by_id,
            search: std::sync::OnceLock::new(),
        })
    }

    /// Builds the search index now (the marketplace does, before it reports SERVING).
    pub fn with_search(self) -> Self {
        self.search.get_or_init(|| SearchIndex::build(&self.books));
        self
    }

    /// Every book, most popular first (most ratings, ties by id).
    pub fn by_popularity(&self) -> &[Book] {
        &self.books
    }

    pub fn get(&self, id: i64) -> Option<&Book> {
        self.by_id.get(&id).map(|&i| &self.books[i as usize])
    }

    pub fn len(&self) -> usize {
        self.books.len()
    }

    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// Books matching every word of `query`, best first; empty when the query has no words.
    pub fn search(&self, query: &str) -> Vec<&Book> {
        self.search
            .get_or_init(|| SearchIndex::build(&self.books))
            .search(query, &self.books)
            .into_iter()
            .map(|i| &self.books[i as usize])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_found_by_id_and_by_words() {
        let c = Catalog::builtin().unwrap().with_search();
        assert_eq!(c.len(), 10_000);
        assert_eq!(c.by_popularity()[0].id, 1);
        assert_eq!(
            c.get(2).unwrap().authors,
            vec!["J.K. Rowling", "Mary GrandPré"]
        );
        assert!(c.get(10_001).is_none());
        assert_eq!(c.search("hunger games")[0].id, 1);
    }

    #[test]
    fn books_in_any_order_are_served_most_popular_first_and_twins_are_refused() {
        let mut books = ::catalog::builtin_books().unwrap();
        books.truncate(3);
        books.reverse();
        let c = Catalog::from_books(books.clone()).unwrap();
        let ids: Vec<i64> = c.by_popularity().iter().map(|b| b.id).collect();
        assert_eq!(ids, [books[2].id, books[1].id, books[0].id]);
        books.push(books[0].clone());
        let err = Catalog::from_books(books).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
