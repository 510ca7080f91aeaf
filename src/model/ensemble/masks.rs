//! The trees run over a block of rows at once, every split as a bitmask of the block's rows.
//!
//! The compiled trees (`jit`) send one row down a tree at a time, and most of their time goes to
//! branches the core mispredicts: which way a row goes at a split depends on its data. Here no
//! branch depends on a row's values. Before the trees run, each feature's values in a block
//! become masks, one bit per row:
//! - a numerical feature: for each distinct threshold the model compares it with, the rows at or
//!   below it (a row's rank among the thresholds, found once, sets one mask, and a running OR
//!   fills the rest); and the rows that are NaN, and zero;
//! - a categorical feature with few codes: one mask per code, and a split's left mask is the OR
//!   of its left set's codes; with many codes (where left sets hold dozens of them), each split
//!   has its own mask, and each row sets its bit in the masks of the splits whose left set holds
//!   its code (from a list per code made at load).
//!
//! A tree then costs a few word operations per node for the whole block: the rows reaching a
//! node are its parent's and-ed with the split's left mask or its complement. Each row's leaf
//! number is read off the leaves' masks a bit plane at a time, eight rows to a word, and the
//! leaf's value added to the row's sum.
//!
//! Semantics are the walker's (see the parent module), worked out per node at load: values
//! arrive with |x| <= 1e-35 zeroed; a numerical split with missing type None reads NaN as 0 (so
//! NaN goes left exactly when 0 <= threshold), Zero sends NaN and zero the default way, NaN sends
//! NaN the default way, and `x <= NaN` holds for no x; a categorical split reads `x as i32` and
//! sends NaN, negative and out-of-bitset codes right. Leaf values are added tree by tree in model
//! order, from the same starting sums, so the results are the walker's to the last bit.

use super::{CATEGORICAL, DEFAULT_LEFT, MISSING_NAN, MISSING_ZERO, TreeEnsemble, ZERO_THRESHOLD};

/// 64-row words per block: a tree's per-node work is shared by this many rows, and the block's
/// table and the trees' nodes stay in cache (2 and 4 measured on bench (b)'s model: 2 was the
/// faster, bench/RESULTS.md).
const WORDS: usize = 2;
const BLOCK_ROWS: usize = 64 * WORDS;
type Mask = [u64; WORDS];

/// A categorical feature with at least this many codes (its widest bitset, in bits) gives each
/// split its own mask, set row by row from the code's list; below, one mask per code, OR-ed per
/// split (measured between 32 and 256 on bench (b)'s model, 300- and 1,001-level features).
const SCATTERED_CODES: u32 = 128;

/// The most table bytes a block may use: past it (a model with very many distinct thresholds or
/// splits on wide categorical features) the masks would not stay in cache, and the compiled
/// trees serve.
const MAX_TABLE_BYTES: usize = 4 << 20;

/// The most leaves a tree may have here: a leaf number is one byte per row.
const MAX_LEAVES: usize = 256;

/// Table slots every block has: no rows, and every row of the block.
const NO_ROWS: u32 = 0;
const ALL_ROWS: u32 = 1;

/// A numerical feature's masks in the block table.
struct NumericColumn {
    feature: usize,
    /// The distinct thresholds the model compares the feature with, ascending, no NaN.
    thresholds: Vec<f64>,
    nan: u32,
    zero: u32,
    zero_or_nan: u32,
    /// `at_or_below + k`: the rows (not NaN) whose value is at or below `thresholds[k]`.
    at_or_below: u32,
}

/// A categorical feature's masks in the block table.
struct CategoricalColumn {
    feature: usize,
    /// Codes below this can go left at some split; any other goes right at every split.
    codes: u32,
    how: Categories,
}

enum Categories {
    /// `first + c`: the rows whose code is c.
    PerCode { first: u32 },
    /// Each split on the feature has its own slot; code c sets the row's bit in the slots
    /// `slots[starts[c]..starts[c + 1]]`, those whose left set holds c.
    PerSplit { starts: Vec<u32>, slots: Vec<u32> },
}

/// How a node's left mask is made from the block table.
#[derive(Clone, Copy)]
enum LeftMask {
    /// `(table[base] & !table[clear]) | table[add]`.
    Slots { base: u32, clear: u32, add: u32 },
    /// The union of `table[s]` for s in `MaskedTrees::code_slots[start..end]`.
    Codes { start: u32, end: u32 },
}

#[derive(Clone, Copy)]
struct MaskNode {
    left_mask: LeftMask,
    /// Where the rows going each way are written in the tree's reach array: internal nodes in
    /// preorder (a parent before its children), then the leaves.
    left: u32,
    right: u32,
}

struct MaskTree {
    /// In preorder.
    nodes: Vec<MaskNode>,
    leaves: Vec<f64>,
    /// Bits in a leaf number.
    planes: usize,
}

/// An ensemble prepared for evaluation by masks.
pub struct MaskedTrees {
    numeric: Vec<NumericColumn>,
    categorical: Vec<CategoricalColumn>,
    code_slots: Vec<u32>,
    trees: Vec<MaskTree>,
    slots: usize,
    /// The most nodes (internal and leaves) in one tree.
    widest: usize,
}

/// Hands out consecutive table slots.
struct Slots(u32);

impl Slots {
    fn claim(&mut self, count: usize) -> Option<u32> {
        let at = self.0;
        self.0 = self.0.checked_add(u32::try_from(count).ok()?)?;
        Some(at)
    }
}

impl MaskedTrees {
    /// Prepares `ensemble`, or None when its block table would not stay in cache or a tree has
    /// more than 256 leaves.
    pub fn new(ensemble: &TreeEnsemble) -> Option<MaskedTrees> {
        let features = ensemble.num_features();
        let mut thresholds: Vec<Vec<f64>> = vec![Vec::new(); features];
        let mut numeric_used = vec![false; features];
        // Per categorical feature: its widest bitset in bits, and whether any split reads it
        // (an empty bitset sends every row right, and still needs its column).
        let mut codes = vec![0u32; features];
        let mut categorical_used = vec![false; features];
        for tree in &ensemble.trees {
            if tree.leaves.len() > MAX_LEAVES {
                return None;
            }
            for n in &tree.nodes[..tree.internal] {
                let f = n.feature as usize;
                if n.decision & CATEGORICAL != 0 {
                    categorical_used[f] = true;
                    codes[f] = codes[f].max(n.cat_len.checked_mul(32)?);
                    // A bitset wider than the table could hold (a hostile or odd model) is not
                    // allocated for: the compiled trees serve.
                    if codes[f] as usize * std::mem::size_of::<Mask>() > MAX_TABLE_BYTES {
                        return None;
                    }
                } else {
                    numeric_used[f] = true;
                    if !n.threshold.is_nan() {
                        thresholds[f].push(n.threshold);
                    }
                }
            }
        }
        let mut slots = Slots(2);
        let mut numeric = Vec::new();
        let mut numeric_of = vec![usize::MAX; features];
        for f in (0..features).filter(|&f| numeric_used[f]) {
            let mut t = std::mem::take(&mut thresholds[f]);
            t.sort_by(f64::total_cmp);
            // -0 and 0 are one threshold: `x <= t` is the same test.
            t.dedup_by(|a, b| a == b);
            let nan = slots.claim(3)?;
            numeric_of[f] = numeric.len();
            numeric.push(NumericColumn {
                feature: f,
                at_or_below: slots.claim(t.len())?,
                thresholds: t,
                nan,
                zero: nan + 1,
                zero_or_nan: nan + 2,
            });
        }
        // Each categorical feature's codes; for a feature with many, a slot per split and each
        // code's list of the splits whose left set holds it (counted, then filled).
        let mut categorical = Vec::new();
        let mut categorical_of = vec![usize::MAX; features];
        for (f, &c) in codes
            .iter()
            .enumerate()
            .filter(|&(f, _)| categorical_used[f])
        {
            categorical_of[f] = categorical.len();
            categorical.push(CategoricalColumn {
                feature: f,
                codes: c,
                how: if c >= SCATTERED_CODES {
                    Categories::PerSplit {
                        starts: vec![0; c as usize + 1],
                        slots: Vec::new(),
                    }
                } else {
                    Categories::PerCode {
                        first: slots.claim(c as usize)?,
                    }
                },
            });
        }
        let left_set = |n: &super::Node| {
            let start = n.cat_start as usize;
            let words = &ensemble.bitsets[start..start + n.cat_len as usize];
            words.iter().enumerate().flat_map(|(w, &word)| {
                (0..32u32)
                    .filter(move |b| (word >> b) & 1 == 1)
                    .map(move |b| w as u32 * 32 + b)
            })
        };
        let per_split = |n: &super::Node| {
            n.decision & CATEGORICAL != 0
                && matches!(
                    categorical[categorical_of[n.feature as usize]].how,
                    Categories::PerSplit { .. }
                )
        };
        // Each split's own slot, and how many splits' left sets hold each code.
        let mut own: Vec<Vec<u32>> = Vec::with_capacity(ensemble.trees.len());
        let mut counts: Vec<Vec<u32>> = categorical
            .iter()
            .map(|col| match col.how {
                Categories::PerSplit { .. } => vec![0; col.codes as usize],
                Categories::PerCode { .. } => Vec::new(),
            })
            .collect();
        for tree in &ensemble.trees {
            let mut slots_of = vec![NO_ROWS; tree.internal];
            for (i, n) in tree.nodes[..tree.internal].iter().enumerate() {
                if per_split(n) {
                    slots_of[i] = slots.claim(1)?;
                    let counts = &mut counts[categorical_of[n.feature as usize]];
                    for code in left_set(n) {
                        counts[code as usize] += 1;
                    }
                }
            }
            own.push(slots_of);
        }
        for (col, counts) in categorical.iter_mut().zip(&counts) {
            if let Categories::PerSplit { starts, slots } = &mut col.how {
                let mut total = 0u32;
                for (start, &count) in starts[1..].iter_mut().zip(counts) {
                    total = total.checked_add(count)?;
                    *start = total;
                }
                *slots = vec![NO_ROWS; total as usize];
            }
        }
        let mut filled: Vec<Vec<u32>> = counts.iter().map(|c| vec![0; c.len()]).collect();
        for (tree, slots_of) in ensemble.trees.iter().zip(&own) {
            for (i, n) in tree.nodes[..tree.internal].iter().enumerate() {
                if slots_of[i] == NO_ROWS {
                    continue;
                }
                let col = categorical_of[n.feature as usize];
                let Categories::PerSplit { starts, slots } = &mut categorical[col].how else {
                    unreachable!("only splits on such features have their own slot")
                };
                for code in left_set(n) {
                    let c = code as usize;
                    slots[(starts[c] + filled[col][c]) as usize] = slots_of[i];
                    filled[col][c] += 1;
                }
            }
        }
        let slots = slots.0 as usize;
        if slots * std::mem::size_of::<Mask>() > MAX_TABLE_BYTES {
            return None;
        }

        let mut code_slots = Vec::new();
        let mut trees = Vec::with_capacity(ensemble.trees.len());
        let mut widest = 1;
        for (tree, own) in ensemble.trees.iter().zip(&own) {
            // Internal nodes renumbered in preorder.
            let order = tree.preorder();
            let mut preorder = vec![0u32; tree.internal];
            for (new, &old) in order.iter().enumerate() {
                preorder[old] = new as u32;
            }
            // Leaves keep their place after the internal nodes.
            let place = |i: usize| {
                if i < tree.internal {
                    preorder[i]
                } else {
                    i as u32
                }
            };
            let mut nodes = Vec::with_capacity(tree.internal);
            for &i in &order {
                let n = &tree.nodes[i];
                let f = n.feature as usize;
                let left_mask = if own[i] != NO_ROWS {
                    LeftMask::Slots {
                        base: own[i],
                        clear: NO_ROWS,
                        add: NO_ROWS,
                    }
                } else if n.decision & CATEGORICAL != 0 {
                    let Categories::PerCode { first } = categorical[categorical_of[f]].how else {
                        unreachable!("a split on a feature with a slot per split has its own")
                    };
                    let start = u32::try_from(code_slots.len()).ok()?;
                    code_slots.extend(left_set(n).map(|c| first + c));
                    LeftMask::Codes {
                        start,
                        end: u32::try_from(code_slots.len()).ok()?,
                    }
                } else {
                    let col = &numeric[numeric_of[f]];
                    let base = if n.threshold.is_nan() {
                        NO_ROWS
                    } else {
                        let k = col.thresholds.partition_point(|&t| t < n.threshold);
                        col.at_or_below + k as u32
                    };
                    let default_left = n.decision & DEFAULT_LEFT != 0;
                    let (clear, add) = match (n.decision >> 2) & 3 {
                        MISSING_ZERO => (
                            col.zero,
                            if default_left {
                                col.zero_or_nan
                            } else {
                                NO_ROWS
                            },
                        ),
                        MISSING_NAN => (NO_ROWS, if default_left { col.nan } else { NO_ROWS }),
                        // None: NaN reads as 0.
                        _ => (NO_ROWS, if 0.0 <= n.threshold { col.nan } else { NO_ROWS }),
                    };
                    LeftMask::Slots { base, clear, add }
                };
                nodes.push(MaskNode {
                    left_mask,
                    left: place(n.left as usize),
                    right: place(n.right as usize),
                });
            }
            widest = widest.max(tree.internal + tree.leaves.len());
            let planes = (usize::BITS - (tree.leaves.len().max(1) - 1).leading_zeros()) as usize;
            trees.push(MaskTree {
                nodes,
                leaves: tree.leaves.clone(),
                planes,
            });
        }
        Some(MaskedTrees {
            numeric,
            categorical,
            code_slots,
            trees,
            slots,
            widest,
        })
    }

    /// Adds every tree's leaf value, in model order, to `raw` for the `raw.len()` rows of `rows`
    /// (row-major, `cols` values each, |x| <= 1e-35 already zeroed).
    pub fn accumulate(&self, rows: &[f64], cols: usize, raw: &mut [f64]) {
        assert!(rows.len() >= raw.len() * cols);
        let mut table = vec![[0u64; WORDS]; self.slots];
        let mut reach = vec![[0u64; WORDS]; self.widest];
        for (block, raw) in raw.chunks_mut(BLOCK_ROWS).enumerate() {
            let start = block * BLOCK_ROWS;
            let rows = &rows[start * cols..(start + raw.len()) * cols];
            self.fill(rows, cols, raw.len(), &mut table);
            for tree in &self.trees {
                run_tree(tree, &self.code_slots, &table, &mut reach, raw);
            }
        }
    }

    /// The block table of `n` rows.
    fn fill(&self, rows: &[f64], cols: usize, n: usize, table: &mut [Mask]) {
        table.fill([0; WORDS]);
        for r in 0..n {
            table[ALL_ROWS as usize][r / 64] |= 1 << (r % 64);
        }
        for col in &self.numeric {
            let below = col.at_or_below as usize;
            let t = col.thresholds.len();
            for r in 0..n {
                let (w, bit) = (r / 64, 1u64 << (r % 64));
                let x = rows[r * cols + col.feature];
                if x.is_nan() {
                    table[col.nan as usize][w] |= bit;
                    continue;
                }
                if x.abs() <= ZERO_THRESHOLD {
                    table[col.zero as usize][w] |= bit;
                }
                // x <= thresholds[k] exactly when fewer than k + 1 thresholds lie below x.
                let rank = col.thresholds.partition_point(|&th| th < x);
                if rank < t {
                    table[below + rank][w] |= bit;
                }
            }
            for k in 1..t {
                let lower = table[below + k - 1];
                for (m, l) in table[below + k].iter_mut().zip(lower) {
                    *m |= l;
                }
            }
            let (zero, nan) = (table[col.zero as usize], table[col.nan as usize]);
            table[col.zero_or_nan as usize] = std::array::from_fn(|w| zero[w] | nan[w]);
        }
        for col in &self.categorical {
            for r in 0..n {
                let x = rows[r * cols + col.feature];
                if x.is_nan() {
                    continue;
                }
                // Truncated toward zero and saturated, as the walker reads codes.
                let code = x as i32;
                if code < 0 || code as u32 >= col.codes {
                    continue;
                }
                let (w, bit) = (r / 64, 1u64 << (r % 64));
                match &col.how {
                    Categories::PerCode { first } => {
                        table[(first + code as u32) as usize][w] |= bit
                    }
                    Categories::PerSplit { starts, slots } => {
                        let c = code as usize;
                        for &slot in &slots[starts[c] as usize..starts[c + 1] as usize] {
                            table[slot as usize][w] |= bit;
                        }
                    }
                }
            }
        }
    }
}

/// The 8 bits of `byte` as 8 bytes, each 0 or 1 (byte k holds bit k).
#[inline(always)]
fn spread(byte: u64) -> u64 {
    let picked = byte.wrapping_mul(0x0101_0101_0101_0101) & 0x8040_2010_0804_0201;
    ((picked + 0x7F7F_7F7F_7F7F_7F7F) & 0x8080_8080_8080_8080) >> 7
}

/// Runs one tree over the block whose table is `table`, adding each row's leaf value to `raw`.
#[inline]
fn run_tree(
    tree: &MaskTree,
    code_slots: &[u32],
    table: &[Mask],
    reach: &mut [Mask],
    raw: &mut [f64],
) {
    reach[0] = table[ALL_ROWS as usize];
    for (i, node) in tree.nodes.iter().enumerate() {
        let r = reach[i];
        let m: Mask = match node.left_mask {
            LeftMask::Slots { base, clear, add } => {
                let (b, c, a) = (
                    table[base as usize],
                    table[clear as usize],
                    table[add as usize],
                );
                std::array::from_fn(|w| (b[w] & !c[w]) | a[w])
            }
            LeftMask::Codes { start, end } => {
                let mut m = [0u64; WORDS];
                for &s in &code_slots[start as usize..end as usize] {
                    let t = table[s as usize];
                    for w in 0..WORDS {
                        m[w] |= t[w];
                    }
                }
                m
            }
        };
        reach[node.left as usize] = std::array::from_fn(|w| r[w] & m[w]);
        reach[node.right as usize] = std::array::from_fn(|w| r[w] & !m[w]);
    }
    // Plane j: the rows whose leaf number has bit j set. Every row of the block reaches exactly
    // one leaf; rows past the block's end reach none and are not read.
    let internal = tree.nodes.len();
    let leaves = &tree.leaves;
    let mut plane = [[0u64; WORDS]; 8];
    for (leaf, m) in reach[internal..internal + leaves.len()].iter().enumerate() {
        for (j, p) in plane[..tree.planes].iter_mut().enumerate() {
            let take = 0u64.wrapping_sub(((leaf >> j) & 1) as u64);
            for w in 0..WORDS {
                p[w] |= m[w] & take;
            }
        }
    }
    for (group, rows) in raw.chunks_mut(8).enumerate() {
        let (w, shift) = (group / 8, (group % 8) * 8);
        // Eight rows' leaf numbers, one per byte.
        let mut numbers = 0u64;
        for (j, p) in plane[..tree.planes].iter().enumerate() {
            numbers |= spread((p[w] >> shift) & 0xFF) << j;
        }
        for (k, r) in rows.iter_mut().enumerate() {
            *r += leaves[((numbers >> (8 * k)) & 0xFF) as usize];
        }
    }
}
