//! The bounds that keep the index's memory and work independent of any reader's activity.

/// The bounds of the index (see [`crate::similarity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `C`: a user's most recent ratings that contribute to co-ratings and norms.
    pub window: usize,
    /// `M`: neighbours kept per book after a cut (a list may grow to `2M` before it is cut).
    pub neighbours: usize,
    /// `L`: the most recent liked books that seed a user's personal picks.
    pub seeds: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: 50,
            neighbours: 100,
            seeds: 50,
        }
    }
}
