//! Exact ranks of streamed scores in bounded memory.
//!
//! A row's rank is its position when all rows are sorted by score, best first, rows of equal score
//! ordered by their tie key (a seeded hash of the id, `metrics::tie_key`), and rows whose score and
//! tie key are both equal (a 64-bit hash collision) in input order. Percentiles, deciles and
//! `--top` only need to know, for each row, which of a few cut positions it lies past, so instead
//! of holding every score we find the (score, tie key) at each cut position from a spool (held in
//! memory while it is small, a file past that), then stream the rows once more. Up to
//! [`SORTED_SELECT_ROWS`] rows the keys of the buckets the cuts fall in are sorted in memory;
//! past that, the cuts are found by radix selection over the file (one byte of the 128-bit
//! key per pass, a 256-bucket histogram per distinct prefix: eight passes for the score, and more
//! over the tie key only while some cut's row shares its score with others), so memory stays
//! bounded whatever the number of rows.

use std::io::{Read, Write};
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

/// The score `descending_key` was made from.
pub fn score_of_key(key: u64) -> f64 {
    let ascending = !key;
    let bits = if ascending >> 63 == 1 {
        ascending & !(1 << 63)
    } else {
        !ascending
    };
    f64::from_bits(bits)
}

/// The full sort key of a row: score (best first), then tie key.
fn full_key(score: f64, tie: u64) -> u128 {
    (u128::from(descending_key(score)) << 64) | u128::from(tie)
}

/// The full sort key of a spooled row's 16 bytes.
fn key_of(pair: &[u8]) -> u128 {
    let (score, tie) = pair_of(pair);
    full_key(score, tie)
}

/// Rows whose keys `ScoreSpool::select` sorts in memory (16 bytes each) rather than selecting
/// them by passes over the spool file.
pub const SORTED_SELECT_ROWS: u64 = 1 << 22;

/// `select_sorted` counts rows into up to 2^SELECT_BUCKET_BITS buckets of scores.
const SELECT_BUCKET_BITS: u32 = 16;

/// Rows of a spool handed out at a time, a block of score's second pass (few in tests, so that
/// they cross block boundaries).
const SPOOL_READ_ROWS: usize = if cfg!(test) { 1000 } else { 1 << 16 };

/// A spooled row's score and tie key from its 16 bytes.
pub fn pair_of(bytes: &[u8]) -> (f64, u64) {
    let score = f64::from_le_bytes(bytes[..8].try_into().expect("16-byte pairs"));
    let tie = u64::from_le_bytes(bytes[8..16].try_into().expect("16-byte pairs"));
    (score, tie)
}

/// A spool's rows read back in input order, a block at a time.
pub struct SpoolRows<'a> {
    reader: crate::output::SpillReader<'a>,
    /// The block read from a file (rows in memory are handed out where they lie).
    buffer: Vec<u8>,
    left: u64,
}

impl SpoolRows<'_> {
    /// The next block of rows (16 bytes each), or None at the end.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<&[u8]>> {
        if self.left == 0 {
            return Ok(None);
        }
        let rows = self.left.min(SPOOL_READ_ROWS as u64) as usize;
        self.left -= rows as u64;
        match &mut self.reader {
            crate::output::SpillReader::Memory(bytes) => {
                let (chunk, rest) = bytes
                    .split_at_checked(rows * 16)
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                *bytes = rest;
                Ok(Some(chunk))
            }
            reader => {
                self.buffer.resize(rows * 16, 0);
                reader.read_exact(&mut self.buffer)?;
                Ok(Some(&self.buffer))
            }
        }
    }
}

/// Bytes of scores and tie keys a spool holds in memory before it moves them to its file (few in
/// tests, so that they spill).
const SPOOL_MEMORY_BYTES: usize = if cfg!(test) { 1500 * 16 } else { 32 << 20 };

/// Scores and tie keys appended in input order as little-endian (f64, u64) pairs: in memory
/// while they are few, in a temporary file past that.
pub struct ScoreSpool {
    pairs: crate::output::SpillBuffer,
    count: u64,
}

impl ScoreSpool {
    pub fn new_in(dir: &Path) -> std::io::Result<ScoreSpool> {
        Ok(ScoreSpool {
            pairs: crate::output::SpillBuffer::new_in(dir, ".audience-ranks-", SPOOL_MEMORY_BYTES)?,
            count: 0,
        })
    }

    pub fn push(&mut self, score: f64, tie: u64) -> std::io::Result<()> {
        self.count += 1;
        let mut pair = [0u8; 16];
        pair[..8].copy_from_slice(&score.to_le_bytes());
        pair[8..].copy_from_slice(&tie.to_le_bytes());
        self.pairs.write_all(&pair)
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every (score, tie key), in input order.
    pub fn rows(&mut self) -> std::io::Result<SpoolRows<'_>> {
        let left = self.count;
        Ok(SpoolRows {
            reader: self.pairs.reader()?,
            buffer: Vec::new(),
            left,
        })
    }

    /// Every block of spooled rows (16 bytes each), in input order.
    fn for_each_chunk(&mut self, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
        let mut rows = self.rows()?;
        while let Some(chunk) = rows.next_chunk()? {
            f(chunk);
        }
        Ok(())
    }

    /// Every full key, in input order.
    fn for_each_key(&mut self, mut f: impl FnMut(u128)) -> std::io::Result<()> {
        self.for_each_chunk(|chunk| chunk.chunks_exact(16).map(key_of).for_each(&mut f))
    }

    /// For each position (0-based, best first, below `len()`), the row there: as much of its
    /// key as tells it apart, how many rows come before it, and how many rows share its score.
    /// Up to [`SORTED_SELECT_ROWS`] rows, the keys are sorted in memory; past that, selected
    /// by radix passes over the file.
    pub fn select(&mut self, positions: &[u64]) -> std::io::Result<Vec<Cut>> {
        if self.count <= SORTED_SELECT_ROWS {
            self.select_sorted(positions)
        } else {
            self.select_streamed(positions)
        }
    }

    /// `select` in memory (16 bytes a row): rows are counted into buckets of equal width over
    /// the range of their scores, and only the buckets a position falls in are sorted (all of
    /// the keys when those hold more than a quarter of the rows). Every row of one score is in
    /// one bucket, and buckets follow score order, so a bucket's rows of better score, and the
    /// rows of the buckets before it, are exactly the rows of better score.
    fn select_sorted(&mut self, positions: &[u64]) -> std::io::Result<Vec<Cut>> {
        use rayon::prelude::*;
        // Each pass reads the spooled rows where they are, on every core; only the keys to be
        // sorted are collected.
        let score_of = |key: u128| (key >> 64) as u64;
        let (mut low, mut high) = (u64::MAX, 0);
        self.for_each_chunk(|chunk| {
            let (l, h) = chunk
                .par_chunks_exact(16)
                .fold(
                    || (u64::MAX, 0),
                    |(low, high), pair| {
                        let score = score_of(key_of(pair));
                        (low.min(score), high.max(score))
                    },
                )
                .reduce(|| (u64::MAX, 0), |(a, b), (c, d)| (a.min(c), b.max(d)));
            (low, high) = (low.min(l), high.max(h));
        })?;
        let span = high.saturating_sub(low);
        let shift = (64 - span.leading_zeros()).saturating_sub(SELECT_BUCKET_BITS);
        let bucket_of = |key: u128| ((score_of(key) - low) >> shift) as usize;
        let buckets = if self.count == 0 {
            0
        } else {
            (span >> shift) as usize + 1
        };
        // starts[b]: rows in the buckets before b.
        let mut starts = vec![0u64; buckets + 1];
        self.for_each_chunk(|chunk| {
            let counts = chunk
                .par_chunks(16 << 14)
                .map(|part| {
                    let mut counts = vec![0u64; buckets + 1];
                    for pair in part.chunks_exact(16) {
                        counts[bucket_of(key_of(pair)) + 1] += 1;
                    }
                    counts
                })
                .reduce(
                    || vec![0u64; buckets + 1],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                        a
                    },
                );
            starts.iter_mut().zip(counts).for_each(|(x, y)| *x += y);
        })?;
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let bucket_at = |position: u64| starts.partition_point(|&s| s <= position) - 1;
        let mut wanted: Vec<usize> = positions.iter().map(|&p| bucket_at(p)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let held: u64 = wanted.iter().map(|&b| starts[b + 1] - starts[b]).sum();
        // The sorted rows of each wanted bucket, and where the bucket starts among all rows.
        let groups: Vec<(u64, Vec<u128>)> = if held > self.count / 4 {
            let mut keys = Vec::with_capacity(self.count as usize);
            self.for_each_chunk(|chunk| keys.par_extend(chunk.par_chunks_exact(16).map(key_of)))?;
            keys.par_sort_unstable();
            vec![(0, keys)]
        } else {
            let mut slot = vec![usize::MAX; buckets];
            for (i, &b) in wanted.iter().enumerate() {
                slot[b] = i;
            }
            let mut groups: Vec<(u64, Vec<u128>)> = wanted
                .iter()
                .map(|&b| {
                    (
                        starts[b],
                        Vec::with_capacity((starts[b + 1] - starts[b]) as usize),
                    )
                })
                .collect();
            self.for_each_key(|key| {
                let i = slot[bucket_of(key)];
                if i != usize::MAX {
                    groups[i].1.push(key);
                }
            })?;
            groups.par_iter_mut().for_each(|(_, g)| g.sort_unstable());
            groups
        };
        Ok(positions
            .iter()
            .map(|&position| {
                let (start, group) = &groups[groups.partition_point(|(s, _)| *s <= position) - 1];
                let key = group[(position - start) as usize];
                let score = score_of(key);
                let score_before = start + group.partition_point(|&k| score_of(k) < score) as u64;
                let score_end = start + group.partition_point(|&k| score_of(k) <= score) as u64;
                Cut {
                    position,
                    prefix: key,
                    bits: 128,
                    before: start + group.partition_point(|&k| k < key) as u64,
                    score_ties: score_end - score_before,
                    score_before,
                }
            })
            .collect())
    }

    /// `select` in bounded memory: one byte of the key per pass over the file.
    fn select_streamed(&mut self, positions: &[u64]) -> std::io::Result<Vec<Cut>> {
        struct Target {
            /// The key's known high bits.
            prefix: u128,
            /// The position left to find inside the rows sharing that prefix.
            rank: u64,
            /// Rows whose prefix is smaller (better).
            before: u64,
            /// Rows sharing the prefix.
            group: u64,
            /// After the score's eight bytes: rows sharing the score, rows with a better one.
            score_ties: u64,
            score_before: u64,
        }
        let mut state: Vec<Target> = positions
            .iter()
            .map(|&p| Target {
                prefix: 0,
                rank: p,
                before: 0,
                group: u64::MAX,
                score_ties: 0,
                score_before: 0,
            })
            .collect();
        let mut bits = 0u32;
        for pass in 0..16u32 {
            // Past the score, continue only while some cut's row shares its prefix with others.
            if pass >= 8 && state.iter().all(|t| t.group <= 1) {
                break;
            }
            let shift = 120 - 8 * pass;
            let prefix_of = |key: u128| if pass == 0 { 0 } else { key >> (shift + 8) };
            let mut prefixes: Vec<u128> = state.iter().map(|t| t.prefix).collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            let mut histograms = vec![[0u64; 256]; prefixes.len()];
            self.for_each_key(|key| {
                if let Ok(i) = prefixes.binary_search(&prefix_of(key)) {
                    histograms[i][((key >> shift) & 0xff) as usize] += 1;
                }
            })?;
            for t in &mut state {
                let i = prefixes
                    .binary_search(&t.prefix)
                    .expect("prefix was histogrammed");
                let mut digit = 255;
                for (d, &count) in histograms[i].iter().enumerate() {
                    if t.rank < count {
                        digit = d as u128;
                        t.group = count;
                        break;
                    }
                    t.rank -= count;
                    t.before += count;
                }
                t.prefix = (t.prefix << 8) | digit;
                if pass == 7 {
                    t.score_ties = t.group;
                    t.score_before = t.before;
                }
            }
            bits += 8;
        }
        Ok(positions
            .iter()
            .zip(state)
            .map(|(&position, t)| Cut {
                position,
                prefix: t.prefix,
                bits,
                before: t.before,
                score_ties: t.score_ties,
                score_before: t.score_before,
            })
            .collect())
    }
}

/// A cut position and the row that sits there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub position: u64,
    /// The high `bits` bits of the row's full key (score, then tie key): enough to tell it from
    /// every other row, or all 128 bits.
    pub prefix: u128,
    pub bits: u32,
    /// Rows whose key prefix is smaller (better).
    pub before: u64,
    /// Rows whose score equals this row's, and rows with a better score.
    pub score_ties: u64,
    pub score_before: u64,
}

impl Cut {
    /// The score of the row at the cut (the selection always resolves the score's 64 bits).
    pub fn score(&self) -> f64 {
        score_of_key((self.prefix >> (self.bits - 64)) as u64)
    }

    /// Rows of equal score the cut falls among: 0 when the rows before the cut all score better
    /// than the rows after it.
    pub fn tied(&self) -> u64 {
        if self.position > self.score_before && self.score_ties > 1 {
            self.score_ties
        } else {
            0
        }
    }

    /// How many of the tied rows lie before the cut (are kept by a top-`position` cut).
    pub fn tied_before(&self) -> u64 {
        self.position - self.score_before
    }
}

/// Streams rows in input order and tells, for each, how many cuts it lies at or past.
pub struct CutCounter {
    /// In position order, so their prefixes never decrease.
    cuts: Vec<Cut>,
    /// Key bits the cuts know (the same for every cut of one selection).
    bits: u32,
    /// The cuts' scores as `descending_key`s (the high 64 bits of their prefixes), in the same
    /// order: a contiguous array searched first.
    score_keys: Vec<u64>,
    /// At the first cut of each run of cuts sharing a prefix: rows with that prefix seen so far.
    equal_seen: Vec<u64>,
}

impl CutCounter {
    /// Cuts from one `ScoreSpool::select`, in any order.
    pub fn new(mut cuts: Vec<Cut>) -> CutCounter {
        let bits = cuts.first().map_or(0, |c| c.bits);
        assert!(cuts.iter().all(|c| c.bits == bits), "cuts of one selection");
        cuts.sort_by_key(|c| c.position);
        let equal_seen = vec![0; cuts.len()];
        let score_keys = if bits >= 64 {
            cuts.iter()
                .map(|c| (c.prefix >> (bits - 64)) as u64)
                .collect()
        } else {
            Vec::new()
        };
        CutCounter {
            cuts,
            bits,
            score_keys,
            equal_seen,
        }
    }

    /// The number of cuts whose position is <= this row's position. Call once per row, in input
    /// order (a row `passed_by_score` answers for may be left out: it changes nothing).
    pub fn passed(&mut self, score: f64, tie: u64) -> usize {
        if let Some(passed) = self.passed_by_score(score) {
            return passed;
        }
        let key = full_key(score, tie);
        let mine = if self.bits == 0 {
            0
        } else {
            key >> (128 - self.bits)
        };
        // Every cut with a smaller prefix lies before this row; of those sharing its prefix,
        // the ones whose position the rows of that prefix seen so far have reached.
        let first_equal = self.cuts.partition_point(|c| c.prefix < mine);
        let mut passed = first_equal;
        if self.cuts.get(first_equal).is_some_and(|c| c.prefix == mine) {
            let seen = self.equal_seen[first_equal];
            passed += self.cuts[first_equal..]
                .iter()
                .take_while(|c| c.prefix == mine)
                .filter(|c| c.before + seen >= c.position)
                .count();
            self.equal_seen[first_equal] += 1;
        }
        passed
    }

    /// `passed` for a row whose score no cut has: then the cuts it has passed are exactly those
    /// of a better score, and neither its tie key nor the rows before it matter, so rows can be
    /// answered in any order (on every core). None when a cut has this score: the row needs
    /// `passed`, in input order.
    pub fn passed_by_score(&self, score: f64) -> Option<usize> {
        if self.cuts.is_empty() {
            return Some(0);
        }
        if self.score_keys.is_empty() {
            return None;
        }
        let mine = descending_key(score);
        let better = self.score_keys.partition_point(|&k| k < mine);
        (self.score_keys.get(better) != Some(&mine)).then_some(better)
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
        for v in values {
            assert_eq!(score_of_key(descending_key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn cuts_match_a_full_sort() {
        // Many ties (the cuts' buckets hold most rows: every key is sorted), and a few (only
        // the cuts' buckets are sorted).
        for tied_share in [0.5, 0.03] {
            cuts_match_a_full_sort_with(tied_share);
        }
    }

    fn cuts_match_a_full_sort_with(tied_share: f64) {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Scores from a small set, plus unique ones.
        let scores: Vec<f64> = (0..5000)
            .map(|_| {
                if rng.random::<f64>() < tied_share {
                    (rng.random_range(0..20) as f64) / 20.0
                } else {
                    rng.random::<f64>()
                }
            })
            .collect();
        // Tie keys: distinct mostly, with some collisions (equal score and key: input order).
        let ties: Vec<u64> = (0..scores.len() as u64)
            .map(|i| (i * 7919) % 4001)
            .collect();
        let mut spool = ScoreSpool::new_in(dir.path()).unwrap();
        for (&s, &t) in scores.iter().zip(&ties) {
            spool.push(s, t).unwrap();
        }
        // Reference ranks: sort by (score desc, tie key, input order).
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            scores[b]
                .total_cmp(&scores[a])
                .then(ties[a].cmp(&ties[b]))
                .then(a.cmp(&b))
        });
        let mut position = vec![0u64; scores.len()];
        for (p, &r) in order.iter().enumerate() {
            position[r] = p as u64;
        }
        // Both ways of selecting: keys sorted in memory and radix passes over the file.
        type Select = fn(&mut ScoreSpool, &[u64]) -> std::io::Result<Vec<Cut>>;
        let ways: [Select; 2] = [ScoreSpool::select_sorted, ScoreSpool::select_streamed];
        for select in ways {
            for bins in [10usize, 100] {
                let starts = bin_starts(scores.len() as u64, bins);
                assert_eq!(starts.len(), bins - 1);
                let cuts = select(&mut spool, &starts).unwrap();
                let mut counter = CutCounter::new(cuts.clone());
                for (r, &s) in scores.iter().enumerate() {
                    let bin = 1 + counter.passed(s, ties[r]);
                    let expected =
                        crate::metrics::bin_of_position(position[r] as usize, scores.len(), bins);
                    assert_eq!(bin, expected, "row {r}, score {s}");
                }
                // The rows the score alone places, answered out of order (last first), then
                // the others in input order, as score's second pass does: the same bins.
                let mut counter = CutCounter::new(cuts);
                let by_score: Vec<Option<usize>> = scores
                    .iter()
                    .rev()
                    .map(|&s| counter.passed_by_score(s))
                    .collect();
                let mut needed_ties = 0;
                for (r, (&s, known)) in scores.iter().zip(by_score.iter().rev()).enumerate() {
                    let passed = known.unwrap_or_else(|| {
                        needed_ties += 1;
                        counter.passed(s, ties[r])
                    });
                    let expected =
                        crate::metrics::bin_of_position(position[r] as usize, scores.len(), bins);
                    assert_eq!(1 + passed, expected, "row {r}, score {s}");
                }
                if tied_share > 0.1 {
                    assert!(needed_ties > 0, "some rows share a cut's score");
                }
            }
            // A top-N cut keeps exactly N rows, the best ones.
            let cuts = select(&mut spool, &[123]).unwrap();
            let mut counter = CutCounter::new(cuts);
            let kept: Vec<usize> = (0..scores.len())
                .filter(|&r| counter.passed(scores[r], ties[r]) == 0)
                .collect();
            assert_eq!(kept.len(), 123);
            assert!(kept.iter().all(|&r| position[r] < 123));
            // Every cut position, with how many rows share the score there.
            for p in [0u64, 1, 122, 123, 2500, 4999] {
                let cut = select(&mut spool, &[p]).unwrap()[0];
                let score = scores[order[p as usize]];
                let equal = scores.iter().filter(|&&s| s == score).count() as u64;
                let better = scores.iter().filter(|&&s| s > score).count() as u64;
                assert_eq!((cut.score_ties, cut.score_before), (equal, better), "{p}");
                let mut counter = CutCounter::new(vec![cut]);
                let kept = (0..scores.len())
                    .filter(|&r| counter.passed(scores[r], ties[r]) == 0)
                    .count() as u64;
                assert_eq!(kept, p);
            }
        }
    }

    #[test]
    fn spooled_rows_come_back_in_input_order() {
        // Held in memory, and moved to the file past the (test-sized) bound.
        for n in [1_000u64, 2_345] {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = ScoreSpool::new_in(dir.path()).unwrap();
            let rows: Vec<(f64, u64)> = (0..n).map(|i| (1.0 / (i + 1) as f64, i * 31)).collect();
            for &(s, t) in &rows {
                spool.push(s, t).unwrap();
            }
            assert_eq!(spool.pairs.spilled(), n * 16 > SPOOL_MEMORY_BYTES as u64);
            // Read back twice: every pass sees every row.
            for _ in 0..2 {
                let mut back = Vec::new();
                let mut read = spool.rows().unwrap();
                while let Some(chunk) = read.next_chunk().unwrap() {
                    back.extend(chunk.chunks_exact(16).map(pair_of));
                }
                assert_eq!(back, rows);
            }
        }
    }

    #[test]
    fn distinct_scores_need_only_the_score_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = ScoreSpool::new_in(dir.path()).unwrap();
        for i in 0..1000u64 {
            spool.push(i as f64 / 1000.0, 7).unwrap();
        }
        let cut = spool.select_streamed(&[10]).unwrap()[0];
        assert_eq!(cut.bits, 64);
        assert_eq!((cut.tied(), cut.score_before), (0, 10));
    }

    #[test]
    fn bin_starts_for_small_tables() {
        assert_eq!(bin_starts(12, 10), [2, 3, 4, 5, 6, 8, 9, 10, 11]);
        // Three rows fall in bins 1, 4 and 7: bins 2-4 start at row 1, bins 5-7 at row 2.
        assert_eq!(bin_starts(3, 10), [1, 1, 1, 2, 2, 2]);
        assert!(bin_starts(0, 10).is_empty());
    }
}
