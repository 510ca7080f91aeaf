//! A pure-Rust evaluator for LightGBM text models, exact to LightGBM's own prediction.
//!
//! Semantics follow LightGBM's `Tree::NumericalDecision` / `CategoricalDecision` and the C API's
//! dense-row path (see reference/lightgbm.md): values with |x| <= 1e-35 (as a float, widened) are
//! read as 0; missing type None treats NaN as 0; Zero sends NaN and (near-)zeros the default way;
//! NaN sends only NaN the default way; categorical splits send NaN, negative, unseen and
//! out-of-bitset codes right. Thresholds are compared in f64, leaf values summed in tree order
//! from 0, `average_output` divides by the iteration count, and the binary objective's sigmoid is
//! applied last, so results match LightGBM bit for bit.
//!
//! Three ways to run the trees, with the same results: over a block of rows at once, every split
//! a bitmask of the rows (`masks`, the default for batches of rows); compiled to machine code at
//! load (`jit`, for a handful of rows, and for models the masks cannot take); or walked: each
//! tree's nodes are one flat array, eight rows go down a tree side by side, and rows are
//! evaluated in blocks (their values stay in cache). Blocks of rows run on all cores either way.

use rayon::prelude::*;

mod jit;
mod masks;
mod ranked;
pub use jit::CompiledTrees;
pub use masks::MaskedTrees;
pub use ranked::RankedRows;

use crate::data::encode::Matrix;

/// LightGBM's kZeroThreshold: 1e-35 as a float, widened to double.
const ZERO_THRESHOLD: f64 = 1e-35f32 as f64;

/// A value as the C API's dense path reads it: |x| <= kZeroThreshold is dropped (NaN kept), so
/// reads as 0 (-0.0 included, which becomes +0.0).
fn as_read(x: f64) -> f64 {
    if x.abs() <= ZERO_THRESHOLD { 0.0 } else { x }
}

const CATEGORICAL: u8 = 1;
const DEFAULT_LEFT: u8 = 2;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

/// Rows evaluated together (their features stay in cache while a block of trees runs).
const ROW_BLOCK: usize = 64;
/// Rows a compiled function runs through its trees before the next function: their values stay
/// in cache (2,048 rows of 17 features: 280 KB, plus their keys, one i64 per value the trees
/// read: about a core's L2), and every function runs long enough for the branch predictor to
/// learn its splits (chosen by measuring 256 to 4,096 rows on bench (b): bench/RESULTS.md,
/// earlier changes).
const COMPILED_ROW_BLOCK: usize = 2048;
/// Rows walked through one tree side by side: independent paths keep the core busy while each
/// waits for its next node.
const LANES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Numerical: the threshold. Categorical: unused (the bitset is at `cat_start`).
    threshold: f64,
    feature: u32,
    /// Child indexes: >= 0 an internal node, < 0 the leaf `!child`.
    left: i32,
    right: i32,
    /// Categorical: offset and length (in u32 words) of the left-set bitset.
    cat_start: u32,
    cat_len: u32,
    decision: u8,
}

#[derive(Debug, Clone, PartialEq)]
struct Tree {
    /// Internal nodes, then one node per leaf whose children are itself: every row can take
    /// exactly `depth` steps without checking whether it has reached a leaf.
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    /// How many of `nodes` are internal: node `internal + i` is leaf `i`.
    internal: usize,
    /// The longest root-to-leaf path.
    depth: usize,
}

impl Tree {
    /// The internal nodes in preorder from the root, each left subtree before its right: every
    /// parent before its children (the parser checked the children form a tree).
    fn preorder(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.internal);
        let mut stack = vec![0usize];
        while let Some(index) = stack.pop() {
            if index < self.internal {
                order.push(index);
                stack.push(self.nodes[index].right as usize);
                stack.push(self.nodes[index].left as usize);
            }
        }
        order
    }
}

/// Which of the ways to run the trees a prediction uses.
#[derive(Clone, Copy)]
enum Evaluator<'a> {
    Walk,
    /// The machine code, and the masks for batches where the model has them.
    Compiled(&'a CompiledTrees),
    /// The masks alone, whatever the number of rows.
    Masked(&'a MaskedTrees),
}

impl Evaluator<'_> {
    fn of(compiled: Option<&CompiledTrees>) -> Evaluator<'_> {
        compiled.map_or(Evaluator::Walk, Evaluator::Compiled)
    }

    /// Rows per block: the walker's stay in cache; the others' are worth a compiled function's
    /// or a block of masks' set-up.
    fn block_rows(self) -> usize {
        match self {
            Evaluator::Walk => ROW_BLOCK,
            Evaluator::Compiled(_) | Evaluator::Masked(_) => COMPILED_ROW_BLOCK,
        }
    }
}

/// What a model's output means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// 1 / (1 + exp(-s * raw)), LightGBM's binary objective with sigmoid s (xentropy: s = 1).
    Sigmoid(f64),
}

/// A parsed LightGBM model ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    pub feature_names: Vec<String>,
    /// Indexes of features LightGBM treats as categorical.
    pub categorical_features: Vec<usize>,
    /// The `pandas_categorical` line: one category list per categorical feature, when present.
    pub pandas_categorical: Option<Vec<Vec<serde_json::Value>>>,
    trees: Vec<Tree>,
    bitsets: Vec<u32>,
    average_output: bool,
    iterations: usize,
    transform: Transform,
    /// The objective as the canonical text writes it (`binary sigmoid:1`, `cross_entropy`).
    objective: String,
    /// One `feature_infos` entry per feature (as read, or `none` when the file had none).
    feature_infos: Vec<String>,
}

/// A model text that cannot be evaluated, with the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

fn numbers<T: std::str::FromStr>(key: &str, text: &str) -> Result<Vec<T>, ParseError> {
    text.split_whitespace()
        .map(|v| {
            v.parse::<T>()
                .or_else(|_| err(format!("{key}: cannot read {v:?}")))
        })
        .collect()
}

impl TreeEnsemble {
    /// Parses and checks LightGBM's text model format (as written by any LightGBM 3 or 4, C API
    /// or Python), trusting nothing in it: every count and index is checked against the arrays
    /// the text itself holds (so nothing allocated exceeds a small multiple of its size), trees
    /// must be numbered in order and end with `end of trees`, children must form a tree, leaf
    /// values and the sigmoid must be finite, categorical splits must name a bitset. CRLF line
    /// ends are read as LF. Numerical thresholds may be NaN or infinite: `x <= NaN` is false,
    /// so every value that is not missing goes right, as in LightGBM.
    pub fn parse(text: &str) -> Result<TreeEnsemble, ParseError> {
        let mut lines = text.lines().peekable();
        let mut header: Vec<(&str, &str)> = Vec::new();
        while let Some(line) = lines.peek() {
            if line.starts_with("Tree=") || line.starts_with("end of trees") {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                header.push((k.trim(), v));
            } else if line.trim() == "average_output" {
                header.push(("average_output", ""));
            }
            lines.next();
        }
        let get = |k: &str| header.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if get("version").is_none() && get("num_class").is_none() {
            return err("not a LightGBM text model (no version= or num_class= line)");
        }
        let whole = |key: &str, default: &str| -> Result<usize, ParseError> {
            let v = get(key).unwrap_or(default).trim();
            v.parse()
                .or_else(|_| err(format!("{key}={v:?} is not a whole number")))
        };
        let num_class = whole("num_class", "1")?;
        let per_iteration = whole("num_tree_per_iteration", "1")?;
        if num_class != 1 || per_iteration != 1 {
            return err(format!(
                "num_class={num_class}: audience scores binary models (one tree per iteration)"
            ));
        }
        let objective = get("objective").unwrap_or("").trim();
        let (transform, objective) = match objective.split_whitespace().next() {
            Some("binary") => {
                let sigmoid = objective
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix("sigmoid:"))
                    .map(|s| s.parse::<f64>())
                    .transpose()
                    .or_else(|_| err(format!("objective: bad sigmoid in {objective:?}")))?
                    .unwrap_or(1.0);
                if !(sigmoid.is_finite() && sigmoid > 0.0) {
                    return err(format!(
                        "objective {objective:?}: the sigmoid must be a positive number"
                    ));
                }
                (
                    Transform::Sigmoid(sigmoid),
                    format!("binary sigmoid:{}", float_text(sigmoid)),
                )
            }
            Some("cross_entropy") | Some("xentropy") => {
                (Transform::Sigmoid(1.0), "cross_entropy".to_string())
            }
            _ => {
                return err(format!(
                    "objective {objective:?}: audience scores binary classification models"
                ));
            }
        };
        let feature_names: Vec<String> = get("feature_names")
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        if feature_names.is_empty() {
            return err("the model names no features (no feature_names= line)");
        }
        let max_feature_idx = whole("max_feature_idx", &(feature_names.len() - 1).to_string())?;
        if max_feature_idx.checked_add(1) != Some(feature_names.len()) {
            return err(format!(
                "feature_names lists {} names but max_feature_idx is {max_feature_idx}",
                feature_names.len()
            ));
        }
        let num_features = feature_names.len();
        let mut feature_infos: Vec<String> = get("feature_infos")
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        if feature_infos.len() != num_features {
            feature_infos = vec!["none".to_string(); num_features];
        }
        let average_output = get("average_output").is_some();
        let declared_trees: Option<usize> = get("tree_sizes").map(|v| v.split_whitespace().count());

        // The trees' sections are found in order, then parsed on every core, each with its own
        // bitsets, which are then laid end to end. Errors are reported as one pass in file
        // order meets them: a bad tree before a misnumbered one after it, before a missing end.
        let mut sections: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
        let mut misnumbered = None;
        let mut ended = false;
        while let Some(line) = lines.next() {
            if line.starts_with("end of trees") {
                ended = true;
                break;
            }
            if !line.starts_with("Tree=") {
                continue;
            }
            let number = line["Tree=".len()..].trim();
            if number != sections.len().to_string() {
                misnumbered = Some(format!(
                    "{line} where Tree={} was expected: a tree is missing or out of order",
                    sections.len()
                ));
                break;
            }
            let mut fields: Vec<(&str, &str)> = Vec::new();
            while let Some(l) = lines.peek() {
                if l.trim().is_empty() || l.starts_with("Tree=") || l.starts_with("end of trees") {
                    break;
                }
                if let Some((k, v)) = l.split_once('=') {
                    fields.push((k, v));
                }
                lines.next();
            }
            sections.push((line, fields));
        }
        let parsed: Vec<Result<(Tree, Vec<u32>), ParseError>> = sections
            .par_iter()
            .map(|(title, fields)| {
                let mut words = Vec::new();
                parse_tree(title, fields, num_features, &mut words).map(|tree| (tree, words))
            })
            .collect();
        let mut trees = Vec::with_capacity(parsed.len());
        let mut bitsets = Vec::new();
        for result in parsed {
            let (mut tree, words) = result?;
            // A tree's bitsets were numbered from its own first word: moved past the earlier
            // trees' words.
            let offset = bitsets.len();
            if u32::try_from(offset + words.len()).is_err() {
                return err("the categorical bitsets hold more than 2^32 words");
            }
            let offset = offset as u32;
            for node in &mut tree.nodes[..tree.internal] {
                if node.decision & CATEGORICAL != 0 {
                    node.cat_start += offset;
                }
            }
            bitsets.extend_from_slice(&words);
            trees.push(tree);
        }
        if let Some(message) = misnumbered {
            return err(message);
        }
        if !ended {
            return err("the model text ends before `end of trees`: the file is incomplete");
        }
        if trees.is_empty() {
            return err("the model has no trees");
        }
        if let Some(declared) = declared_trees
            && declared != trees.len()
        {
            return err(format!(
                "tree_sizes lists {declared} trees but the file holds {}: it was cut or edited",
                trees.len()
            ));
        }

        // The rest: parameters (for categorical_feature) and the pandas_categorical line.
        let rest: Vec<&str> = lines.collect();
        let mut categorical_features: Vec<usize> = rest
            .iter()
            .find_map(|l| l.strip_prefix("[categorical_feature: "))
            .map(|v| {
                v.trim_end_matches(']')
                    .split(',')
                    .filter_map(|i| i.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if categorical_features.is_empty()
            && let Some(infos) = get("feature_infos")
        {
            categorical_features = infos
                .split_whitespace()
                .enumerate()
                .filter(|(_, info)| info.starts_with("-1:"))
                .map(|(i, _)| i)
                .collect();
        }
        categorical_features.retain(|&i| i < num_features);
        categorical_features.sort_unstable();
        categorical_features.dedup();
        let pandas_categorical = rest
            .iter()
            .rev()
            .take(3)
            .find_map(|l| l.trim().strip_prefix("pandas_categorical:"))
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .and_then(|v| match v {
                serde_json::Value::Array(lists) => lists
                    .into_iter()
                    .map(|l| match l {
                        serde_json::Value::Array(values) => Some(values),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            });
        Ok(TreeEnsemble {
            feature_names,
            categorical_features,
            pandas_categorical,
            iterations: trees.len(),
            trees,
            bitsets,
            average_output,
            transform,
            objective,
            feature_infos,
        })
    }

    /// The model as LightGBM text, written from what was parsed and checked: LF line ends, the
    /// trees numbered in order with `tree_sizes` that match, each categorical split's bitset
    /// renumbered from 0. LightGBM's own loader is only ever given this text, never the file:
    /// it trusts `tree_sizes=` and array lengths, and a wrong one crashes it.
    pub fn to_model_text(&self) -> String {
        let mut blocks = Vec::with_capacity(self.trees.len());
        for (i, tree) in self.trees.iter().enumerate() {
            blocks.push(self.tree_text(i, tree));
        }
        let mut out = String::new();
        out.push_str("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n");
        out.push_str(&format!("max_feature_idx={}\n", self.num_features() - 1));
        out.push_str(&format!("objective={}\n", self.objective));
        if self.average_output {
            out.push_str("average_output\n");
        }
        out.push_str(&format!("feature_names={}\n", self.feature_names.join(" ")));
        out.push_str(&format!("feature_infos={}\n", self.feature_infos.join(" ")));
        let sizes: Vec<String> = blocks.iter().map(|b| b.len().to_string()).collect();
        out.push_str(&format!("tree_sizes={}\n\n", sizes.join(" ")));
        for block in &blocks {
            out.push_str(block);
        }
        out.push_str("end of trees\n");
        out
    }

    fn tree_text(&self, index: usize, tree: &Tree) -> String {
        let join = |values: Vec<String>| values.join(" ");
        let internal = &tree.nodes[..tree.internal];
        let child = |c: i32| {
            let c = c as usize;
            if c < tree.internal {
                c as i32
            } else {
                !((c - tree.internal) as i32)
            }
        };
        let mut boundaries = vec![0usize];
        let mut words: Vec<String> = Vec::new();
        let thresholds: Vec<String> = internal
            .iter()
            .map(|n| {
                if n.decision & CATEGORICAL != 0 {
                    let k = boundaries.len() - 1;
                    let start = n.cat_start as usize;
                    words.extend(
                        self.bitsets[start..start + n.cat_len as usize]
                            .iter()
                            .map(u32::to_string),
                    );
                    boundaries.push(words.len());
                    k.to_string()
                } else {
                    float_text(n.threshold)
                }
            })
            .collect();
        let mut t = format!("Tree={index}\nnum_leaves={}\n", tree.leaves.len());
        t.push_str(&format!("num_cat={}\n", boundaries.len() - 1));
        t.push_str(&format!(
            "split_feature={}\n",
            join(internal.iter().map(|n| n.feature.to_string()).collect())
        ));
        t.push_str(&format!("threshold={}\n", thresholds.join(" ")));
        t.push_str(&format!(
            "decision_type={}\n",
            join(internal.iter().map(|n| n.decision.to_string()).collect())
        ));
        t.push_str(&format!(
            "left_child={}\n",
            join(internal.iter().map(|n| child(n.left).to_string()).collect())
        ));
        t.push_str(&format!(
            "right_child={}\n",
            join(
                internal
                    .iter()
                    .map(|n| child(n.right).to_string())
                    .collect()
            )
        ));
        t.push_str(&format!(
            "leaf_value={}\n",
            join(tree.leaves.iter().map(|&v| float_text(v)).collect())
        ));
        if boundaries.len() > 1 {
            t.push_str(&format!(
                "cat_boundaries={}\n",
                join(boundaries.iter().map(usize::to_string).collect())
            ));
            t.push_str(&format!("cat_threshold={}\n", words.join(" ")));
        }
        t.push_str("is_linear=0\nshrinkage=1\n\n\n");
        t
    }

    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// Probabilities for every row of `matrix` (row-major, one column per model feature), in
    /// parallel over blocks of rows.
    pub fn predict(&self, matrix: &Matrix) -> Vec<f64> {
        self.predict_using(matrix, None)
    }

    /// Like `predict`, with the trees compiled to machine code when `compiled` is given (it must
    /// come from this ensemble).
    pub fn predict_using(&self, matrix: &Matrix, compiled: Option<&CompiledTrees>) -> Vec<f64> {
        self.predict_with(matrix, Evaluator::of(compiled))
    }

    /// Single-threaded prediction (for measuring evaluation at one thread).
    pub fn predict_serial(&self, matrix: &Matrix, compiled: Option<&CompiledTrees>) -> Vec<f64> {
        let evaluator = Evaluator::of(compiled);
        let block_rows = evaluator.block_rows();
        let mut out = vec![0.0; matrix.rows];
        for (block, out) in out.chunks_mut(block_rows).enumerate() {
            let start = block * block_rows;
            let rows = &matrix.values[start * matrix.cols..(start + out.len()) * matrix.cols];
            self.predict_block(rows, matrix.cols, out, evaluator);
        }
        out
    }

    /// Compiles the trees to machine code for this machine, and prepares them for evaluation by
    /// masks where the model allows.
    pub fn compile(&self) -> Result<CompiledTrees, String> {
        CompiledTrees::compile(self)
    }

    /// Probabilities for every row of `matrix` by the mask evaluator alone, whatever the number
    /// of rows (for tests and benches; `predict_using` picks it for batches), or None when the
    /// model is one it does not take.
    pub fn predict_masked(&self, matrix: &Matrix) -> Option<Vec<f64>> {
        let masked = MaskedTrees::new(self)?;
        Some(self.predict_with(matrix, Evaluator::Masked(&masked)))
    }

    /// Every row of `matrix` by `evaluator`, in parallel over blocks of rows.
    fn predict_with(&self, matrix: &Matrix, evaluator: Evaluator) -> Vec<f64> {
        assert_eq!(matrix.cols, self.num_features(), "one column per feature");
        let block_rows = evaluator.block_rows();
        let mut out = vec![0.0; matrix.rows];
        out.par_chunks_mut(block_rows)
            .enumerate()
            .for_each(|(block, out)| {
                let start = block * block_rows;
                let rows = &matrix.values[start * matrix.cols..(start + out.len()) * matrix.cols];
                self.predict_block(rows, matrix.cols, out, evaluator);
            });
        out
    }

    fn predict_block(&self, rows: &[f64], cols: usize, out: &mut [f64], evaluator: Evaluator) {
        let mut raw = vec![0.0f64; out.len()];
        self.accumulate_block(rows, cols, &mut raw, evaluator);
        for (o, r) in out.iter_mut().zip(raw) {
            *o = self.output_of_raw(r);
        }
    }

    /// The prediction for a row whose trees' leaf values sum to `raw` (in tree order).
    #[inline]
    pub fn output_of_raw(&self, mut raw: f64) -> f64 {
        if self.average_output {
            raw /= self.iterations as f64;
        }
        let Transform::Sigmoid(s) = self.transform;
        1.0 / (1.0 + (-s * raw).exp())
    }

    /// Adds the leaf values of `rows` (row-major, `cols` values each) to `raw`, tree by tree.
    fn accumulate_block(&self, rows: &[f64], cols: usize, raw: &mut [f64], evaluator: Evaluator) {
        // Most blocks hold no value that `as_read` changes, and are read as they are.
        let zeroed: Vec<f64>;
        let rows = if rows.iter().any(|&x| as_read(x).to_bits() != x.to_bits()) {
            zeroed = rows.iter().map(|&x| as_read(x)).collect();
            &zeroed[..]
        } else {
            rows
        };
        match evaluator {
            Evaluator::Compiled(code) => code.accumulate(rows, cols, raw),
            Evaluator::Masked(masked) => masked.accumulate(rows, cols, raw),
            Evaluator::Walk => {
                for tree in &self.trees {
                    walk_rows(tree, raw, |node, r| {
                        let n = &tree.nodes[node];
                        let x = rows[r * cols + n.feature as usize];
                        if n.decision & CATEGORICAL != 0 {
                            self.goes_left_categorical(n, x)
                        } else {
                            goes_left_numerical(n, x)
                        }
                    });
                }
            }
        }
    }

    #[inline]
    fn goes_left_categorical(&self, n: &Node, x: f64) -> bool {
        if x.is_nan() {
            return false;
        }
        // C++ truncates toward zero; beyond i32 it is undefined (x86 gives INT_MIN: right),
        // and Rust saturates to i32::MAX, which lies past any bitset: right as well.
        let code = x as i32;
        if code < 0 {
            return false;
        }
        let word = (code / 32) as usize;
        if word >= n.cat_len as usize {
            return false;
        }
        (self.bitsets[n.cat_start as usize + word] >> (code % 32)) & 1 == 1
    }
}

/// Walks every row of `raw` through `tree`, `goes_left(node, row)` deciding each split, and adds
/// each row's leaf value to `raw[row]`: LANES rows at a time side by side (independent paths keep
/// the core busy while each waits for its next node).
#[inline(always)]
fn walk_rows(tree: &Tree, raw: &mut [f64], goes_left: impl Fn(usize, usize) -> bool) {
    let mut start = 0;
    while start + LANES <= raw.len() {
        walk_lanes::<LANES>(tree, &mut raw[start..start + LANES], |node, k| {
            goes_left(node, start + k)
        });
        start += LANES;
    }
    while start < raw.len() {
        walk_lanes::<1>(tree, &mut raw[start..start + 1], |node, _| {
            goes_left(node, start)
        });
        start += 1;
    }
}

/// Walks N rows through `tree` together, `goes_left(node, lane)` deciding each split, and adds
/// each row's leaf value to `raw[lane]`.
#[inline(always)]
fn walk_lanes<const N: usize>(
    tree: &Tree,
    raw: &mut [f64],
    goes_left: impl Fn(usize, usize) -> bool,
) {
    let mut at = [0usize; N];
    for _ in 0..tree.depth {
        // Unbalanced (leaf-wise) trees: stop once every lane has reached a leaf.
        if at.iter().all(|&node| node >= tree.internal) {
            break;
        }
        for (k, node) in at.iter_mut().enumerate() {
            let n = &tree.nodes[*node];
            *node = if goes_left(*node, k) { n.left } else { n.right } as usize;
        }
    }
    for (k, node) in at.iter().enumerate() {
        raw[k] += tree.leaves[node - tree.internal];
    }
}

#[inline]
fn goes_left_numerical(n: &Node, x: f64) -> bool {
    let missing = (n.decision >> 2) & 3;
    let mut x = x;
    if x.is_nan() && missing != MISSING_NAN {
        x = 0.0;
    }
    if (missing == MISSING_ZERO && x.abs() <= ZERO_THRESHOLD)
        || (missing == MISSING_NAN && x.is_nan())
    {
        return n.decision & DEFAULT_LEFT != 0;
    }
    x <= n.threshold
}

fn parse_tree(
    title: &str,
    fields: &[(&str, &str)],
    num_features: usize,
    bitsets: &mut Vec<u32>,
) -> Result<Tree, ParseError> {
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let need = |k: &str| get(k).ok_or_else(|| ParseError(format!("{title}: no {k}= line")));
    let num_leaves: usize = need("num_leaves")?
        .trim()
        .parse()
        .or_else(|_| err(format!("{title}: bad num_leaves")))?;
    if get("is_linear").map(str::trim) == Some("1") {
        return err(format!(
            "{title} is a linear tree (linear_tree=true): audience does not evaluate linear trees"
        ));
    }
    if num_leaves == 0 {
        return err(format!(
            "{title}: num_leaves=0 (a tree has at least one leaf)"
        ));
    }
    let leaves: Vec<f64> = numbers("leaf_value", need("leaf_value")?)?;
    if leaves.len() != num_leaves {
        return err(format!(
            "{title}: {} leaf values for {num_leaves} leaves",
            leaves.len()
        ));
    }
    if let Some(bad) = leaves.iter().find(|v| !v.is_finite()) {
        return err(format!(
            "{title}: leaf value {bad}: a model whose output is not a number cannot give a probability"
        ));
    }
    if num_leaves == 1 {
        return Ok(Tree {
            nodes: vec![leaf_node(0)],
            leaves,
            internal: 0,
            depth: 0,
        });
    }
    let internal = num_leaves - 1;
    let features: Vec<u32> = numbers("split_feature", need("split_feature")?)?;
    let thresholds: Vec<f64> = numbers("threshold", need("threshold")?)?;
    let decisions: Vec<i16> = numbers("decision_type", need("decision_type")?)?;
    let left: Vec<i32> = numbers("left_child", need("left_child")?)?;
    let right: Vec<i32> = numbers("right_child", need("right_child")?)?;
    for (key, len) in [
        ("split_feature", features.len()),
        ("threshold", thresholds.len()),
        ("decision_type", decisions.len()),
        ("left_child", left.len()),
        ("right_child", right.len()),
    ] {
        if len != internal {
            return err(format!(
                "{title}: {key} has {len} values for {internal} splits"
            ));
        }
    }
    let num_cat: usize = get("num_cat")
        .unwrap_or("0")
        .trim()
        .parse()
        .or_else(|_| err(format!("{title}: bad num_cat")))?;
    let (boundaries, words): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        let boundaries: Vec<usize> = numbers("cat_boundaries", need("cat_boundaries")?)?;
        let words: Vec<u32> = numbers("cat_threshold", need("cat_threshold")?)?;
        // num_cat + 1 boundaries, from 0, never decreasing, the last at the end of the words.
        if boundaries.len() != num_cat + 1
            || boundaries[0] != 0
            || boundaries.windows(2).any(|w| w[0] > w[1])
            || boundaries[num_cat] != words.len()
        {
            return err(format!(
                "{title}: cat_boundaries ({} values) do not cut the {} cat_threshold words into num_cat={num_cat} bitsets",
                boundaries.len(),
                words.len()
            ));
        }
        (boundaries, words)
    } else {
        (Vec::new(), Vec::new())
    };
    let offset = bitsets.len();
    bitsets.extend_from_slice(&words);
    let mut nodes = Vec::with_capacity(internal);
    for i in 0..internal {
        let decision = u8::try_from(decisions[i])
            .ok()
            .filter(|d| *d <= 15)
            .ok_or_else(|| {
                ParseError(format!(
                    "{title}: decision_type {} out of range",
                    decisions[i]
                ))
            })?;
        if features[i] as usize >= num_features {
            return err(format!(
                "{title}: split on feature {} of {num_features}",
                features[i]
            ));
        }
        for child in [left[i], right[i]] {
            let bad = if child >= 0 {
                child as usize >= internal
            } else {
                (!child) as usize >= num_leaves
            };
            if bad {
                return err(format!("{title}: child {child} out of range"));
            }
        }
        let (cat_start, cat_len) = if decision & CATEGORICAL != 0 {
            let t = thresholds[i];
            if !(t >= 0.0 && t.fract() == 0.0 && t < num_cat as f64) {
                return err(format!(
                    "{title}: categorical split {i} names bitset {t} of num_cat={num_cat}"
                ));
            }
            let k = t as usize;
            (
                (offset + boundaries[k]) as u32,
                (boundaries[k + 1] - boundaries[k]) as u32,
            )
        } else {
            (0, 0)
        };
        nodes.push(Node {
            threshold: thresholds[i],
            feature: features[i],
            left: left[i],
            right: right[i],
            cat_start,
            cat_len,
            decision,
        });
    }
    // Children as node indexes: leaf i becomes node internal + i, which points at itself.
    let to_index = |child: i32| {
        if child >= 0 {
            child
        } else {
            (internal + (!child) as usize) as i32
        }
    };
    for n in &mut nodes {
        n.left = to_index(n.left);
        n.right = to_index(n.right);
    }
    // A tree: from the root every node is reached exactly once (no node with two parents, no
    // cycle), and every node and leaf is reached.
    let mut seen = vec![false; internal + num_leaves];
    let mut depth = 0;
    let mut stack = vec![(0usize, 0usize)];
    while let Some((node, d)) = stack.pop() {
        if std::mem::replace(&mut seen[node], true) {
            return err(format!("{title}: the children do not form a tree"));
        }
        if node >= internal {
            depth = depth.max(d);
            continue;
        }
        stack.push((nodes[node].left as usize, d + 1));
        stack.push((nodes[node].right as usize, d + 1));
    }
    if seen.iter().any(|s| !s) {
        return err(format!(
            "{title}: some nodes or leaves are not reached from the root"
        ));
    }
    nodes.extend((0..num_leaves).map(|i| leaf_node(internal + i)));
    Ok(Tree {
        nodes,
        leaves,
        internal,
        depth,
    })
}

/// A float as LightGBM's loader reads it back to the same bits: the shortest round-trip form,
/// `nan`, `inf`, `-inf` as C prints them.
fn float_text(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

/// A leaf as a node: both children are itself, so extra steps stay put.
fn leaf_node(index: usize) -> Node {
    Node {
        threshold: 0.0,
        feature: 0,
        left: index as i32,
        right: index as i32,
        cat_start: 0,
        cat_len: 0,
        decision: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-written model: tree 0 splits f0 <= 0.5 (NaN missing, default left); tree 1 splits
    /// categorical f1 in {1, 3} left; tree 2 is a single leaf; tree 3 splits f0 with Zero missing.
    const MODEL: &str = "tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=x c
feature_infos=[0:1] -1:1:3
tree_sizes=1 1 1 1

Tree=0
num_leaves=2
num_cat=0
split_feature=0
split_gain=1
threshold=0.5
decision_type=10
left_child=-1
right_child=-2
leaf_value=0.25 -0.5
leaf_weight=1 1
leaf_count=1 1
internal_value=0
internal_weight=0
internal_count=2
is_linear=0
shrinkage=1


Tree=1
num_leaves=2
num_cat=1
split_feature=1
split_gain=1
threshold=0
decision_type=1
left_child=-1
right_child=-2
leaf_value=1 -1
leaf_weight=1 1
leaf_count=1 1
internal_value=0
internal_weight=0
internal_count=2
cat_boundaries=0 1
cat_threshold=10
is_linear=0
shrinkage=1


Tree=2
num_leaves=1
num_cat=0
split_feature=
split_gain=
threshold=
decision_type=
left_child=
right_child=
leaf_value=0.125
leaf_weight=
leaf_count=
internal_value=
internal_weight=
internal_count=
is_linear=0
shrinkage=1


Tree=3
num_leaves=2
num_cat=0
split_feature=0
split_gain=1
threshold=-1
decision_type=6
left_child=-1
right_child=-2
leaf_value=2 0
leaf_weight=1 1
leaf_count=1 1
internal_value=0
internal_weight=0
internal_count=2
is_linear=0
shrinkage=1


end of trees

parameters:
[categorical_feature: 1]
end of parameters

pandas_categorical:[[\"a\", \"b\", \"c\", \"d\"]]
";

    fn raw(model: &TreeEnsemble, x: f64, c: f64) -> f64 {
        let p = model.predict(&Matrix {
            values: vec![x, c],
            rows: 1,
            cols: 2,
        })[0];
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn hand_computed_paths() {
        let m = TreeEnsemble::parse(MODEL).unwrap();
        assert_eq!(m.num_trees(), 4);
        assert_eq!(m.categorical_features, [1]);
        assert_eq!(m.pandas_categorical.as_ref().unwrap()[0].len(), 4);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // x=0.2: tree0 left 0.25; c=1 in {1,3}: +1; +0.125; tree3 Zero-missing: 0.2 > -1 right: 0.
        assert!(close(raw(&m, 0.2, 1.0), 1.375));
        // x=NaN: tree0 default left 0.25; c=2 right -1; tree3 NaN -> 0 is "zero": default left
        // (decision 6 = Zero missing + default left): +2.
        assert!(close(raw(&m, f64::NAN, 2.0), 0.25 - 1.0 + 0.125 + 2.0));
        // x=1e-36 reads as 0: tree0 0 <= 0.5 left; tree3 zero -> default left.
        assert!(close(raw(&m, 1e-36, 3.0), 0.25 + 1.0 + 0.125 + 2.0));
        // x=0.7 right -0.5; c=-0.5 truncates to 0, not in set: right -1; c=NaN right.
        assert!(close(raw(&m, 0.7, -0.5), -0.5 - 1.0 + 0.125));
        assert!(close(raw(&m, 0.7, f64::NAN), -0.5 - 1.0 + 0.125));
        // c=3.7 truncates to 3: left; c=1e12 beyond the bitset: right.
        assert!(close(raw(&m, 0.7, 3.7), -0.5 + 1.0 + 0.125));
        assert!(close(raw(&m, 0.7, 1e12), -0.5 - 1.0 + 0.125));
        // x=-2 <= -1: tree3 left.
        assert!(close(raw(&m, -2.0, 0.0), 0.25 - 1.0 + 0.125 + 2.0));
    }

    #[test]
    fn compiled_code_and_ranked_rows_agree_with_the_walker_for_every_missing_type() {
        let xs = [
            f64::NAN,
            0.0,
            -0.0,
            1e-36,
            -1e-36,
            0.5,
            -0.5,
            0.2,
            0.7,
            -1.0,
            -2.0,
            1e300,
            -1e300,
        ];
        let cs = [
            f64::NAN,
            0.0,
            1.0,
            2.0,
            3.0,
            3.7,
            -0.5,
            -1.0,
            31.0,
            32.0,
            32.5,
            33.0,
            64.0,
            2147483648.0,
            -2147483649.0,
            1e12,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let values: Vec<f64> = xs
            .iter()
            .flat_map(|&x| cs.iter().flat_map(move |&c| [x, c]))
            .collect();
        let matrix = Matrix {
            rows: values.len() / 2,
            cols: 2,
            values,
        };
        let mut checked = 0;
        // Tree 1's bitset: one word ({1, 3}; {0, 1, 3}, where NaN goes right but -0.5, code 0, left),
        // or two ({1, 3, 32}: the code reads a second word, and the one-word bitset of tree 4 on
        // the same feature sees codes clamped past 32).
        for (boundaries, words) in [("0 1", "10"), ("0 1", "11"), ("0 2", "10 1")] {
            for (tree0, threshold) in [
                ("10", "0.5"),
                ("8", "-0.5"),
                ("2", "-0.5"),
                ("0", "0.5"),
                ("8", "-0"),
                ("2", "-0"),
            ] {
                for tree3 in ["decision_type=6", "decision_type=4"] {
                    let text = MODEL
                        .replace(
                            "cat_boundaries=0 1",
                            &format!("cat_boundaries={boundaries}"),
                        )
                        .replace("cat_threshold=10", &format!("cat_threshold={words}"))
                        .replacen("decision_type=10", &format!("decision_type={tree0}"), 1)
                        .replacen("threshold=0.5", &format!("threshold={threshold}"), 1)
                        .replace("decision_type=6", tree3)
                        .replace("end of trees", &format!("{TREE_4}end of trees"))
                        .replace("tree_sizes=1 1 1 1", "tree_sizes=1 1 1 1 1");
                    let m = TreeEnsemble::parse(&text).unwrap();
                    assert_eq!(m.num_trees(), 5);
                    let walked = m.predict(&matrix);
                    let same = |engine: &str, got: &[f64]| {
                        for (row, (w, r)) in walked.iter().zip(got).enumerate() {
                            assert_eq!(
                                w.to_bits(),
                                r.to_bits(),
                                "{engine}: bitset {words}, tree 0 decision {tree0} threshold {threshold}, tree 3 {tree3}, row {row}: {:?}",
                                &matrix.values[row * 2..row * 2 + 2]
                            );
                        }
                    };
                    // The same sums over the rows coded as ranks.
                    let mut raw = vec![0.0; matrix.rows];
                    m.add_raw_scores(&RankedRows::new(&matrix).unwrap(), &mut raw);
                    let Transform::Sigmoid(s) = m.transform;
                    let ranked: Vec<f64> =
                        raw.iter().map(|r| 1.0 / (1.0 + (-s * r).exp())).collect();
                    same("ranked", &ranked);
                    // The masks, over every row of the matrix at once.
                    same("masks", &m.predict_masked(&matrix).unwrap());
                    // Branching everywhere, branchless below the root, branchless throughout;
                    // numerical splits as keys in registers (24), as floats with the codes in
                    // registers (1), as floats with each code loaded where it is used (0).
                    for (trees_per_function, branchless_height, max_keys) in [
                        (1, 0, 24),
                        (2, 1, 24),
                        (5, 4, 24),
                        (1, 0, 0),
                        (5, 4, 0),
                        (2, 1, 1),
                    ] {
                        let shape = jit::Shape {
                            trees_per_function,
                            branchless_height,
                            max_keys,
                        };
                        // The machine code alone: these rows are enough for the masks.
                        let compiled = CompiledTrees::compile_shaped(&m, shape)
                            .unwrap()
                            .without_masks();
                        same(
                            &format!("{shape:?}"),
                            &m.predict_using(&matrix, Some(&compiled)),
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 216);
    }

    /// A two-level tree: a one-word categorical split on c ({1, 2} left), then x <= 0.2 with NaN
    /// going left.
    const TREE_4: &str = "Tree=4
num_leaves=3
num_cat=1
split_feature=1 0
split_gain=1 1
threshold=0 0.2
decision_type=1 10
left_child=1 -1
right_child=-3 -2
leaf_value=0.0625 -0.25 0.5
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=0 0
internal_count=3 2
cat_boundaries=0 1
cat_threshold=6
is_linear=0
shrinkage=1


";

    #[test]
    fn linear_trees_and_multiclass_are_refused() {
        let linear = MODEL.replacen("is_linear=0", "is_linear=1", 1);
        let e = TreeEnsemble::parse(&linear).unwrap_err();
        assert!(e.0.contains("linear"), "{e}");
        let multi = MODEL.replace("num_class=1", "num_class=3");
        assert!(TreeEnsemble::parse(&multi).is_err());
        assert!(TreeEnsemble::parse("hello").is_err());
    }

    #[test]
    fn average_output_divides_by_iterations() {
        let rf = MODEL.replace("feature_names=", "average_output\nfeature_names=");
        let m = TreeEnsemble::parse(&rf).unwrap();
        let plain = TreeEnsemble::parse(MODEL).unwrap();
        assert!((raw(&m, 0.2, 1.0) - raw(&plain, 0.2, 1.0) / 4.0).abs() < 1e-12);
    }
}
