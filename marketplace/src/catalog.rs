//! The catalog as the marketplace serves it: the cleaned books of the `catalog` crate held in
//! memory in popularity order, with an id index and a search index.

use std::path::Path;

use ::catalog::SearchIndex;
pub use ::catalog::{Book, CatalogError};

/// All books, most popular first, with lookups by id and by words.
#[derive(Debug)]
pub struct Catalog {
    books: Vec<Book>,
    /// Each id with its book's position, ordered by id: a lookup searches this compact array
    /// (160 KB for 10,000 books) and reads one book, instead of reading a book at every step.
    by_id: Vec<(i64, u32)>,
    search: SearchIndex,
}

impl Catalog {
    /// The built-in goodbooks-10k books, with the index `build.rs` made of them: decoded, not
    /// parsed nor built, so a start takes milliseconds.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::assemble(::catalog::builtin_books()?, SearchIndex::builtin()?)
    }

    /// The books of the file at `path` when given, the built-in ones otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        match path {
            Some(p) => Self::from_books(::catalog::load_books(Some(p))?),
            None => Self::builtin(),
        }
    }

    /// Builds the indexes over `books` (any order; they are sorted by popularity here). An empty
    /// list or an id seen twice is an error.
    pub fn from_books(mut books: Vec<Book>) -> Result<Self, CatalogError> {
        ::catalog::sort_by_popularity(&mut books)?;
        let search = SearchIndex::build(&books);
        Self::assemble(books, search)
    }

    /// `books` must be most popular first with each id once, and `search` their index.
    fn assemble(mut books: Vec<Book>, search: SearchIndex) -> Result<Self, CatalogError> {
        if search.len() != books.len() {
            return Err(CatalogError::Embedded("the index does not match the books"));
        }
        books.shrink_to_fit();
        let mut by_id: Vec<(i64, u32)> = (0u32..).zip(&books).map(|(p, b)| (b.id, p)).collect();
        by_id.sort_unstable();
        Ok(Self {
            books,
            by_id,
            search,
        })
    }

    /// Every book, most popular first (most ratings, ties by id).
    pub fn by_popularity(&self) -> &[Book] {
        &self.books
    }

    pub fn get(&self, id: i64) -> Option<&Book> {
        self.by_id
            .binary_search_by_key(&id, |&(id, _)| id)
            .ok()
            .map(|i| &self.books[self.by_id[i].1 as usize])
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
        let c = Catalog::builtin().unwrap();
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

    fn book(id: i64, title: &str, author: &str, ratings: i64) -> Book {
        Book {
            id,
            title: title.into(),
            original_title: String::new(),
            authors: vec![author.into()],
            original_publication_year: None,
            isbn: String::new(),
            isbn13: String::new(),
            language_code: String::new(),
            average_rating: 4.0,
            ratings_count: ratings,
            rating_histogram: [0; 5],
            image_url: String::new(),
            small_image_url: String::new(),
        }
    }

    fn ids(c: &Catalog, q: &str) -> Vec<i64> {
        c.search(q).iter().map(|b| b.id).collect()
    }

    #[test]
    fn every_word_must_match_in_title_or_authors_whatever_the_case() {
        let c = Catalog::from_books(vec![
            book(1, "Dune", "Frank Herbert", 10),
            book(2, "Dune Messiah", "Frank Herbert", 5),
            book(3, "The Hobbit", "J.R.R. Tolkien", 20),
        ])
        .unwrap();
        assert_eq!(ids(&c, "DUNE herbert"), vec![1, 2]);
        assert_eq!(ids(&c, "tolkien"), vec![3]);
        assert!(ids(&c, "dune tolkien").is_empty());
    }

    #[test]
    fn a_title_match_ranks_above_an_author_match_and_the_whole_title_wins() {
        let c = Catalog::from_books(vec![
            book(1, "Stories", "Emma King", 1000),
            book(2, "The King", "Someone", 10),
            book(3, "King", "Other", 1),
        ])
        .unwrap();
        assert_eq!(ids(&c, "king"), vec![3, 2, 1]);
    }

    #[test]
    fn ties_are_broken_by_popularity_then_id() {
        let c = Catalog::from_books(vec![
            book(5, "Night One", "A", 10),
            book(4, "Night Two", "A", 10),
            book(3, "Night Three", "A", 99),
        ])
        .unwrap();
        assert_eq!(ids(&c, "night"), vec![3, 4, 5]);
    }

    #[test]
    fn words_of_three_letters_or_more_match_as_prefixes() {
        let c = Catalog::from_books(vec![
            book(1, "Harry Potter", "J.K. Rowling", 10),
            book(2, "Hart", "X", 5),
        ])
        .unwrap();
        assert_eq!(ids(&c, "harr"), vec![1]);
        assert_eq!(ids(&c, "har"), vec![1, 2]);
        assert!(ids(&c, "ha").is_empty());
    }

    #[test]
    fn a_query_without_words_finds_nothing() {
        let c = Catalog::from_books(vec![book(1, "Dune", "F", 1)]).unwrap();
        assert!(ids(&c, " ,.! ").is_empty());
    }

    #[test]
    fn the_real_catalog_finds_the_hobbit_first_for_its_title() {
        let c = Catalog::builtin().unwrap();
        let hits = c.search("the hobbit");
        assert!(
            hits[0].title.starts_with("The Hobbit"),
            "{:?}",
            hits[0].title
        );
        assert!(c.search("rowling").len() >= 10);
    }
}
