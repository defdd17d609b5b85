//! The pieces the catalog's built-in binary forms are made of (the digest, the packed records and
//! the search index): strings back to back, and a little-endian writer and reader. Shared with
//! `build.rs`, which writes those forms.

use crate::error::CatalogError;

/// Strings back to back: string `i` ends at `ends[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Texts {
    pub text: String,
    pub ends: Vec<u32>,
}

impl Texts {
    pub fn with_capacity(bytes: usize, count: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            i => self.ends[i - 1] as usize,
        };
        &self.text[start..self.ends[i] as usize]
    }

    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4
    }

    /// Count, ends, then the text.
    pub fn encode(&self, out: &mut Writer) {
        out.u32(self.ends.len() as u32);
        for &e in &self.ends {
            out.u32(e);
        }
        out.bytes(self.text.as_bytes());
    }

    /// Reads what [`Texts::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>, what: &'static str) -> Result<Self, CatalogError> {
        let n = r.u32()? as usize;
        let ends = r.words(n)?;
        let len = ends.last().map_or(0, |&e| e as usize);
        Self::checked(r.bytes(len)?, ends, what)
    }

    /// `text` cut at `ends`, checked: ends in order, the last at the end, each on a character.
    pub fn checked(text: &[u8], ends: Vec<u32>, what: &'static str) -> Result<Self, CatalogError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| CatalogError::Embedded(what))?
            .to_owned();
        let ordered = ends.windows(2).all(|w| w[0] <= w[1]);
        let whole = ends.last().map_or(0, |&e| e as usize) == text.len();
        if !ordered || !whole || !ends.iter().all(|&e| text.is_char_boundary(e as usize)) {
            return Err(CatalogError::Embedded(what));
        }
        Ok(Self { text, ends })
    }
}

/// Writes little-endian numbers and length-prefixed strings.
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u32(&mut self, n: u32) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    pub fn i64(&mut self, n: i64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    pub fn f64(&mut self, n: f64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    /// Its length, then the string.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
}

/// Reads what a [`Writer`] wrote, front to back; running short is an error, never a panic.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// A reader of `bytes` past their `magic`, which they must start with.
    pub fn new(bytes: &'a [u8], magic: &[u8; 8]) -> Result<Self, CatalogError> {
        bytes
            .strip_prefix(magic)
            .map(Self)
            .ok_or(CatalogError::Embedded("no magic"))
    }

    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], CatalogError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(CatalogError::Embedded("shorter than its count says"))?;
        self.0 = rest;
        Ok(*head)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CatalogError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(CatalogError::Embedded("shorter than its lengths say"))?;
        self.0 = rest;
        Ok(head)
    }

    pub fn u32(&mut self) -> Result<u32, CatalogError> {
        self.take().map(u32::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, CatalogError> {
        self.take().map(i64::from_le_bytes)
    }

    pub fn f64(&mut self) -> Result<f64, CatalogError> {
        self.take().map(f64::from_le_bytes)
    }

    pub fn words(&mut self, n: usize) -> Result<Vec<u32>, CatalogError> {
        // Checked up front: a corrupt count must not reserve gigabytes.
        let bytes = self.bytes(
            n.checked_mul(4)
                .ok_or(CatalogError::Embedded("count overflows"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// A string [`Writer::str`] wrote.
    pub fn str(&mut self, what: &'static str) -> Result<&'a str, CatalogError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| CatalogError::Embedded(what))
    }

    /// Nothing may follow the last field.
    pub fn end(self) -> Result<(), CatalogError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Embedded("longer than its counts say"))
        }
    }
}
