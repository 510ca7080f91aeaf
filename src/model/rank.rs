//! Exact ranks of streamed scores in bounded memory.
//!
//! A row's rank is its position when all rows are sorted by score, best first, ties in input
//! order. Percentiles, deciles and `--top` only need to know, for each row, which of a few cut
//! positions it lies past, so instead of holding every score we find the score at each cut
//! position by radix selection over a spool file of scores (eight passes of one byte each, a
//! 256-bucket histogram per distinct prefix), then stream the rows once more.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// A key that sorts ascending as scores sort descending (total order, NaN last).
pub fn descending_key(score: f64) -> u64 {
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    !ascending
}

/// Scores appended in input order to a file of little-endian f64.
pub struct ScoreSpool {
    writer: BufWriter<std::fs::File>,
    file: tempfile::NamedTempFile,
    count: u64,
}

impl ScoreSpool {
    pub fn new_in(dir: &Path) -> std::io::Result<ScoreSpool> {
        let file = tempfile::Builder::new()
            .prefix(".audience-ranks-")
            .tempfile_in(dir)?;
        let writer = BufWriter::with_capacity(1 << 20, file.reopen()?);
        Ok(ScoreSpool {
            writer,
            file,
            count: 0,
        })
    }

    pub fn push(&mut self, score: f64) -> std::io::Result<()> {
        self.count += 1;
        self.writer.write_all(&score.to_le_bytes())
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every key, in input order.
    fn for_each_key(&mut self, mut f: impl FnMut(u64)) -> std::io::Result<()> {
        self.writer.flush()?;
        let mut reader = BufReader::with_capacity(1 << 20, self.file.reopen()?);
        let mut buffer = [0u8; 8];
        for _ in 0..self.count {
            reader.read_exact(&mut buffer)?;
            f(descending_key(f64::from_le_bytes(buffer)));
        }
        Ok(())
    }

    /// For each position (0-based, best first), the key of the row there and how many rows
    /// have a strictly better score.
    pub fn select(&mut self, positions: &[u64]) -> std::io::Result<Vec<Cut>> {
        // Per target: the key's known high bits, the rank left inside that prefix, rows before it.
        let mut state: Vec<(u64, u64, u64)> = positions.iter().map(|&p| (0, p, 0)).collect();
        for pass in 0..8u32 {
            let shift = 56 - 8 * pass;
            let prefix_of = |key: u64| if pass == 0 { 0 } else { key >> (shift + 8) };
            let mut prefixes: Vec<u64> = state.iter().map(|s| s.0).collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            let mut histograms = vec![[0u64; 256]; prefixes.len()];
            self.for_each_key(|key| {
                if let Ok(i) = prefixes.binary_search(&prefix_of(key)) {
                    histograms[i][((key >> shift) & 0xff) as usize] += 1;
                }
            })?;
            for (prefix, rank, before) in &mut state {
                let i = prefixes
                    .binary_search(prefix)
                    .expect("prefix was histogrammed");
                let mut digit = 255;
                for (d, &count) in histograms[i].iter().enumerate() {
                    if *rank < count {
                        digit = d as u64;
                        break;
                    }
                    *rank -= count;
                    *before += count;
                }
                *prefix = (*prefix << 8) | digit;
            }
        }
        Ok(positions
            .iter()
            .zip(state)
            .map(|(&position, (key, _, before))| Cut {
                position,
                key,
                before,
            })
            .collect())
    }
}

/// A cut position and the row that sits there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub position: u64,
    pub key: u64,
    /// Rows with a strictly better score.
    pub before: u64,
}

/// Streams rows in input order and tells, for each, how many cuts it lies at or past.
pub struct CutCounter {
    cuts: Vec<Cut>,
    equal_seen: HashMap<u64, u64>,
}

impl CutCounter {
    pub fn new(cuts: Vec<Cut>) -> CutCounter {
        let equal_seen = cuts.iter().map(|c| (c.key, 0)).collect();
        CutCounter { cuts, equal_seen }
    }

    /// The number of cuts whose position is <= this row's position. Call once per row, in input
    /// order.
    pub fn passed(&mut self, score: f64) -> usize {
        let key = descending_key(score);
        let seen = self.equal_seen.get(&key).copied();
        let passed = self
            .cuts
            .iter()
            .filter(|c| key > c.key || (key == c.key && c.before + seen.unwrap_or(0) >= c.position))
            .count();
        if let Some(seen) = self.equal_seen.get_mut(&key) {
            *seen += 1;
        }
        passed
    }
}

/// The first position of each bin after the first when `n` rows are cut into `bins` bins the
/// way `metrics::bin_of_position` cuts them. Positions past the end are left out.
pub fn bin_starts(n: u64, bins: usize) -> Vec<u64> {
    let bin = |p: u64| crate::metrics::bin_of_position(p as usize, n as usize, bins);
    (2..=bins)
        .filter_map(|b| {
            // Smallest position whose bin is >= b (bins never decrease with position).
            let (mut lo, mut hi) = (0u64, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if bin(mid) >= b {
                    hi = mid
                } else {
                    lo = mid + 1
                }
            }
            (lo < n).then_some(lo)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn keys_order_descending() {
        let values = [
            f64::INFINITY,
            1.0,
            0.5,
            0.0,
            -0.0,
            -1e-300,
            -2.0,
            f64::NEG_INFINITY,
        ];
        for w in values.windows(2) {
            assert!(descending_key(w[0]) <= descending_key(w[1]), "{w:?}");
        }
    }

    #[test]
    fn cuts_match_a_full_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Many ties: scores from a small set, plus some unique ones.
        let scores: Vec<f64> = (0..5000)
            .map(|_| {
                if rng.random::<f64>() < 0.5 {
                    (rng.random_range(0..20) as f64) / 20.0
                } else {
                    rng.random::<f64>()
                }
            })
            .collect();
        let mut spool = ScoreSpool::new_in(dir.path()).unwrap();
        for &s in &scores {
            spool.push(s).unwrap();
        }
        // Reference ranks: sort by (score desc, input order).
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut position = vec![0u64; scores.len()];
        for (p, &r) in order.iter().enumerate() {
            position[r] = p as u64;
        }
        for bins in [10usize, 100] {
            let starts = bin_starts(scores.len() as u64, bins);
            assert_eq!(starts.len(), bins - 1);
            let cuts = spool.select(&starts).unwrap();
            let mut counter = CutCounter::new(cuts);
            for (r, &s) in scores.iter().enumerate() {
                let bin = 1 + counter.passed(s);
                let expected =
                    crate::metrics::bin_of_position(position[r] as usize, scores.len(), bins);
                assert_eq!(bin, expected, "row {r}, score {s}");
            }
        }
        // A top-N cut keeps exactly N rows, the best ones.
        let cuts = spool.select(&[123]).unwrap();
        let mut counter = CutCounter::new(cuts);
        let kept: Vec<usize> = (0..scores.len())
            .filter(|&r| counter.passed(scores[r]) == 0)
            .collect();
        assert_eq!(kept.len(), 123);
        assert!(kept.iter().all(|&r| position[r] < 123));
    }

    #[test]
    fn bin_starts_for_small_tables() {
        assert_eq!(bin_starts(12, 10), [2, 3, 4, 5, 6, 8, 9, 10, 11]);
        // Three rows fall in bins 1, 4 and 7: bins 2-4 start at row 1, bins 5-7 at row 2.
        assert_eq!(bin_starts(3, 10), [1, 1, 1, 2, 2, 2]);
        assert!(bin_starts(0, 10).is_empty());
    }
}
