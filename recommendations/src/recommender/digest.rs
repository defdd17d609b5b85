//! A fingerprint of the ratings an index holds, to compare replicas with each other and with a
//! rebuild from the ratings table.

use super::state::Recommender;

impl Recommender {
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
