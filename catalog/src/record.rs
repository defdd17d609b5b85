//! A goodbooks-10k style `books.csv` cleaned into plain book records, most popular first.
//! Shared with `build.rs`, which cleans the built-in file the same way and packs the result (so:
//! no `crate::` paths beyond the files `build.rs` includes).

use serde::Deserialize;

use crate::{
    error::CatalogError,
    wire::{Reader, Writer},
};

/// One book, cleaned.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub id: i64,
    pub title: String,
    pub original_title: String,
    pub authors: Vec<String>,
    pub original_publication_year: Option<i32>,
    pub isbn: String,
    pub isbn13: String,
    pub language_code: String,
    pub average_rating: f64,
    pub ratings_count: i64,
    /// Counts of 1..=5 star ratings.
    pub rating_histogram: [i64; 5],
    pub image_url: String,
    pub small_image_url: String,
}

/// A raw `books.csv` row as the source writes it.
#[derive(Debug, Deserialize)]
struct Row {
    book_id: i64,
    isbn: String,
    isbn13: String,
    authors: String,
    original_publication_year: String,
    original_title: String,
    title: String,
    language_code: String,
    average_rating: f64,
    work_ratings_count: i64,
    ratings_1: i64,
    ratings_2: i64,
    ratings_3: i64,
    ratings_4: i64,
    ratings_5: i64,
    image_url: String,
    small_image_url: String,
}

/// Parses goodbooks-10k style CSV bytes: every book cleaned, most popular first (most ratings,
/// ties by id); an empty file or an id seen twice is an error.
pub fn parse(bytes: &[u8]) -> Result<Vec<Book>, CatalogError> {
    let mut reader = csv::Reader::from_reader(bytes);
    let mut books = Vec::with_capacity(10_000);
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.map_err(|source| CatalogError::Csv { row: i + 2, source })?;
        books.push(clean(row).map_err(|message| CatalogError::Invalid {
            row: i + 2,
            message,
        })?);
    }
    sort_by_popularity(&mut books)?;
    Ok(books)
}

/// Sorts `books` most popular first (most ratings, ties by id); an empty list or an id seen
/// twice is an error.
pub fn sort_by_popularity(books: &mut [Book]) -> Result<(), CatalogError> {
    if books.is_empty() {
        return Err(CatalogError::Empty);
    }
    books.sort_by_key(|b| b.id);
    if let Some(w) = books.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(CatalogError::Invalid {
            row: 0,
            message: format!("book id {} appears twice", w[0].id),
        });
    }
    books.sort_by(|a, b| b.ratings_count.cmp(&a.ratings_count).then(a.id.cmp(&b.id)));
    Ok(())
}

const PACKED_MAGIC: &[u8; 8] = b"bkrecs01";

/// Books packed as [`unpack`] reads them: what `build.rs` makes of the built-in CSV, so that a
/// start decodes records instead of parsing and cleaning CSV again.
pub fn pack(books: &[Book]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(books.len() * 256));
    w.bytes(PACKED_MAGIC);
    w.u32(books.len() as u32);
    for b in books {
        w.i64(b.id);
        w.i64(b.original_publication_year.map_or(i64::MIN, i64::from));
        w.f64(b.average_rating);
        w.i64(b.ratings_count);
        for n in b.rating_histogram {
            w.i64(n);
        }
        w.u32(b.authors.len() as u32);
        for a in &b.authors {
            w.str(a);
        }
        for s in [
            &b.title,
            &b.original_title,
            &b.isbn,
            &b.isbn13,
            &b.language_code,
            &b.image_url,
            &b.small_image_url,
        ] {
            w.str(s);
        }
    }
    w.0
}

/// Reads what [`pack`] wrote, in the same order.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Book>, CatalogError> {
    let mut r = Reader::new(bytes, PACKED_MAGIC)?;
    let n = r.u32()? as usize;
    let mut books = Vec::with_capacity(n.min(bytes.len() / 64));
    for _ in 0..n {
        let id = r.i64()?;
        let year = r.i64()?;
        let average_rating = r.f64()?;
        let ratings_count = r.i64()?;
        let rating_histogram = [r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?];
        let authors = (0..r.u32()?)
            .map(|_| r.str("an author is not UTF-8").map(str::to_owned))
            .collect::<Result<_, _>>()?;
        let mut text = || r.str("a text field is not UTF-8").map(str::to_owned);
        books.push(Book {
            id,
            title: text()?,
            original_title: text()?,
            authors,
            original_publication_year: i32::try_from(year).ok(),
            isbn: text()?,
            isbn13: text()?,
            language_code: text()?,
            average_rating,
            ratings_count,
            rating_histogram,
            image_url: text()?,
            small_image_url: text()?,
        });
    }
    r.end()?;
    Ok(books)
}

fn clean(row: Row) -> Result<Book, String> {
    if row.book_id <= 0 {
        return Err(format!("book_id must be positive, got {}", row.book_id));
    }
    let title = row.title.trim().to_owned();
    if title.is_empty() {
        return Err("title is empty".into());
    }
    let isbn = clean_isbn10(&row.isbn);
    let isbn13 = clean_isbn13(&row.isbn13, &isbn);
    Ok(Book {
        id: row.book_id,
        title,
        original_title: row.original_title.trim().to_owned(),
        authors: row
            .authors
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        original_publication_year: parse_year(&row.original_publication_year),
        isbn,
        isbn13,
        language_code: row.language_code.trim().to_owned(),
        average_rating: row.average_rating,
        ratings_count: row.work_ratings_count,
        rating_histogram: [
            row.ratings_1,
            row.ratings_2,
            row.ratings_3,
            row.ratings_4,
            row.ratings_5,
        ],
        image_url: clean_cover(&row.image_url),
        small_image_url: clean_cover(&row.small_image_url),
    })
}

/// "2008.0" → 2008, "-720.0" → -720, "" → unknown.
fn parse_year(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>()
        .ok()
        .filter(|y| y.is_finite() && y.fract() == 0.0 && y.abs() < 10_000.0)
        .map(|y| y as i32)
}

/// The source drops leading zeros of ISBN-10s ("439023483" is 0439023483).
fn clean_isbn10(s: &str) -> String {
    let s = s.trim();
    let valid = !s.is_empty()
        && s.len() <= 10
        && s.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (c == 'X' && i == s.len() - 1));
    if valid {
        format!("{s:0>10}")
    } else {
        String::new()
    }
}

/// The ISBN-13 derived from a known ISBN-10 when there is one; otherwise the source's
/// float-notation value ("9.78043902348e+12"), whose lost last digit is the check digit.
fn clean_isbn13(raw: &str, isbn10: &str) -> String {
    if isbn10.len() == 10 {
        return isbn13_from_digits(&format!("978{}", &isbn10[..9]));
    }
    let Ok(value) = raw.trim().parse::<f64>() else {
        return String::new();
    };
    if !(9.7e12..1.0e13).contains(&value) {
        return String::new();
    }
    let digits = format!("{value:.0}");
    isbn13_from_digits(&digits[..12])
}

/// Appends the ISBN-13 check digit to twelve digits.
fn isbn13_from_digits(first12: &str) -> String {
    let sum: u32 = first12
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{first12}{}", (10 - sum % 10) % 10)
}

/// The CDN's "no photo" placeholder is no cover at all.
fn clean_cover(url: &str) -> String {
    let url = url.trim();
    if url.is_empty() || url.contains("/nophoto/") {
        String::new()
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "book_id,isbn,isbn13,authors,original_publication_year,original_title,title,language_code,average_rating,work_ratings_count,ratings_1,ratings_2,ratings_3,ratings_4,ratings_5,image_url,small_image_url\n";

    #[test]
    fn the_builtin_catalog_holds_ten_thousand_books_most_popular_first() {
        let books = crate::builtin_books().unwrap();
        assert_eq!(books.len(), 10_000);
        assert_eq!(books[0].id, 1);
        assert_eq!(books[0].title, "The Hunger Games (The Hunger Games, #1)");
        assert!(
            books
                .windows(2)
                .all(|w| w[0].ratings_count >= w[1].ratings_count)
        );
    }

    #[test]
    fn quirks_of_the_source_are_cleaned() {
        let books = crate::builtin_books().unwrap();
        let get = |id: i64| books.iter().find(|b| b.id == id).unwrap();
        let hg = get(1);
        assert_eq!(hg.isbn, "0439023483");
        assert_eq!(hg.isbn13, "9780439023481");
        assert_eq!(hg.original_publication_year, Some(2008));
        assert_eq!(hg.authors, vec!["Suzanne Collins"]);
        let hp = get(2);
        assert_eq!(hp.authors, vec!["J.K. Rowling", "Mary GrandPré"]);
        assert_eq!(hp.rating_histogram.iter().sum::<i64>(), hp.ratings_count);
    }

    #[test]
    fn an_isbn10_regains_its_leading_zeros_and_a_malformed_one_is_dropped() {
        assert_eq!(clean_isbn10("439023483"), "0439023483");
        assert_eq!(clean_isbn10("080213825X"), "080213825X");
        assert_eq!(clean_isbn10("12X4"), "");
        assert_eq!(clean_isbn10(""), "");
    }

    #[test]
    fn an_isbn13_in_float_notation_gets_its_check_digit_back() {
        assert_eq!(clean_isbn13("9.78043902348e+12", ""), "9780439023481");
        assert_eq!(clean_isbn13("", ""), "");
        assert_eq!(clean_isbn13("nonsense", ""), "");
    }

    #[test]
    fn empty_and_float_years_are_understood() {
        assert_eq!(parse_year("1960.0"), Some(1960));
        assert_eq!(parse_year("-720.0"), Some(-720));
        assert_eq!(parse_year(""), None);
    }

    #[test]
    fn a_nophoto_cover_counts_as_no_cover() {
        assert_eq!(
            clean_cover(
                "https://s.gr-assets.com/assets/nophoto/book/111x148-bcc042a9c91a29c1d680899eff700a03.png"
            ),
            ""
        );
    }

    #[test]
    fn a_broken_row_names_its_line() {
        let csv = format!("{HEADER}1,,,,,,T,,x,1,0,0,0,0,1,,\n");
        let err = parse(csv.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("row 2"), "{err}");
    }

    #[test]
    fn an_id_seen_twice_and_an_empty_file_are_refused() {
        let csv = format!("{HEADER}7,,,,,,A,,4,1,0,0,0,0,1,,\n7,,,,,,B,,4,1,0,0,0,0,1,,\n");
        let err = parse(csv.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("book id 7 appears twice"), "{err}");
        assert!(matches!(parse(HEADER.as_bytes()), Err(CatalogError::Empty)));
    }
}
