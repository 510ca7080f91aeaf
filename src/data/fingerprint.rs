//! A compact fingerprint of the ids a model trained on, kept in its bundle, so that judging the
//! model on rows it learnt from can be noticed.
//!
//! It is a bottom-k sketch: each id is hashed (a fixed, seeded 64-bit hash) and the k smallest
//! hashes are kept, with the largest of them as the threshold. Hashes are uniform, so the ids of
//! another table whose hash falls at or under the threshold are a uniform sample of that table,
//! and the share of them found among the kept hashes estimates the share of that table that
//! trained the model. With at most k training ids the fingerprint holds them all and the count is
//! exact.

use serde::{Deserialize, Serialize};

use super::id_hash;

/// Hashes kept.
pub const FINGERPRINT_HASHES: usize = 1024;

/// The seed of the fingerprint's hash (a constant: bundles written by any run compare).
const FINGERPRINT_SEED: u64 = 0x6175_6469_656e_6365;

/// The fingerprint of a set of ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdFingerprint {
    /// How the ids were hashed.
    pub hash: String,
    /// Ids fingerprinted.
    pub ids: usize,
    /// The largest kept hash (every hash at or under it is kept).
    pub threshold: u64,
    /// The kept hashes, ascending, as 16 hex digits each.
    pub hashes: String,
}

/// What a fingerprint says of another table's ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Ids of the table whose hash falls at or under the threshold (the sample checked).
    pub checked: usize,
    /// Of those, how many are fingerprinted ids.
    pub matched: usize,
    /// matched / checked: the estimated share of the table's rows that are fingerprinted ids.
    pub share: f64,
    /// True when every fingerprinted id was kept, so `matched` is exact.
    pub exact: bool,
}

fn hash(id: &str) -> u64 {
    id_hash(id, FINGERPRINT_SEED)
}

impl IdFingerprint {
    /// The fingerprint of `ids` (distinct).
    pub fn of<'a>(ids: impl Iterator<Item = &'a str>) -> IdFingerprint {
        let mut hashes: Vec<u64> = ids.map(hash).collect();
        let count = hashes.len();
        if hashes.len() > FINGERPRINT_HASHES {
            hashes.select_nth_unstable(FINGERPRINT_HASHES - 1);
            hashes.truncate(FINGERPRINT_HASHES);
        }
        hashes.sort_unstable();
        hashes.dedup();
        let threshold = if count > FINGERPRINT_HASHES {
            hashes.last().copied().unwrap_or(u64::MAX)
        } else {
            u64::MAX
        };
        IdFingerprint {
            hash: "audience id_hash, fixed seed".into(),
            ids: count,
            threshold,
            hashes: hashes.iter().map(|h| format!("{h:016x}")).collect(),
        }
    }

    fn kept(&self) -> Option<Vec<u64>> {
        let text = self.hashes.as_bytes();
        if !text.len().is_multiple_of(16) {
            return None;
        }
        text.chunks(16)
            .map(|c| u64::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect()
    }

    /// How many of `ids` this fingerprint recognises. None when the fingerprint is malformed or
    /// no id falls in its sample.
    pub fn overlap<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Option<Overlap> {
        let kept = self.kept()?;
        let (mut checked, mut matched) = (0, 0);
        for id in ids {
            let h = hash(id);
            if h <= self.threshold {
                checked += 1;
                if kept.binary_search(&h).is_ok() {
                    matched += 1;
                }
            }
        }
        (checked > 0).then(|| Overlap {
            checked,
            matched,
            share: matched as f64 / checked as f64,
            exact: self.threshold == u64::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_are_exact() {
        let training: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
        let f = IdFingerprint::of(training.iter().map(String::as_str));
        assert_eq!(f.ids, 500);
        assert_eq!(f.threshold, u64::MAX);
        let other: Vec<String> = (400..1400).map(|i| format!("c{i}")).collect();
        let o = f.overlap(other.iter().map(String::as_str)).unwrap();
        assert_eq!((o.checked, o.matched, o.exact), (1000, 100, true));
    }

    #[test]
    fn large_sets_estimate_the_share() {
        let training: Vec<String> = (0..100_000).map(|i| format!("{i}")).collect();
        let f = IdFingerprint::of(training.iter().map(String::as_str));
        assert_eq!(f.hashes.len(), 16 * FINGERPRINT_HASHES);
        // A table of which 30% trained the model.
        let other: Vec<String> = (70_000..170_000).map(|i| format!("{i}")).collect();
        let o = f.overlap(other.iter().map(String::as_str)).unwrap();
        assert!(!o.exact);
        assert!((o.share - 0.3).abs() < 0.06, "{o:?}");
        // Disjoint ids: nothing matches.
        let fresh: Vec<String> = (0..100_000).map(|i| format!("n{i}")).collect();
        assert_eq!(
            f.overlap(fresh.iter().map(String::as_str)).unwrap().matched,
            0
        );
        // Round trip through JSON.
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<IdFingerprint>(&json).unwrap(), f);
    }
}
