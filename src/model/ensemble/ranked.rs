//! Rows coded as ranks, for adding one tree after another to their running scores.
//!
//! Early stopping adds each new tree's leaf values to the early-stopping rows' scores, once a
//! round. Walking the rows' floats costs a few unpredictable branches per split (missing values,
//! zeros, categories). Here each column's distinct values are sorted once and every value becomes
//! its rank, so a numerical split is `rank < cut`, where `cut` counts the column's distinct values
//! at or below the threshold: the same decision as `value <= threshold`, since the values at or
//! below a threshold are a prefix of the sorted values (for a NaN threshold, none). The two values
//! a split may send another way, NaN and zero (missing types), get what the float walk gives
//! them, worked out once per split; a categorical split becomes a bitset over the ranks, each bit
//! the float walk's decision for that rank's value. So the sums are the float walk's, bit for
//! bit, and `predict`'s before its sigmoid.
//!
//! A tree is applied the way LightGBM grows it: a block of rows is partitioned node by node, each
//! split moving its rows' indexes to the left or the right part without a branch on the row, so
//! that a row costs a few instructions per level instead of a mispredicted branch and a chain of
//! loads; each leaf's value is then added to the rows that reached it. Every row still receives
//! one leaf value per tree, in tree order.

use rayon::prelude::*;

use super::{CATEGORICAL, Tree, TreeEnsemble, as_read, goes_left_numerical};
use crate::data::encode::Matrix;
use crate::metrics::order_key;

/// The code of NaN, which has no rank.
const NAN_CODE: u32 = u32::MAX;
/// A code no value has (ranks stay below the row count, which `RankedRows::new` bounds).
const NO_CODE: u32 = u32::MAX - 1;
/// Rows per parallel task: their codes (a few hundred KB for a few dozen features) stay in a
/// core's cache while a tree partitions them.
const BLOCK_ROWS: usize = 4096;

/// A matrix's rows with every value replaced by its rank among its column's distinct values.
pub struct RankedRows {
    /// Column-major codes, `cols × rows`: a split reads one column.
    codes: Vec<u32>,
    rows: usize,
    cols: usize,
    /// Each column's distinct values, ascending, as the C API reads them (|x| <= kZeroThreshold
    /// as 0, -0 as 0).
    values: Vec<Vec<f64>>,
}

impl RankedRows {
    /// Codes `matrix`, a column at a time on every core. None past `u32::MAX - 2` rows (more
    /// than LightGBM trains on).
    pub fn new(matrix: &Matrix) -> Option<RankedRows> {
        if matrix.rows >= NO_CODE as usize {
            return None;
        }
        let (rows, cols) = (matrix.rows, matrix.cols);
        let columns: Vec<(Vec<f64>, Vec<u32>)> = (0..cols)
            .into_par_iter()
            .map(|j| {
                let value = |r: usize| as_read(matrix.values[r * cols + j]);
                let mut keyed: Vec<(i64, u32)> = (0..rows)
                    .filter(|&r| !value(r).is_nan())
                    .map(|r| (order_key(value(r)), r as u32))
                    .collect();
                keyed.sort_unstable();
                let mut values = Vec::new();
                let mut codes = vec![NAN_CODE; rows];
                let mut last = None;
                for (key, r) in keyed {
                    if last != Some(key) {
                        values.push(value(r as usize));
                        last = Some(key);
                    }
                    codes[r as usize] = values.len() as u32 - 1;
                }
                (values, codes)
            })
            .collect();
        let mut codes = Vec::with_capacity(rows * cols);
        for (_, column) in &columns {
            codes.extend_from_slice(column);
        }
        let values = columns.into_iter().map(|(values, _)| values).collect();
        Some(RankedRows {
            codes,
            rows,
            cols,
            values,
        })
    }
}

/// A node's split, restated over one column's codes.
#[derive(Debug, Clone, Copy)]
struct CodedSplit {
    feature: u32,
    /// Numerical: codes below `cut` go left (except NaN and zero, below).
    cut: u32,
    /// The code of 0.0 in the column (NO_CODE when it has none) and where 0.0 goes.
    zero_code: u32,
    zero_left: bool,
    nan_left: bool,
    /// Categorical: the bitset over codes starts at this word of the tree's bits.
    categorical: Option<u32>,
}

/// A tree restated over a `RankedRows`' codes.
struct CodedTree {
    /// One per internal node (a leaf decides nothing).
    splits: Vec<CodedSplit>,
    bits: Vec<u64>,
}

impl TreeEnsemble {
    /// Adds each row's raw score, the sum of every tree's leaf value in tree order (before
    /// averaging and the sigmoid), to `raw`, in parallel over blocks of rows. Adding the trees of
    /// one round at a time gives, bit for bit, what all rounds at once give: the sums run in the
    /// same order.
    pub fn add_raw_scores(&self, rows: &RankedRows, raw: &mut [f64]) {
        assert_eq!(rows.cols, self.num_features(), "one column per feature");
        assert_eq!(raw.len(), rows.rows, "one score per row");
        let coded: Vec<CodedTree> = self.trees.iter().map(|t| self.code_tree(t, rows)).collect();
        raw.par_chunks_mut(BLOCK_ROWS)
            .enumerate()
            .for_each(|(block, raw)| {
                let first = block * BLOCK_ROWS;
                let columns: Vec<&[u32]> = (0..rows.cols)
                    .map(|j| &rows.codes[j * rows.rows + first..j * rows.rows + first + raw.len()])
                    .collect();
                let mut order = vec![0u32; raw.len()];
                let mut right = vec![0u32; raw.len()];
                let mut pending = Vec::new();
                for (tree, code) in self.trees.iter().zip(&coded) {
                    for (i, o) in order.iter_mut().enumerate() {
                        *o = i as u32;
                    }
                    // (node, start, end): the rows order[start..end] have reached node.
                    pending.push((0usize, 0usize, raw.len()));
                    while let Some((node, start, end)) = pending.pop() {
                        if node >= tree.internal {
                            let value = tree.leaves[node - tree.internal];
                            for &r in &order[start..end] {
                                raw[r as usize] += value;
                            }
                            continue;
                        }
                        let split = &code.splits[node];
                        let column = columns[split.feature as usize];
                        let part = &mut order[start..end];
                        let lefts = match split.categorical {
                            Some(word) => {
                                let bits = &code.bits[word as usize..];
                                partition(part, &mut right, |r| {
                                    let c = column[r as usize];
                                    // NaN has no rank: it reads word 0 and goes right.
                                    let nan = c == NAN_CODE;
                                    let c = if nan { 0 } else { c };
                                    !nan & ((bits[c as usize / 64] >> (c % 64)) & 1 == 1)
                                })
                            }
                            None => {
                                let (cut, zero) = (split.cut, split.zero_code);
                                let (zero_left, nan_left) = (split.zero_left, split.nan_left);
                                partition(part, &mut right, |r| {
                                    let c = column[r as usize];
                                    // NaN's code is past every cut, NO_CODE matches no row.
                                    let is_zero = c == zero;
                                    (c < cut) & !is_zero
                                        | is_zero & zero_left
                                        | (c == NAN_CODE) & nan_left
                                })
                            }
                        };
                        let n = &tree.nodes[node];
                        pending.push((n.right as usize, start + lefts, end));
                        pending.push((n.left as usize, start, start + lefts));
                    }
                }
            });
    }

    fn code_tree(&self, tree: &Tree, rows: &RankedRows) -> CodedTree {
        let mut bits = Vec::new();
        let splits = tree.nodes[..tree.internal]
            .iter()
            .map(|n| {
                let values = &rows.values[n.feature as usize];
                let zero_code = values
                    .binary_search_by(|v| v.total_cmp(&0.0))
                    .map_or(NO_CODE, |c| c as u32);
                let categorical = (n.decision & CATEGORICAL != 0).then(|| {
                    let start = bits.len();
                    bits.resize(start + values.len().div_ceil(64), 0u64);
                    for (c, &v) in values.iter().enumerate() {
                        if self.goes_left_categorical(n, v) {
                            bits[start + c / 64] |= 1 << (c % 64);
                        }
                    }
                    start as u32
                });
                CodedSplit {
                    feature: n.feature,
                    cut: values.partition_point(|&v| v <= n.threshold) as u32,
                    zero_code,
                    zero_left: goes_left_numerical(n, 0.0),
                    nan_left: goes_left_numerical(n, f64::NAN),
                    categorical,
                }
            })
            .collect();
        CodedTree { splits, bits }
    }
}

/// Moves the rows of `part` that `goes_left` to its front, the others after them (each side in
/// its former order), and returns how many went left. No branch depends on a row: every index is
/// written to both sides and only the side's length moves.
#[inline(always)]
fn partition(part: &mut [u32], right: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    let (mut lefts, mut rights) = (0usize, 0usize);
    for i in 0..part.len() {
        let r = part[i];
        let left = goes_left(r);
        // lefts <= i: the slot written was read already.
        part[lefts] = r;
        right[rights] = r;
        lefts += usize::from(left);
        rights += usize::from(!left);
    }
    part[lefts..].copy_from_slice(&right[..rights]);
    lefts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_puts_the_left_rows_first_each_side_in_its_order() {
        let mut part: Vec<u32> = (0..10).collect();
        let mut right = vec![0; 10];
        let lefts = partition(&mut part, &mut right, |r| r % 3 == 0);
        assert_eq!(lefts, 4);
        assert_eq!(part, [0, 3, 6, 9, 1, 2, 4, 5, 7, 8]);
        assert_eq!(partition(&mut part[..0], &mut right, |_| true), 0);
        let mut all = vec![5, 7];
        assert_eq!(partition(&mut all, &mut right, |_| false), 0);
        assert_eq!(all, [5, 7]);
    }

    #[test]
    fn codes_are_ranks_with_near_zeros_as_zero_and_nan_apart() {
        let rows = [
            [2.5, 1.0],
            [f64::NAN, 1.0],
            [-0.0, 3.0],
            [1e-36, 1.0],
            [-7.0, f64::NAN],
            [2.5, 0.0],
        ];
        let matrix = Matrix {
            values: rows.concat(),
            rows: 6,
            cols: 2,
        };
        let ranked = RankedRows::new(&matrix).unwrap();
        assert_eq!(ranked.values[0], [-7.0, 0.0, 2.5]);
        assert_eq!(ranked.values[1], [0.0, 1.0, 3.0]);
        assert_eq!(
            ranked.codes,
            [2, NAN_CODE, 1, 1, 0, 2, 1, 1, 2, 1, NAN_CODE, 0]
        );
        assert!(ranked.values[0][1].is_sign_positive());
    }
}
