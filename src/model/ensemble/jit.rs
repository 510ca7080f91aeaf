//! The trees compiled to machine code at load time (cranelift), as lleaves does with LLVM: every
//! split becomes a compare with its threshold as an immediate, so a row runs through a tree
//! without loading a single node.
//!
//! Before the trees run, each row's values are turned into integer keys, once per row
//! ([`Key`]): a numerical value into an integer that orders as the float does, with NaN placed
//! above or below every number; a categorical value into its code. A compiled function loads the
//! keys its trees read into registers when it starts on a row, so a split is an integer compare
//! of a register against an immediate: after a mispredicted branch the next split resolves
//! without waiting on a load, as the float compare against a threshold in the constant pool did
//! (measured on bench (b): bench/RESULTS.md, earlier changes).
//! Near the leaves, where branches are the hardest to predict, a small subtree is not branched
//! through at all: all its splits are evaluated and conditional moves pick the leaf value
//! ([`BRANCHLESS_HEIGHT`]). Above, each split is a branch, laid out in preorder so the left
//! child falls through. A wide model, whose splits would need more keys than fit in registers
//! ([`MAX_KEYS`]), compares its numerical features as floats read from the row instead.
//!
//! The semantics are the walker's (see the parent module), decided per node at compile time:
//! - numerical, missing None: NaN reads as 0, so NaN goes left exactly when 0 <= threshold: the
//!   key with NaN below every number when 0 <= t, above otherwise;
//! - numerical, missing NaN: NaN goes the default way: NaN below every number when default left;
//! - numerical, missing Zero: NaN and 0 (the values |x| <= 1e-35 were zeroed before) go the
//!   default way, others by `x <= t`, compared as floats from the row;
//! - categorical: NaN right; the code is `x` truncated toward zero and saturated (Rust's `as`),
//!   and goes left when its bit is set in the node's bitset; a negative or out-of-bitset code
//!   goes right. Codes are clamped to one past the widest bitset of their feature (NaN and
//!   negatives too) and every multi-word bitset is padded with zero words up to that width, so
//!   the bit test needs no bounds check; a one-word bitset is an immediate.
//!
//! Leaf values are added to the row's running sum tree by tree, in model order, as the walker
//! adds them, so the results are the same to the last bit (the evaluator zoo checks it).

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, Block, InstBuilder, MachMemFlags, UserFuncName, Value, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, ModuleReloc, default_libcall_names};
use rayon::prelude::*;

use super::{
    CATEGORICAL, DEFAULT_LEFT, MISSING_NAN, MISSING_ZERO, MaskedTrees, Tree, TreeEnsemble,
};
use crate::metrics::order_key;

/// Trees per compiled function. Few: a block of rows runs through one function's trees before
/// the next function, so the branch predictor sees the same ~150 split sites thousands of times
/// in a row and learns them; with a single tree per function, calls dominate. Chosen by
/// measuring 1 to 50 on bench (b) (bench/RESULTS.md, earlier changes).
const TREES_PER_FUNCTION: usize = 5;

/// Subtrees at most this high (leaves are 0) choose their leaf by conditional moves instead of
/// branches: every split in them is evaluated (cheap, the keys are in registers) and nothing is
/// mispredicted. Chosen by measuring heights 0 to 7 on bench (b) (bench/RESULTS.md, earlier
/// changes): higher subtrees evaluate more splits than they save in mispredictions.
const BRANCHLESS_HEIGHT: usize = 4;

/// At most this many keys per row: past it (wide models), numerical splits compare the row's
/// floats directly and only categorical codes are keys, since computing every key of every row
/// would cost more than the few splits each row meets. Also the most keys a compiled function
/// loads into registers when it starts a row; one whose trees read more loads each where it is
/// used. Measured on a 200-feature model against keys for every feature (bench/RESULTS.md,
/// earlier changes); the bench model reads fewer keys than this.
const MAX_KEYS: usize = 24;

/// The fewest rows the masks evaluate: their work per block of rows is the same however few of
/// its rows are filled, and below a block or so the machine code, which costs per row, is the
/// cheaper.
const MASKED_MIN_ROWS: usize = 128;

/// The most splits compiled at load (see bench/RESULTS.md (b) for the bench model's 15,000);
/// a larger model is walked.
const MAX_COMPILED_NODES: usize = 100_000;

/// The deepest tree compiled at load: the emitter's cost grows faster than the depth, and trees
/// grown leaf-wise with up to 128 leaves cannot be deeper. A deeper one is walked.
const MAX_COMPILED_DEPTH: usize = 128;

/// `fn(rows, row_bytes, n_rows, raw, keys, key_row_bytes)`: adds the function's trees' leaf
/// values to `raw[i]` for each of the `n_rows` rows (row-major f64, `row_bytes` apart), reading
/// the rows' keys from `keys` (row-major i64, `key_row_bytes` apart).
type BlockFn = unsafe extern "C" fn(*const f64, i64, i64, *mut f64, *const i64, i64);

/// How the trees are laid out in code (see the constants for the measured choices).
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub trees_per_function: usize,
    pub branchless_height: usize,
    pub max_keys: usize,
}

/// One integer computed from a row before the trees run; splits read these instead of the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// The feature's value as an integer that orders as the float does, NaN above every number
    /// (for splits that send NaN right).
    NanAbove(usize),
    /// The same with NaN below every number (for splits that send NaN left).
    NanBelow(usize),
    /// A categorical feature's code, at most `clamp`: NaN, negative codes and codes past the
    /// feature's widest bitset all read as `clamp`, whose bit is clear in every (padded) bitset.
    Code { feature: usize, clamp: i64 },
}

impl Key {
    fn of(self, row: &[f64]) -> i64 {
        match self {
            Key::NanAbove(f) => {
                let x = row[f];
                if x.is_nan() { i64::MAX } else { order_key(x) }
            }
            Key::NanBelow(f) => {
                let x = row[f];
                if x.is_nan() { i64::MIN } else { order_key(x) }
            }
            Key::Code { feature, clamp } => {
                let x = row[feature];
                if x.is_nan() {
                    clamp
                } else {
                    // Truncated toward zero and saturated, as the walker reads codes; negative
                    // codes become huge unsigned numbers, then the clamp.
                    i64::from(x as i32 as u32).min(clamp)
                }
            }
        }
    }
}

/// A compiled ensemble: the JIT module (the code) and the bitsets it reads through addresses
/// baked into the code.
pub struct CompiledTrees {
    _module: JITModule,
    /// The multi-word categorical bitsets the code reads (by address, so they live as long as
    /// the code), each padded to its feature's widest bitset plus one zero word.
    _bitsets: Box<[u32]>,
    functions: Vec<BlockFn>,
    /// The keys the code reads, in slot order.
    keys: Vec<Key>,
    /// The same trees prepared for evaluation by masks, which serve batches of at least
    /// [`MASKED_MIN_ROWS`] rows; None for a model they do not take.
    masked: Option<MaskedTrees>,
}

// SAFETY: the compiled code is immutable after finalize and reads only its arguments and its own
// bitsets, which are never mutated.
unsafe impl Send for CompiledTrees {}
unsafe impl Sync for CompiledTrees {}

impl std::fmt::Debug for CompiledTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompiledTrees({} functions)", self.functions.len())
    }
}

/// Where a node reads its input from.
#[derive(Clone, Copy)]
enum Source {
    /// The row's float (missing type Zero).
    Row,
    /// Key slot `usize`.
    Slot(usize),
}

/// A categorical node's left set, as the code sees it.
#[derive(Clone, Copy)]
enum LeftSet {
    /// Not a categorical node.
    None,
    /// A one-word bitset: an immediate.
    Word(u32),
    /// A multi-word bitset, padded, at this offset of `Layout::bitsets`.
    Padded(usize),
}

/// What the emitter needs to know about the whole ensemble.
struct Layout {
    keys: Vec<Key>,
    /// For each categorical feature, its widest bitset in words.
    words: Vec<u32>,
    /// For each tree, for each internal node: where it reads from, and its left set.
    sources: Vec<Vec<(Source, LeftSet)>>,
    bitsets: Box<[u32]>,
}

impl Layout {
    fn of(ensemble: &TreeEnsemble, max_keys: usize) -> Result<Layout, String> {
        let mut words = vec![0u32; ensemble.num_features()];
        for n in ensemble.trees.iter().flat_map(|t| &t.nodes[..t.internal]) {
            if n.decision & CATEGORICAL != 0 {
                let w = &mut words[n.feature as usize];
                *w = (*w).max(n.cat_len);
            }
        }
        // Padding every multi-word bitset to its feature's widest could multiply a model's size
        // (one huge bitset beside many small ones): past a bound, the walker serves.
        let padded: u64 = ensemble
            .trees
            .iter()
            .flat_map(|t| &t.nodes[..t.internal])
            .filter(|n| n.decision & CATEGORICAL != 0 && n.cat_len > 1)
            .map(|n| u64::from(words[n.feature as usize]) + 1)
            .sum();
        let bound = (16 * ensemble.bitsets.len() as u64).max(1 << 20);
        if padded > bound {
            return Err(format!(
                "padded categorical bitsets would take {padded} words (more than {bound})"
            ));
        }
        // Numerical splits read keys only while every key fits the budget; past it, only the
        // categorical codes are keys.
        let key_of = |n: &super::Node, numerical: bool| -> Option<Key> {
            let f = n.feature as usize;
            if n.decision & CATEGORICAL != 0 {
                return Some(Key::Code {
                    feature: f,
                    clamp: i64::from(words[f]) * 32,
                });
            }
            if !numerical {
                return None;
            }
            Some(if nan_goes_left(n)? {
                Key::NanBelow(f)
            } else {
                Key::NanAbove(f)
            })
        };
        let mut keys: Vec<Key> = ensemble
            .trees
            .iter()
            .flat_map(|t| &t.nodes[..t.internal])
            .filter_map(|n| key_of(n, true))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let numerical_as_keys = keys.len() <= max_keys;
        if !numerical_as_keys {
            keys.retain(|key| matches!(key, Key::Code { .. }));
        }
        let mut bitsets = Vec::new();
        let sources = ensemble
            .trees
            .iter()
            .map(|t| {
                t.nodes[..t.internal]
                    .iter()
                    .map(|n| {
                        let source = match key_of(n, numerical_as_keys) {
                            None => Source::Row,
                            Some(key) => Source::Slot(
                                keys.binary_search(&key).expect("every key was collected"),
                            ),
                        };
                        let start = n.cat_start as usize;
                        let set = if n.decision & CATEGORICAL == 0 {
                            LeftSet::None
                        } else if n.cat_len == 1 {
                            LeftSet::Word(ensemble.bitsets[start])
                        } else {
                            let offset = bitsets.len();
                            bitsets.extend_from_slice(
                                &ensemble.bitsets[start..start + n.cat_len as usize],
                            );
                            // Up to the feature's widest bitset, and one more word for the clamp.
                            bitsets.resize(offset + words[n.feature as usize] as usize + 1, 0);
                            LeftSet::Padded(offset)
                        };
                        (source, set)
                    })
                    .collect()
            })
            .collect();
        Ok(Layout {
            keys,
            words,
            sources,
            bitsets: bitsets.into_boxed_slice(),
        })
    }
}

impl CompiledTrees {
    /// Compiles `ensemble`'s trees for this machine (an error names why it cannot).
    pub fn compile(ensemble: &TreeEnsemble) -> Result<CompiledTrees, String> {
        Self::compile_shaped(
            ensemble,
            Shape {
                trees_per_function: TREES_PER_FUNCTION,
                branchless_height: BRANCHLESS_HEIGHT,
                max_keys: MAX_KEYS,
            },
        )
    }

    /// Compiles with a given code shape (the tests run every shape against the walker).
    pub(super) fn compile_shaped(
        ensemble: &TreeEnsemble,
        shape: Shape,
    ) -> Result<CompiledTrees, String> {
        assert!(shape.trees_per_function > 0);
        // Compile time grows with the code, and faster than linearly with a tree's depth: past
        // these bounds the walker, which needs no compile step, serves (a server starts within
        // seconds whatever the model).
        let nodes: usize = ensemble.trees.iter().map(|t| t.internal).sum();
        let depth = ensemble.trees.iter().map(|t| t.depth).max().unwrap_or(0);
        if nodes > MAX_COMPILED_NODES {
            return Err(format!(
                "{nodes} splits is more than the {MAX_COMPILED_NODES} compiled at load"
            ));
        }
        if depth > MAX_COMPILED_DEPTH {
            return Err(format!(
                "a tree {depth} splits deep is deeper than the {MAX_COMPILED_DEPTH} compiled at load"
            ));
        }
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
        flags
            .set("use_colocated_libcalls", "false")
            .map_err(|e| e.to_string())?;
        flags.set("is_pic", "false").map_err(|e| e.to_string())?;
        // The IR checker guards against mistakes in this compiler, not in a model file (those
        // are refused above and by the ensemble's own checks): it runs in test builds, where
        // every zoo and property test compiles through it, and not in release.
        flags
            .set(
                "enable_verifier",
                if cfg!(debug_assertions) {
                    "true"
                } else {
                    "false"
                },
            )
            .map_err(|e| e.to_string())?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("no code generator for this machine: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let mut module = JITModule::new(JITBuilder::with_isa(isa.clone(), default_libcall_names()));
        let pointer = module.target_config().pointer_type();
        let layout = Layout::of(ensemble, shape.max_keys)?;
        let trees: Vec<(&Tree, &[(Source, LeftSet)])> = ensemble
            .trees
            .iter()
            .zip(layout.sources.iter().map(Vec::as_slice))
            .collect();
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(pointer));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(pointer));
        sig.params.push(AbiParam::new(pointer));
        sig.params.push(AbiParam::new(types::I64));
        let ids = (0..trees.len().div_ceil(shape.trees_per_function))
            .map(|index| {
                module
                    .declare_function(&format!("trees_{index}"), Linkage::Local, &sig)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        // The functions are independent: they are compiled on every core, each worker with
        // its own contexts, and only their machine code is handed to the module.
        let frontend = module.target_config();
        let compiled = trees
            .par_chunks(shape.trees_per_function)
            .zip(ids.par_iter())
            .map_init(
                || (Context::new(), FunctionBuilderContext::new()),
                |(ctx, builder_ctx), (trees, &id)| {
                    ctx.clear();
                    ctx.func.signature = sig.clone();
                    ctx.func.name = UserFuncName::user(0, id.as_u32());
                    {
                        let mut b = FunctionBuilder::new(&mut ctx.func, builder_ctx);
                        emit_function(&mut b, &layout, trees, pointer, shape);
                        b.seal_all_blocks();
                        b.finalize(frontend);
                    }
                    ctx.compile(isa.as_ref(), &mut ControlPlane::default())
                        .map_err(|e| format!("compiling trees: {:?}", e.inner))?;
                    let code = ctx
                        .compiled_code()
                        .ok_or("compiling trees: cranelift kept no code")?;
                    let alignment = u64::from(code.buffer.alignment);
                    let bytes = code.code_buffer().to_vec();
                    let relocs: Vec<ModuleReloc> = code
                        .buffer
                        .relocs()
                        .iter()
                        .map(|reloc| ModuleReloc::from_mach_reloc(reloc, &ctx.func, id))
                        .collect();
                    Ok((alignment, bytes, relocs))
                },
            )
            .collect::<Result<Vec<_>, String>>()?;
        for (&id, (alignment, bytes, relocs)) in ids.iter().zip(&compiled) {
            module
                .define_function_bytes(id, *alignment, bytes, relocs)
                .map_err(|e| format!("compiling trees: {e:?}"))?;
        }
        module.finalize_definitions().map_err(|e| e.to_string())?;
        let functions = ids
            .into_iter()
            .map(|id| {
                let code = module.get_finalized_function(id);
                // SAFETY: the function was compiled with exactly this signature.
                unsafe { std::mem::transmute::<*const u8, BlockFn>(code) }
            })
            .collect();
        Ok(CompiledTrees {
            _module: module,
            _bitsets: layout.bitsets,
            functions,
            keys: layout.keys,
            masked: MaskedTrees::new(ensemble),
        })
    }

    /// The machine code alone, never the masks (to measure one against the other).
    pub fn without_masks(mut self) -> CompiledTrees {
        self.masked = None;
        self
    }

    /// Whether batches of rows are evaluated by masks.
    pub fn has_masks(&self) -> bool {
        self.masked.is_some()
    }

    /// Adds every tree's leaf value, in model order, to `raw` for the `raw.len()` rows of
    /// `rows` (row-major, `cols` values each, zeroing of |x| <= 1e-35 already applied).
    pub fn accumulate(&self, rows: &[f64], cols: usize, raw: &mut [f64]) {
        assert!(rows.len() >= raw.len() * cols);
        if let Some(masked) = &self.masked
            && raw.len() >= MASKED_MIN_ROWS
        {
            return masked.accumulate(rows, cols, raw);
        }
        let width = self.keys.len();
        let mut keys = Vec::with_capacity(raw.len() * width);
        for row in rows.chunks_exact(cols).take(raw.len()) {
            keys.extend(self.keys.iter().map(|key| key.of(row)));
        }
        for f in &self.functions {
            // SAFETY: `rows` holds raw.len() rows of `cols` f64 each and `keys` raw.len() rows
            // of `width` keys; the code reads only features below `cols` (checked at parse
            // time) and slots below `width`, and writes raw[0..raw.len()].
            unsafe {
                f(
                    rows.as_ptr(),
                    (cols * 8) as i64,
                    raw.len() as i64,
                    raw.as_mut_ptr(),
                    keys.as_ptr(),
                    (width * 8) as i64,
                );
            }
        }
    }
}

fn emit_function(
    b: &mut FunctionBuilder,
    layout: &Layout,
    trees: &[(&Tree, &[(Source, LeftSet)])],
    pointer: types::Type,
    shape: Shape,
) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (rows, row_bytes, n_rows, raw) = (params[0], params[1], params[2], params[3]);
    let (keys, key_row_bytes) = (params[4], params[5]);
    let flags = MachMemFlags::trusted();

    let i = b.declare_var(types::I64);
    let acc = b.declare_var(types::F64);
    let row = b.declare_var(pointer);
    let key_row = b.declare_var(pointer);
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(i, zero);
    // The key slots these trees read: each one a variable loaded when a row starts, unless there
    // are too many to keep in registers, when each split loads its key instead.
    let mut used = vec![false; layout.keys.len()];
    for (_, sources) in trees {
        for (source, _) in *sources {
            if let Source::Slot(s) = *source {
                used[s] = true;
            }
        }
    }
    let preload = used.iter().filter(|&&u| u).count() <= shape.max_keys;
    let slots: Vec<Option<Variable>> = used
        .iter()
        .map(|&u| (u && preload).then(|| b.declare_var(types::I64)))
        .collect();

    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.ins().jump(header, &[]);

    b.switch_to_block(header);
    let iv = b.use_var(i);
    let done = b.ins().icmp(IntCC::SignedGreaterThanOrEqual, iv, n_rows);
    b.ins().brif(done, exit, &[], body, &[]);

    b.switch_to_block(body);
    let iv = b.use_var(i);
    let offset = b.ins().imul(iv, row_bytes);
    let row_ptr = b.ins().iadd(rows, offset);
    b.def_var(row, row_ptr);
    let key_offset = b.ins().imul(iv, key_row_bytes);
    let key_ptr = b.ins().iadd(keys, key_offset);
    b.def_var(key_row, key_ptr);
    for (slot, var) in slots.iter().enumerate() {
        if let Some(var) = *var {
            let key = b.ins().load(types::I64, flags, key_ptr, (slot * 8) as i32);
            b.def_var(var, key);
        }
    }
    let raw_offset = b.ins().ishl_imm_u(iv, 3);
    let raw_ptr = b.ins().iadd(raw, raw_offset);
    let start = b.ins().load(types::F64, flags, raw_ptr, 0);
    b.def_var(acc, start);

    let reads = Reads {
        layout,
        slots: &slots,
        row,
        key_row,
        acc,
        flags,
        branchless_height: shape.branchless_height,
    };
    for &(tree, sources) in trees {
        let next = b.create_block();
        reads.emit_tree(b, TreeCode { tree, sources }, next);
        b.switch_to_block(next);
    }
    // Store the row's sum and go on with the next row.
    let iv = b.use_var(i);
    let raw_offset = b.ins().ishl_imm_u(iv, 3);
    let raw_ptr = b.ins().iadd(raw, raw_offset);
    let sum = b.use_var(acc);
    b.ins().store(flags, sum, raw_ptr, 0);
    let next_i = b.ins().iadd_imm_u(iv, 1);
    b.def_var(i, next_i);
    b.ins().jump(header, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}

/// A tree and, for each internal node, where it reads and its left set.
#[derive(Clone, Copy)]
struct TreeCode<'a> {
    tree: &'a Tree,
    sources: &'a [(Source, LeftSet)],
}

/// What a tree's code reads: the row, its keys (in variables), and the running sum.
struct Reads<'a> {
    layout: &'a Layout,
    /// The variable holding each key slot, when the function loaded it at the row's start.
    slots: &'a [Option<Variable>],
    row: Variable,
    key_row: Variable,
    acc: Variable,
    flags: MachMemFlags,
    branchless_height: usize,
}

impl Reads<'_> {
    /// Emits one tree: from the current block, branches down to a leaf, adds its value to the
    /// sum, and jumps to `next`.
    fn emit_tree(&self, b: &mut FunctionBuilder, code: TreeCode, next: Block) {
        let tree = code.tree;
        let heights = heights(tree);
        // Nodes in preorder, each in its own block; a subtree at most `branchless_height` high
        // is one block that selects its leaf value without branching.
        let mut stack = vec![(0usize, b.create_block())];
        b.ins().jump(stack[0].1, &[]);
        while let Some((index, block)) = stack.pop() {
            b.switch_to_block(block);
            if index >= tree.internal || heights[index] <= self.branchless_height {
                let value = self.emit_subtree_value(b, code, index);
                let value = b.ins().bitcast(types::F64, MachMemFlags::new(), value);
                let a = b.use_var(self.acc);
                let sum = b.ins().fadd(a, value);
                b.def_var(self.acc, sum);
                b.ins().jump(next, &[]);
                continue;
            }
            let n = &tree.nodes[index];
            let goes_left = self.emit_condition(b, code, index);
            let (left, right) = (b.create_block(), b.create_block());
            b.ins().brif(goes_left, left, &[], right, &[]);
            // Left first: it comes next in the code and is the fall-through.
            stack.push((n.right as usize, right));
            stack.push((n.left as usize, left));
        }
    }

    /// The bits of the leaf value row reaches from node `index`, chosen by conditional moves.
    fn emit_subtree_value(&self, b: &mut FunctionBuilder, code: TreeCode, index: usize) -> Value {
        let tree = code.tree;
        if index >= tree.internal {
            let value = tree.leaves[index - tree.internal];
            return b.ins().iconst(types::I64, value.to_bits() as i64);
        }
        let n = &tree.nodes[index];
        let goes_left = self.emit_condition(b, code, index);
        let left = self.emit_subtree_value(b, code, n.left as usize);
        let right = self.emit_subtree_value(b, code, n.right as usize);
        b.ins().select(goes_left, left, right)
    }

    /// Whether the row goes left at internal node `index` (nonzero when it does).
    fn emit_condition(&self, b: &mut FunctionBuilder, code: TreeCode, index: usize) -> Value {
        let n = &code.tree.nodes[index];
        let (source, set) = code.sources[index];
        match source {
            Source::Slot(slot) => {
                let key = match self.slots[slot] {
                    Some(var) => b.use_var(var),
                    None => {
                        let key_row = b.use_var(self.key_row);
                        b.ins()
                            .load(types::I64, self.flags, key_row, (slot * 8) as i32)
                    }
                };
                if n.decision & CATEGORICAL != 0 {
                    self.emit_bit_test(b, n.feature, set, key)
                } else {
                    // `x <= NaN` is false for every number: only a NaN whose key lies below
                    // every number's (NaN sent left) goes left.
                    let t = if n.threshold.is_nan() {
                        i64::MIN
                    } else {
                        order_key(n.threshold)
                    };
                    let t = b.ins().iconst(types::I64, t);
                    b.ins().icmp(IntCC::SignedLessThanOrEqual, key, t)
                }
            }
            Source::Row => {
                let row_ptr = b.use_var(self.row);
                let x = b
                    .ins()
                    .load(types::F64, self.flags, row_ptr, (n.feature as i32) * 8);
                let t = b.ins().f64const(n.threshold);
                if n.threshold.is_nan()
                    && let Some(nan_left) = nan_goes_left(n)
                {
                    // Every number goes right; NaN goes the way it is sent.
                    return if nan_left {
                        b.ins().fcmp(FloatCC::Unordered, x, x)
                    } else {
                        b.ins().iconst(types::I8, 0)
                    };
                }
                if let Some(nan_left) = nan_goes_left(n) {
                    // `x <= t`, with NaN (unordered) on the side it takes.
                    let cc = if nan_left {
                        FloatCC::UnorderedOrLessThanOrEqual
                    } else {
                        FloatCC::LessThanOrEqual
                    };
                    return b.ins().fcmp(cc, x, t);
                }
                // Missing type Zero: NaN and 0 take the default way, others `x <= t`.
                let zero = b.ins().f64const(0.0);
                let is_default = b.ins().fcmp(FloatCC::UnorderedOrEqual, x, zero);
                let below = b.ins().fcmp(FloatCC::LessThanOrEqual, x, t);
                if n.decision & DEFAULT_LEFT != 0 {
                    b.ins().bor(is_default, below)
                } else {
                    let not_default = b.ins().bxor_imm_u(is_default, 1);
                    b.ins().band(not_default, below)
                }
            }
        }
    }

    /// The bit of `code` (a clamped categorical code) in a node's left set: 1 when it goes left.
    fn emit_bit_test(
        &self,
        b: &mut FunctionBuilder,
        feature: u32,
        set: LeftSet,
        code: Value,
    ) -> Value {
        match set {
            LeftSet::Word(word) => {
                // A 64-bit immediate whose upper half is clear: codes 32 and up (the clamp
                // included) shift every set bit out. A wider feature's clamp lies past 63 (the
                // shift would wrap), so its codes are cut to 32 first.
                let bits = b.ins().iconst(types::I64, i64::from(word));
                let code = if self.layout.words[feature as usize] > 1 {
                    let limit = b.ins().iconst(types::I64, 32);
                    b.ins().umin(code, limit)
                } else {
                    code
                };
                let shifted = b.ins().ushr(bits, code);
                b.ins().band_imm_u(shifted, 1)
            }
            LeftSet::Padded(offset) => {
                // Every clamped code's word lies inside the padded bitset.
                let word = b.ins().ushr_imm_u(code, 5);
                let byte_offset = b.ins().ishl_imm_u(word, 2);
                let base = self.layout.bitsets[offset..].as_ptr() as i64;
                let base = b.ins().iconst(types::I64, base);
                let address = b.ins().iadd(base, byte_offset);
                let bits = b.ins().load(types::I32, self.flags, address, 0);
                let code = b.ins().ireduce(types::I32, code);
                let shift = b.ins().band_imm_u(code, 31);
                let shifted = b.ins().ushr(bits, shift);
                b.ins().band_imm_u(shifted, 1)
            }
            LeftSet::None => unreachable!("a categorical node has a left set"),
        }
    }
}

/// Whether NaN goes left at numerical node `n`, or `None` for missing type Zero (where NaN and 0
/// both go the default way, which one key cannot express).
fn nan_goes_left(n: &super::Node) -> Option<bool> {
    match (n.decision >> 2) & 3 {
        MISSING_ZERO => None,
        // NaN goes the default way.
        MISSING_NAN => Some(n.decision & DEFAULT_LEFT != 0),
        // Missing None: NaN reads as 0.
        _ => Some(0.0 <= n.threshold),
    }
}

/// Each node's height: 0 for a leaf, 1 + the taller child's for an internal node.
fn heights(tree: &Tree) -> Vec<usize> {
    let mut heights = vec![0; tree.nodes.len()];
    // Children before parents: preorder walked backwards.
    for &index in tree.preorder().iter().rev() {
        let n = &tree.nodes[index];
        heights[index] = 1 + heights[n.left as usize].max(heights[n.right as usize]);
    }
    heights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_order_as_the_floats_do() {
        let values = [
            f64::NEG_INFINITY,
            -f64::MAX,
            -1e300,
            -2.0,
            -1.0,
            -0.5,
            -1e-36,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1e-36,
            1e-35,
            0.5,
            1.0,
            1.0000000000000002,
            2.0,
            1e300,
            f64::MAX,
            f64::INFINITY,
        ];
        for &a in &values {
            for &b in &values {
                assert_eq!(
                    order_key(a).cmp(&order_key(b)),
                    a.partial_cmp(&b).unwrap(),
                    "{a:e} vs {b:e}"
                );
            }
        }
        // NaN sits above or below every number, as the key asks.
        let row = [f64::NAN];
        assert_eq!(Key::NanAbove(0).of(&row), i64::MAX);
        assert_eq!(Key::NanBelow(0).of(&row), i64::MIN);
        assert!(order_key(f64::INFINITY) < i64::MAX);
        assert!(order_key(f64::NEG_INFINITY) > i64::MIN);
        // Codes: truncated, negatives and NaN at the clamp.
        let clamp = 64;
        let code = |x: f64| Key::Code { feature: 0, clamp }.of(&[x]);
        assert_eq!(code(3.7), 3);
        assert_eq!(code(-0.5), 0);
        assert_eq!(code(-1.0), clamp);
        assert_eq!(code(f64::NAN), clamp);
        assert_eq!(code(1e12), clamp);
        assert_eq!(code(63.0), 63);
    }
}
