//! Values spliced into pages without maud's byte-at-a-time writer: text escaped as maud escapes
//! it, authors, numbers with thousands separators and average ratings. The values repeated on
//! every card (titles, authors, cover addresses, reasons) go through [`Text`].

use crate::model::Book;

/// Text spliced into a page, escaped exactly as maud escapes a `str` (`&`, `<`, `>` and `"`).
/// Most text has nothing to escape: one vectorized pass finds that out, then it is copied whole.
pub struct Text<'a>(pub &'a str);

impl maud::Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        let special = |b: u8| matches!(b, b'&' | b'<' | b'>' | b'"');
        // A fold without an early exit, so that it is vectorized.
        if !self.0.bytes().fold(false, |seen, b| seen | special(b)) {
            buffer.push_str(self.0);
            return;
        }
        let mut rest = self.0;
        while let Some(i) = rest.bytes().position(special) {
            buffer.push_str(&rest[..i]);
            buffer.push_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                _ => "&quot;",
            });
            rest = &rest[i + 1..];
        }
        buffer.push_str(rest);
    }
}

/// The book's authors, comma separated; written (escaped) straight into the page.
pub fn authors(b: &Book) -> Authors<'_> {
    Authors(&b.authors)
}

pub struct Authors<'a>(pub &'a [String]);

impl maud::Render for Authors<'_> {
    fn render_to(&self, buffer: &mut String) {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                buffer.push_str(", ");
            }
            Text(a).render_to(buffer);
        }
    }
}

/// `4942365` as `4,942,365`, written straight into the page.
pub fn thousands(n: i64) -> Thousands {
    Thousands(n)
}

pub struct Thousands(i64);

impl Thousands {
    /// The number with its commas, written from the end of `buf` (20 digits, 6 commas and a
    /// sign at most).
    fn spelled<'a>(&self, buf: &'a mut [u8; 27]) -> &'a str {
        let mut n = self.0.unsigned_abs();
        let mut i = buf.len();
        let mut digits = 0;
        loop {
            if digits > 0 && digits % 3 == 0 {
                i -= 1;
                buf[i] = b',';
            }
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            digits += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if self.0 < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        // Only ASCII digits, commas and a sign were written.
        std::str::from_utf8(&buf[i..]).unwrap_or_default()
    }
}

impl std::fmt::Display for Thousands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.spelled(&mut [0; 27]))
    }
}

impl maud::Render for Thousands {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(self.spelled(&mut [0; 27]));
    }
}

/// A rating as shown, two decimals (`4.34`), written straight into the page.
pub fn stars(average: f64) -> impl maud::Render {
    struct Stars(f64);
    impl maud::Render for Stars {
        fn render_to(&self, buffer: &mut String) {
            use std::fmt::Write as _;
            let _ = write!(buffer, "{:.2}", self.0);
        }
    }
    Stars(average)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(4942365).to_string(), "4,942,365");
        assert_eq!(thousands(999).to_string(), "999");
        assert_eq!(thousands(1000).to_string(), "1,000");
        assert_eq!(thousands(-1000).to_string(), "-1,000");
        assert_eq!(thousands(0).to_string(), "0");
        assert_eq!(
            maud::Render::render(&thousands(1234567)).into_string(),
            "1,234,567"
        );
        assert_eq!(
            thousands(i64::MIN).to_string(),
            "-9,223,372,036,854,775,808"
        );
        let mut escaped = String::new();
        maud::Render::render_to(
            &Authors(&["A <b>".to_owned(), "C & D".to_owned()]),
            &mut escaped,
        );
        assert_eq!(escaped, "A &lt;b&gt;, C &amp; D");
    }

    #[test]
    fn text_is_escaped_exactly_as_maud_escapes_it() {
        use maud::Render as _;
        let long = "Lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(9);
        for s in [
            "",
            "plain",
            "&",
            "\"",
            "<<>>",
            "a&b<c>d\"e'f",
            "Ænid & Odyssey — «grec» <i>",
            "ends with &",
            "&starts",
            &long,
            &format!("{long}<b>{long}&{long}"),
        ] {
            let mut ours = String::from("x");
            Text(s).render_to(&mut ours);
            let mut theirs = String::from("x");
            s.render_to(&mut theirs);
            assert_eq!(ours, theirs, "{s:?}");
        }
    }
}
