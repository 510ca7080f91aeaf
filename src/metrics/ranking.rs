//! The model's ranking of the evaluation rows, with its groups of equal scores.
//!
//! A cut (the model's top n, a decile boundary) can fall inside a group of rows whose scores are
//! equal. No order among them is better than another, so every figure `compare` reports takes the
//! *expected* count over the group, as if the rows needed were drawn from it at random (pro rata):
//! taking k of a group of g rows holding c conversions counts k·c/g conversions. Where real people
//! must be chosen (`score --top`, audience exports), rows of equal score are ordered by
//! [`tie_key`], a seeded hash of the id, so the choice is fixed by the data and the seed but owes
//! nothing to file order or to the ids' values.

use std::ops::Range;

use rayon::prelude::*;

use crate::data::id_hash;

/// The order of people whose scores are equal: lower keys first. It is [`id_hash`] of the id
/// with the run's seed (`split.seed`), documented and stable across machines and versions.
pub fn tie_key(id: &str, seed: u64) -> u64 {
    id_hash(id, seed)
}

/// Where a top-n cut falls in a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopCut {
    /// Positions of the group of equal scores the cut falls inside (empty when the cut falls
    /// between two different scores).
    pub group: Range<usize>,
    /// How many rows of that group the top n takes (0 < taken < group.len(), or 0).
    pub taken: usize,
}

impl TopCut {
    /// Rows of equal score the cut falls among (0 when it falls between different scores).
    pub fn tied(&self) -> usize {
        if self.taken == 0 { 0 } else { self.group.len() }
    }

    /// The expected share of each row of the straddled group that the top n takes.
    pub fn share(&self) -> f64 {
        if self.taken == 0 {
            0.0
        } else {
            self.taken as f64 / self.group.len() as f64
        }
    }
}

/// Rows best first (descending score; equal scores by [`tie_key`], then by row), with the
/// positions where each group of equal scores starts.
#[derive(Debug, Clone)]
pub struct Ranking {
    order: Vec<usize>,
    /// Start position of each group of equal scores, then `order.len()`.
    starts: Vec<usize>,
    /// Each group's score.
    group_scores: Vec<f64>,
}

impl Ranking {
    /// Ranks rows by `scores` (no NaN: the caller refuses those), ties by `tie_keys`.
    pub fn new(scores: &[f64], tie_keys: &[u64]) -> Ranking {
        assert_eq!(scores.len(), tie_keys.len());
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.par_sort_unstable_by(|&a, &b| {
            scores[b]
                .total_cmp(&scores[a])
                .then(tie_keys[a].cmp(&tie_keys[b]))
                .then(a.cmp(&b))
        });
        let mut starts = Vec::new();
        let mut group_scores = Vec::new();
        for (position, &row) in order.iter().enumerate() {
            // -0 and +0 are the same score.
            if group_scores.last() != Some(&scores[row]) {
                starts.push(position);
                group_scores.push(scores[row]);
            }
        }
        starts.push(order.len());
        Ranking {
            order,
            starts,
            group_scores,
        }
    }

    /// Rows best first.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// How many distinct scores there are.
    pub fn groups(&self) -> usize {
        self.group_scores.len()
    }

    /// The positions of group `g` (best first).
    pub fn group(&self, g: usize) -> Range<usize> {
        self.starts[g]..self.starts[g + 1]
    }

    /// The score every row of group `g` has.
    pub fn group_score(&self, g: usize) -> f64 {
        self.group_scores[g]
    }

    /// The group holding `position`.
    pub fn group_of(&self, position: usize) -> usize {
        self.starts.partition_point(|&s| s <= position) - 1
    }

    /// Where the top `n` ends.
    pub fn top_cut(&self, n: usize) -> TopCut {
        let n = n.min(self.len());
        if n == 0 || n == self.len() {
            return TopCut {
                group: n..n,
                taken: 0,
            };
        }
        let g = self.group_of(n);
        let group = self.group(g);
        let taken = n - group.start;
        TopCut {
            group: if taken == 0 { n..n } else { group },
            taken,
        }
    }

    /// Each row's expected membership in the top `n`: 1 above the cut, the straddled group's
    /// share inside it, 0 below.
    pub fn top_weights(&self, n: usize) -> Vec<f64> {
        let cut = self.top_cut(n);
        let mut weights = vec![0.0; self.len()];
        let full = if cut.taken == 0 {
            n.min(self.len())
        } else {
            cut.group.start
        };
        for &row in &self.order[..full] {
            weights[row] = 1.0;
        }
        let share = cut.share();
        for &row in &self.order[cut.group.clone()] {
            weights[row] = share;
        }
        weights
    }

    /// Per group, in rank order: (rows, conversions).
    pub fn group_counts(&self, labels: &[u8]) -> Vec<(u64, u64)> {
        (0..self.groups())
            .map(|g| {
                let rows = &self.order[self.group(g)];
                let conversions = rows.iter().map(|&r| u64::from(labels[r])).sum();
                (rows.len() as u64, conversions)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::splitmix64;

    #[test]
    fn tie_keys_are_fixed_and_seeded() {
        // The tie rule is documented: a change here changes who gets chosen.
        assert_eq!(tie_key("c1", 42), tie_key("c1", 42));
        assert_ne!(tie_key("c1", 42), tie_key("c1", 43));
        assert_ne!(tie_key("c1", 42), tie_key("c2", 42));
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(
            tie_key("", 0),
            splitmix64(0xcbf2_9ce4_8422_2325 ^ splitmix64(0))
        );
        let basis_for_seed_0 = 0xcbf2_9ce4_8422_2325 ^ splitmix64(0);
        let fnv_a = (basis_for_seed_0 ^ u64::from(b'a')).wrapping_mul(0x0000_0100_0000_01b3);
        assert_eq!(tie_key("a", 0), splitmix64(fnv_a));
    }

    #[test]
    fn ranking_groups_equal_scores() {
        let scores = [0.5, 0.9, 0.5, 0.1, 0.5, 0.9];
        let keys = [5, 1, 3, 0, 4, 2];
        let r = Ranking::new(&scores, &keys);
        // 0.9: rows 1 (key 1), 5 (key 2); 0.5: rows 2 (3), 4 (4), 0 (5); 0.1: row 3.
        assert_eq!(r.order(), [1, 5, 2, 4, 0, 3]);
        assert_eq!(r.groups(), 3);
        assert_eq!(r.group(1), 2..5);
        assert_eq!(r.group_of(4), 1);
        assert_eq!(r.group_score(2), 0.1);
        assert_eq!(
            r.top_cut(2),
            TopCut {
                group: 2..2,
                taken: 0
            }
        );
        let cut = r.top_cut(3);
        assert_eq!((cut.group.clone(), cut.taken, cut.tied()), (2..5, 1, 3));
        let w = r.top_weights(3);
        assert_eq!(w[1], 1.0);
        assert_eq!(w[5], 1.0);
        for row in [0, 2, 4] {
            assert!((w[row] - 1.0 / 3.0).abs() < 1e-15);
        }
        assert_eq!(w[3], 0.0);
        assert_eq!(r.top_cut(6).tied(), 0);
        assert_eq!(
            r.group_counts(&[1, 0, 1, 1, 0, 1]),
            [(2, 1), (3, 2), (1, 1)]
        );
    }
}
