//! Word search over titles and authors: case-insensitive, every query word must match (whole
//! word, or as a prefix for words of three letters or more), ranked by where and how the words
//! match, ties broken by popularity then id so results are deterministic.

use std::collections::HashMap;

use crate::catalog::Book;

const TITLE_EXACT: f32 = 3.0;
const AUTHOR_EXACT: f32 = 2.5;
const TITLE_PREFIX: f32 = 1.5;
const AUTHOR_PREFIX: f32 = 1.0;
const WHOLE_TITLE_BONUS: f32 = 5.0;
const TITLE_STARTS_BONUS: f32 = 2.0;
/// Query words beyond this many are ignored.
pub const MAX_QUERY_WORDS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Author,
}

/// Lower-cased words of `text`: runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The normalised form of a query: its words joined by single spaces.
pub fn normalize(query: &str) -> String {
    words(query)
        .into_iter()
        .take(MAX_QUERY_WORDS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Inverted index from word to the books (by position) and fields holding it.
#[derive(Debug, Default)]
pub struct SearchIndex {
    /// Sorted by word, so prefixes are a contiguous range.
    postings: Vec<(String, Vec<(u32, Field)>)>,
    /// Each book's normalised title.
    titles: Vec<String>,
}

impl SearchIndex {
    pub fn build(books: &[Book]) -> Self {
        let mut map: HashMap<String, Vec<(u32, Field)>> = HashMap::new();
        let mut titles = Vec::with_capacity(books.len());
        for (i, b) in books.iter().enumerate() {
            let i = i as u32;
            let title_words = words(&b.title);
            titles.push(title_words.join(" "));
            for w in title_words {
                push_unique(map.entry(w).or_default(), (i, Field::Title));
            }
            for a in &b.authors {
                for w in words(a) {
                    push_unique(map.entry(w).or_default(), (i, Field::Author));
                }
            }
        }
        let mut postings: Vec<_> = map.into_iter().collect();
        postings.sort_by(|a, b| a.0.cmp(&b.0));
        Self { postings, titles }
    }

    /// Positions of the books matching every word of `query`, best first.
    pub fn search(&self, query: &str, books: &[Book]) -> Vec<u32> {
        let q: Vec<String> = words(query).into_iter().take(MAX_QUERY_WORDS).collect();
        if q.is_empty() {
            return Vec::new();
        }
        let mut total: Option<HashMap<u32, f32>> = None;
        for w in &q {
            let scores = self.word_scores(w);
            total = Some(match total {
                None => scores,
                Some(acc) => acc
                    .into_iter()
                    .filter_map(|(doc, s)| scores.get(&doc).map(|t| (doc, s + t)))
                    .collect(),
            });
            if total.as_ref().is_some_and(HashMap::is_empty) {
                return Vec::new();
            }
        }
        let phrase = q.join(" ");
        let mut ranked: Vec<(u32, f32)> = total
            .unwrap_or_default()
            .into_iter()
            .map(|(doc, mut s)| {
                let title = &self.titles[doc as usize];
                if *title == phrase {
                    s += WHOLE_TITLE_BONUS;
                } else if title.starts_with(&phrase) {
                    s += TITLE_STARTS_BONUS;
                }
                (doc, s)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(
                    books[b.0 as usize]
                        .ratings_count
                        .cmp(&books[a.0 as usize].ratings_count),
                )
                .then(books[a.0 as usize].id.cmp(&books[b.0 as usize].id))
        });
        ranked.into_iter().map(|(doc, _)| doc).collect()
    }

    /// The best score each book gets for one query word.
    fn word_scores(&self, w: &str) -> HashMap<u32, f32> {
        let mut out: HashMap<u32, f32> = HashMap::new();
        let start = self.postings.partition_point(|(k, _)| k.as_str() < w);
        for (key, docs) in &self.postings[start..] {
            let exact = key == w;
            if !exact && (w.chars().count() < 3 || !key.starts_with(w)) {
                break;
            }
            for &(doc, field) in docs {
                let s = match (exact, field) {
                    (true, Field::Title) => TITLE_EXACT,
                    (true, Field::Author) => AUTHOR_EXACT,
                    (false, Field::Title) => TITLE_PREFIX,
                    (false, Field::Author) => AUTHOR_PREFIX,
                };
                let e = out.entry(doc).or_insert(0.0);
                if s > *e {
                    *e = s;
                }
            }
        }
        out
    }
}

fn push_unique(v: &mut Vec<(u32, Field)>, item: (u32, Field)) {
    if !v.contains(&item) {
        v.push(item);
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Book, Catalog};

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
