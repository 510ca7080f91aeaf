//! Resamples drawn from the top down, for evaluation sets of many rows.
//!
//! A resample's figures are functions of how often each rank position is drawn, and that vector
//! of copies is multinomial: |E| draws, each position equally likely. The row-by-row method
//! (`super::flat_differences`) makes all |E| draws; this one draws only the sums the figures
//! read, each from the distribution it has under the row-by-row method (as exactly as
//! rand_distr's binomial sampler draws).
//!
//! Positions are sorted into *cells* by what the figures need of them: the label, and which
//! rules hold them. A rule's size and conversions in a resample are then sums of cell counts,
//! and the cell counts are one multinomial draw (a binomial per cell, each conditional on the
//! cells before). The model's top n' needs more: how many copies fall before the cut, in rank
//! order. Positions are split into leaves of whole groups of equal scores, the leaves into a
//! balanced binary tree, and every node knows how many positions of each cell it holds. Given a
//! node's count in a cell, the copies of that cell fall on its positions uniformly, so its left
//! child's share is binomial (count, positions on the left / positions in the node). The cut of
//! each rule is found by walking down from the root, drawing the children's counts of the nodes
//! on the way (once per resample: a node two rules pass keeps its draw), and, in the leaf the
//! cut falls in, by placing the leaf's copies on its positions cell by cell. A resample then
//! costs a few binomial draws per cell on each level walked, instead of |E| draws.

use std::ops::Range;

use rand_distr::{Binomial, Distribution};

use super::super::ranking::Ranking;
use super::{RankPositions, Stream, group_prefix_sums, top_conversions};

/// Positions a leaf is filled to, in whole groups of equal scores (a group larger than this is a
/// leaf of its own): placing a leaf's copies costs about this many draws.
pub(super) const LEAF_POSITIONS: usize = 512;

/// More cells than this and the row-by-row method is used (every node holds a count per cell).
pub(super) const MAX_CELLS: usize = 1024;

/// Counts per cell over all nodes a tree may hold (a thread's resample state is 8 bytes each).
const MAX_NODE_COUNTS: usize = 1 << 20;

/// The leaf size for `rows` positions in `cells` cells: `LEAF_POSITIONS`, or larger where the
/// nodes' counts would pass `MAX_NODE_COUNTS` (about 2 · rows / leaf nodes, a count per cell).
pub(super) fn leaf_positions_for(rows: usize, cells: usize) -> usize {
    LEAF_POSITIONS.max((2 * rows * cells).div_ceil(MAX_NODE_COUNTS))
}

/// Which rules hold each position, and its label, as a cell number per position.
pub(super) struct Cells {
    /// The cell of each rank position.
    of_position: Vec<u32>,
    /// Per cell: whether its positions converted.
    positive: Vec<bool>,
    /// Per rule: the cells its members are in.
    rule_cells: Vec<Vec<u32>>,
}

impl Cells {
    /// The cells of `positions`, or None when there would be more than `max_cells`.
    pub(super) fn of(positions: &RankPositions, max_cells: usize) -> Option<Cells> {
        let n = positions.label_at.len();
        // Refined one rule at a time: a cell is split into its positions in the rule and those
        // not. `lineage[i][c]` is the cell c came from before rule i, and whether it is in rule i.
        let mut of_position: Vec<u32> = positions.label_at.iter().map(|&y| u32::from(y)).collect();
        let mut cells = 2usize;
        let mut lineage: Vec<Vec<(u32, bool)>> = Vec::with_capacity(positions.members.len());
        let mut in_rule = vec![false; n];
        for members in &positions.members {
            for &p in members {
                in_rule[p as usize] = true;
            }
            let mut renamed = vec![[u32::MAX; 2]; cells];
            let mut parents: Vec<(u32, bool)> = Vec::with_capacity(cells * 2);
            for (cell, &inside) in of_position.iter_mut().zip(&in_rule) {
                let slot = &mut renamed[*cell as usize][usize::from(inside)];
                if *slot == u32::MAX {
                    *slot = parents.len() as u32;
                    parents.push((*cell, inside));
                }
                *cell = *slot;
            }
            for &p in members {
                in_rule[p as usize] = false;
            }
            cells = parents.len();
            if cells > max_cells {
                return None;
            }
            lineage.push(parents);
        }
        // Walk each final cell back through the refinements to its label and its rules.
        let rules = positions.members.len();
        let mut positive = Vec::with_capacity(cells);
        let mut rule_cells = vec![Vec::new(); rules];
        for cell in 0..cells as u32 {
            let mut c = cell;
            for i in (0..rules).rev() {
                let (parent, inside) = lineage[i][c as usize];
                if inside {
                    rule_cells[i].push(cell);
                }
                c = parent;
            }
            positive.push(c == 1);
        }
        Some(Cells {
            of_position,
            positive,
            rule_cells,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.positive.len()
    }

    #[cfg(test)]
    pub(super) fn cell_of(&self, position: usize) -> u32 {
        self.of_position[position]
    }

    #[cfg(test)]
    pub(super) fn positive(&self, cell: u32) -> bool {
        self.positive[cell as usize]
    }

    #[cfg(test)]
    pub(super) fn rule_holds(&self, rule: usize, cell: u32) -> bool {
        self.rule_cells[rule].contains(&cell)
    }
}

/// A node of the tree over the leaves.
struct Node {
    /// The two children, or None for a leaf.
    children: Option<(u32, u32)>,
    /// The leaf this node is (for a leaf).
    leaf: u32,
}

/// A run of whole groups of equal scores.
struct Leaf {
    /// Its rank positions.
    positions: Range<usize>,
    /// Its groups (indices into the ranking's groups).
    groups: Range<usize>,
    /// Per cell present: the cell, and its positions' stretch of `SplitTree::by_cell`.
    cells: Vec<(u32, Range<usize>)>,
}

pub(super) struct SplitTree<'a> {
    ranking: &'a Ranking,
    label_at: &'a [u8],
    cells: Cells,
    nodes: Vec<Node>,
    /// nodes × cells: how many positions of each cell each node holds.
    held: Vec<u32>,
    leaves: Vec<Leaf>,
    /// The rank positions, leaf by leaf, and within a leaf by cell.
    by_cell: Vec<u32>,
}

/// A resample's state on one thread, reused from resample to resample.
pub(super) struct Scratch {
    /// nodes × cells: the resample's copies of each cell under each node (valid for the root,
    /// and for the children of nodes whose `drawn` is this resample's).
    counts: Vec<u64>,
    drawn: Vec<u64>,
    /// The resample being drawn, plus one (0: none yet).
    epoch: u64,
    /// Leaves placed in this resample: the leaf, and the prefix sums of copies and of
    /// conversions over its groups, from the totals before it (as `super::top_conversions`
    /// reads them).
    placed: Vec<(u32, Vec<u64>, Vec<u64>)>,
    /// Copies per position of the leaf being placed.
    copies: Vec<u32>,
}

impl<'a> SplitTree<'a> {
    pub(super) fn new(
        ranking: &'a Ranking,
        positions: &'a RankPositions,
        cells: Cells,
        leaf_positions: usize,
    ) -> SplitTree<'a> {
        let k = cells.len();
        let mut leaves = Vec::new();
        let mut group = 0;
        while group < ranking.groups() {
            let first = group;
            let start = ranking.group(group).start;
            // A large group closes the leaf before it and is a leaf of its own.
            group += 1;
            if ranking.group(first).len() < leaf_positions {
                while group < ranking.groups() && ranking.group(group).end - start <= leaf_positions
                {
                    group += 1;
                }
            }
            let end = ranking.group(group - 1).end;
            leaves.push(Leaf {
                positions: start..end,
                groups: first..group,
                cells: Vec::new(),
            });
        }
        // Each leaf's positions sorted by cell (a counting sort), and its count per cell.
        let mut by_cell = Vec::with_capacity(positions.label_at.len());
        let mut leaf_held = vec![0u32; leaves.len() * k];
        let mut fill = vec![0usize; k];
        for (l, leaf) in leaves.iter_mut().enumerate() {
            let held = &mut leaf_held[l * k..(l + 1) * k];
            for p in leaf.positions.clone() {
                held[cells.of_position[p] as usize] += 1;
            }
            let base = by_cell.len();
            let mut at = base;
            for (c, &h) in held.iter().enumerate() {
                fill[c] = at;
                if h > 0 {
                    leaf.cells.push((c as u32, at..at + h as usize));
                }
                at += h as usize;
            }
            by_cell.resize(at, 0);
            for p in leaf.positions.clone() {
                let slot = &mut fill[cells.of_position[p] as usize];
                by_cell[*slot] = p as u32;
                *slot += 1;
            }
        }
        let mut tree = SplitTree {
            ranking,
            label_at: &positions.label_at,
            cells,
            nodes: Vec::with_capacity(2 * leaves.len()),
            held: Vec::with_capacity(2 * leaves.len() * k),
            leaves,
            by_cell,
        };
        tree.build(0..tree.leaves.len(), &leaf_held);
        tree
    }

    /// Adds the node over `leaves` and those below it; returns its number. Node 0 is the root.
    fn build(&mut self, leaves: Range<usize>, leaf_held: &[u32]) -> u32 {
        let k = self.cells.len();
        let id = self.nodes.len();
        self.nodes.push(Node {
            children: None,
            leaf: leaves.start as u32,
        });
        self.held.resize((id + 1) * k, 0);
        if leaves.len() == 1 {
            let l = leaves.start;
            self.held[id * k..(id + 1) * k].copy_from_slice(&leaf_held[l * k..(l + 1) * k]);
            return id as u32;
        }
        let middle = leaves.start + leaves.len() / 2;
        let left = self.build(leaves.start..middle, leaf_held);
        let right = self.build(middle..leaves.end, leaf_held);
        for c in 0..k {
            self.held[id * k + c] =
                self.held[left as usize * k + c] + self.held[right as usize * k + c];
        }
        self.nodes[id].children = Some((left, right));
        id as u32
    }

    /// How many per-cell counts the nodes hold.
    #[cfg(test)]
    pub(super) fn node_counts(&self) -> usize {
        self.held.len()
    }

    /// Levels from the root to the deepest leaf.
    pub(super) fn depth(leaves: usize) -> usize {
        (usize::BITS - leaves.max(1).next_power_of_two().leading_zeros()) as usize
    }

    pub(super) fn scratch(&self) -> Scratch {
        let largest = self
            .leaves
            .iter()
            .map(|l| l.positions.len())
            .max()
            .unwrap_or(0);
        Scratch {
            counts: vec![0; self.nodes.len() * self.cells.len()],
            drawn: vec![0; self.nodes.len()],
            epoch: 0,
            placed: Vec::new(),
            copies: vec![0; largest],
        }
    }

    /// Resample `b`: per rule, (model's rate − rule's rate), None when the rule drew nobody.
    pub(super) fn resample(&self, s: &mut Scratch, seed: u64, b: u64) -> Vec<Option<f64>> {
        let stream = &mut Stream::new(seed, b);
        let k = self.cells.len();
        s.epoch += 1;
        s.placed.clear();
        // The root: |E| draws over the cells, a binomial per cell given the cells before it.
        let (mut draws, mut positions) = (self.label_at.len() as u64, self.label_at.len() as u64);
        for c in 0..k {
            let held = u64::from(self.held[c]);
            let count = if held == positions {
                draws
            } else {
                binomial(stream, draws, held, positions)
            };
            s.counts[c] = count;
            draws -= count;
            positions -= held;
        }
        self.cells
            .rule_cells
            .iter()
            .map(|cells| {
                let (mut size, mut conversions) = (0u64, 0u64);
                for &c in cells {
                    let count = s.counts[c as usize];
                    size += count;
                    if self.cells.positive[c as usize] {
                        conversions += count;
                    }
                }
                if size == 0 {
                    return None;
                }
                let model = self.top_conversions(s, stream, size);
                Some((model - conversions as f64) / size as f64)
            })
            .collect()
    }

    /// Expected conversions among the top `n` copies of the resample (pro rata inside the group
    /// the cut falls in), `n` at most |E|.
    fn top_conversions(&self, s: &mut Scratch, stream: &mut Stream, n: u64) -> f64 {
        let k = self.cells.len();
        let (mut rows, mut conversions) = (0u64, 0u64);
        let mut node = 0usize;
        while let Some((left, right)) = self.nodes[node].children {
            let (left, right) = (left as usize, right as usize);
            if s.drawn[node] != s.epoch {
                for c in 0..k {
                    let count = s.counts[node * k + c];
                    let on_left = u64::from(self.held[left * k + c]);
                    let in_node = u64::from(self.held[node * k + c]);
                    let drawn_left = if count == 0 || on_left == in_node {
                        count
                    } else {
                        binomial(stream, count, on_left, in_node)
                    };
                    s.counts[left * k + c] = drawn_left;
                    s.counts[right * k + c] = count - drawn_left;
                }
                s.drawn[node] = s.epoch;
            }
            let (left_rows, left_conversions) = self.totals(&s.counts[left * k..(left + 1) * k]);
            if rows + left_rows >= n {
                node = left;
            } else {
                rows += left_rows;
                conversions += left_conversions;
                node = right;
            }
        }
        // The copies before the leaf are `rows`, whichever rule walks down to it.
        let (prefix_rows, prefix_conversions) = self.place(s, stream, node, (rows, conversions));
        top_conversions(prefix_rows, prefix_conversions, n)
    }

    /// The resample's copies and conversions over `counts`, a node's count per cell.
    fn totals(&self, counts: &[u64]) -> (u64, u64) {
        let (mut rows, mut conversions) = (0u64, 0u64);
        for (&count, &positive) in counts.iter().zip(&self.cells.positive) {
            rows += count;
            if positive {
                conversions += count;
            }
        }
        (rows, conversions)
    }

    /// The prefix sums of copies and conversions over the groups of leaf node `node`, from
    /// `before` (the totals before the leaf), placed once per resample.
    fn place<'s>(
        &self,
        s: &'s mut Scratch,
        stream: &mut Stream,
        node: usize,
        before: (u64, u64),
    ) -> (&'s [u64], &'s [u64]) {
        let k = self.cells.len();
        let leaf = self.nodes[node].leaf;
        let at = match s.placed.iter().position(|(l, ..)| *l == leaf) {
            Some(at) => at,
            None => {
                let l = &self.leaves[leaf as usize];
                let counts = &s.counts[node * k..(node + 1) * k];
                let mut rows = vec![0u64; l.groups.len() + 1];
                let mut conversions = vec![0u64; l.groups.len() + 1];
                (rows[0], conversions[0]) = before;
                if l.groups.len() == 1 {
                    // One group: its copies are the leaf's, wherever they fall in it.
                    let (group_rows, group_conversions) = self.totals(counts);
                    rows[1] = before.0 + group_rows;
                    conversions[1] = before.1 + group_conversions;
                } else {
                    let copies = &mut s.copies[..l.positions.len()];
                    copies.fill(0);
                    for (cell, stretch) in &l.cells {
                        let held = &self.by_cell[stretch.clone()];
                        for _ in 0..counts[*cell as usize] {
                            let p = held[stream.below(held.len())] as usize;
                            copies[p - l.positions.start] += 1;
                        }
                    }
                    let copies = &*copies;
                    group_prefix_sums(
                        self.ranking,
                        self.label_at,
                        l.groups.clone(),
                        |p| copies[p - l.positions.start],
                        &mut rows,
                        &mut conversions,
                    );
                }
                s.placed.push((leaf, rows, conversions));
                s.placed.len() - 1
            }
        };
        let (_, rows, conversions) = &s.placed[at];
        (rows, conversions)
    }
}

/// A draw from Binomial(`n`, `part` / `whole`), part <= whole and whole > 0.
fn binomial(stream: &mut Stream, n: u64, part: u64, whole: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let p = part as f64 / whole as f64;
    Binomial::new(n, p)
        .expect("a share of a count is a probability")
        .sample(stream)
}
