//! The trees compiled to machine code at load time (cranelift), as lleaves does with LLVM: every
//! node becomes a compare and a branch with its threshold as an immediate, every leaf an add of a
//! constant, so a row runs through a tree without loading a single node.
//!
//! The semantics are the walker's (see the parent module), decided per node at compile time:
//! - numerical, missing None: NaN reads as 0, so NaN goes left exactly when 0 <= threshold:
//!   `x <= t` unordered-or-less-equal when 0 <= t, ordered otherwise;
//! - numerical, missing NaN: NaN goes the default way: unordered-or-less-equal when default left;
//! - numerical, missing Zero: NaN and 0 (the values |x| <= 1e-35 were zeroed before) go the
//!   default way, others by `x <= t`;
//! - categorical: NaN right; the code is `x` truncated toward zero and saturated (Rust's `as`),
//!   and goes left when its bit is set in the node's bitset; a negative or out-of-bitset code
//!   reads as a huge unsigned number: right. The codes are computed once per row before the trees
//!   run (NaN as u32::MAX, so it too lies past every bitset): a categorical split is then a
//!   compare and a bit test, against a constant when its bitset is one word.
//!
//! Leaf values are added to the row's running sum tree by tree, in model order, as the walker
//! adds them, so the results are the same to the last bit (the evaluator zoo checks it).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, InstBuilder, MachMemFlags, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

use super::{CATEGORICAL, DEFAULT_LEFT, MISSING_NAN, MISSING_ZERO, Tree, TreeEnsemble};

/// Trees per compiled function. Few: a block of rows runs through one function's trees before
/// the next function, so the branch predictor sees the same ~150 split sites thousands of times
/// in a row and learns them. Measured on bench (b) (1M rows, 500 trees, one thread): 50 trees per
/// function 8.9 s, 20 7.4 s, 10 6.2 s (256-row blocks); 5 5.3 s, 3 5.4 s, 1 6.2 s (2,048-row
/// blocks; with one tree, calls dominate).
const TREES_PER_FUNCTION: usize = 5;

/// `fn(rows, row_bytes, n_rows, raw, codes, code_row_bytes)`: adds the function's trees' leaf
/// values to `raw[i]` for each of the `n_rows` rows (row-major f64, `row_bytes` apart), reading
/// categorical features as the u32 codes in `codes` (row-major, `code_row_bytes` apart).
type BlockFn = unsafe extern "C" fn(*const f64, i64, i64, *mut f64, *const u32, i64);

/// A compiled ensemble: the JIT module (the code) and the bitsets it reads through addresses
/// baked into the code.
pub struct CompiledTrees {
    _module: JITModule,
    /// The categorical bitsets the code reads (by address, so they live as long as the code).
    _bitsets: Box<[u32]>,
    functions: Vec<BlockFn>,
    /// The features categorical splits read, in code slot order.
    code_features: Vec<usize>,
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

impl CompiledTrees {
    /// Compiles `ensemble`'s trees for this machine (an error names why it cannot).
    pub fn compile(ensemble: &TreeEnsemble) -> Result<CompiledTrees, String> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
        flags
            .set("use_colocated_libcalls", "false")
            .map_err(|e| e.to_string())?;
        flags.set("is_pic", "false").map_err(|e| e.to_string())?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("no code generator for this machine: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let mut ctx = module.make_context();
        let mut builder_ctx = FunctionBuilderContext::new();
        let pointer = module.target_config().pointer_type();
        let bitsets: Box<[u32]> = ensemble.bitsets.clone().into_boxed_slice();
        let mut code_features: Vec<usize> = ensemble
            .trees
            .iter()
            .flat_map(|t| &t.nodes[..t.internal])
            .filter(|n| n.decision & CATEGORICAL != 0)
            .map(|n| n.feature as usize)
            .collect();
        code_features.sort_unstable();
        code_features.dedup();
        let mut slot_of = vec![0u32; ensemble.num_features()];
        for (slot, &feature) in code_features.iter().enumerate() {
            slot_of[feature] = slot as u32;
        }
        let mut ids = Vec::new();
        for (index, trees) in ensemble.trees.chunks(TREES_PER_FUNCTION).enumerate() {
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(pointer));
            sig.params.push(AbiParam::new(types::I64));
            sig.params.push(AbiParam::new(types::I64));
            sig.params.push(AbiParam::new(pointer));
            sig.params.push(AbiParam::new(pointer));
            sig.params.push(AbiParam::new(types::I64));
            let id = module
                .declare_function(&format!("trees_{index}"), Linkage::Local, &sig)
                .map_err(|e| e.to_string())?;
            ctx.func.signature = sig;
            ctx.func.name = UserFuncName::user(0, id.as_u32());
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
                emit_function(&mut b, &bitsets, &slot_of, trees, pointer);
                b.seal_all_blocks();
                b.finalize(module.target_config());
            }
            module
                .define_function(id, &mut ctx)
                .map_err(|e| format!("compiling trees: {e:?}"))?;
            module.clear_context(&mut ctx);
            ids.push(id);
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
            _bitsets: bitsets,
            functions,
            code_features,
        })
    }

    /// Adds every tree's leaf value, in model order, to `raw` for the `raw.len()` rows of
    /// `rows` (row-major, `cols` values each, zeroing of |x| <= 1e-35 already applied).
    pub fn accumulate(&self, rows: &[f64], cols: usize, raw: &mut [f64]) {
        assert!(rows.len() >= raw.len() * cols);
        // Categorical codes, once per row: truncated toward zero and saturated as C++'s cast is
        // on x86 for the values LightGBM defines; NaN past every bitset (right).
        let slots = self.code_features.len();
        let mut codes = Vec::with_capacity(raw.len() * slots);
        for row in rows.chunks_exact(cols).take(raw.len()) {
            codes.extend(self.code_features.iter().map(|&f| {
                let x = row[f];
                if x.is_nan() {
                    u32::MAX
                } else {
                    x as i32 as u32
                }
            }));
        }
        for f in &self.functions {
            // SAFETY: `rows` holds raw.len() rows of `cols` f64 each and `codes` raw.len() rows
            // of `slots` codes; the code reads only features below `cols` (checked at parse
            // time) and slots below `slots`, and writes raw[0..raw.len()].
            unsafe {
                f(
                    rows.as_ptr(),
                    (cols * 8) as i64,
                    raw.len() as i64,
                    raw.as_mut_ptr(),
                    codes.as_ptr(),
                    (slots * 4) as i64,
                );
            }
        }
    }
}

fn emit_function(
    b: &mut FunctionBuilder,
    bitsets: &[u32],
    slot_of: &[u32],
    trees: &[Tree],
    pointer: types::Type,
) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (rows, row_bytes, n_rows, raw) = (params[0], params[1], params[2], params[3]);
    let (codes, code_row_bytes) = (params[4], params[5]);
    let flags = MachMemFlags::trusted();

    let i = b.declare_var(types::I64);
    let acc = b.declare_var(types::F64);
    let row = b.declare_var(pointer);
    let code_row = b.declare_var(pointer);
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(i, zero);

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
    let code_offset = b.ins().imul(iv, code_row_bytes);
    let code_ptr = b.ins().iadd(codes, code_offset);
    b.def_var(code_row, code_ptr);
    let raw_offset = b.ins().ishl_imm_u(iv, 3);
    let raw_ptr = b.ins().iadd(raw, raw_offset);
    let start = b.ins().load(types::F64, flags, raw_ptr, 0);
    b.def_var(acc, start);

    for tree in trees {
        let next = b.create_block();
        emit_tree(b, bitsets, slot_of, tree, [row, code_row], acc, next, flags);
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

/// Emits one tree: from the current block, branches down to a leaf, adds its value to `acc`,
/// and jumps to `next`. `[row, code_row]` point at the row's values and its categorical codes.
#[allow(clippy::too_many_arguments)]
fn emit_tree(
    b: &mut FunctionBuilder,
    bitsets: &[u32],
    slot_of: &[u32],
    tree: &Tree,
    [row, code_row]: [Variable; 2],
    acc: Variable,
    next: cranelift_codegen::ir::Block,
    flags: MachMemFlags,
) {
    // One block per node (internal and leaf), created up front so children can be targets.
    let blocks: Vec<_> = (0..tree.nodes.len()).map(|_| b.create_block()).collect();
    b.ins().jump(blocks[0], &[]);
    for (index, block) in blocks.iter().enumerate() {
        b.switch_to_block(*block);
        if index >= tree.internal {
            let value = tree.leaves[index - tree.internal];
            let a = b.use_var(acc);
            let leaf = b.ins().f64const(value);
            let sum = b.ins().fadd(a, leaf);
            b.def_var(acc, sum);
            b.ins().jump(next, &[]);
            continue;
        }
        let n = &tree.nodes[index];
        let left = blocks[n.left as usize];
        let right = blocks[n.right as usize];
        if n.decision & CATEGORICAL != 0 {
            let code_ptr = b.use_var(code_row);
            let slot = slot_of[n.feature as usize] as i32;
            let code = b.ins().load(types::I32, flags, code_ptr, slot * 4);
            let limit = b.ins().iconst(types::I32, i64::from(n.cat_len) * 32);
            // Negative codes and NaN (u32::MAX) are huge unsigned numbers: past the bitset, right.
            let inside = b.ins().icmp(IntCC::UnsignedLessThan, code, limit);
            let test = b.create_block();
            b.ins().brif(inside, test, &[], right, &[]);
            b.switch_to_block(test);
            let start = n.cat_start as usize;
            let bits = if n.cat_len == 1 {
                // One word: the bitset is an immediate.
                b.ins().iconst(types::I32, i64::from(bitsets[start]))
            } else {
                let word = b.ins().ushr_imm_u(code, 5);
                let word = b.ins().uextend(types::I64, word);
                let byte_offset = b.ins().ishl_imm_u(word, 2);
                let base = bitsets[start..].as_ptr() as i64;
                let base = b.ins().iconst(types::I64, base);
                let address = b.ins().iadd(base, byte_offset);
                b.ins().load(types::I32, flags, address, 0)
            };
            let shift = b.ins().band_imm_u(code, 31);
            let shifted = b.ins().ushr(bits, shift);
            let bit = b.ins().band_imm_u(shifted, 1);
            b.ins().brif(bit, left, &[], right, &[]);
            continue;
        }
        let row_ptr = b.use_var(row);
        let x = b
            .ins()
            .load(types::F64, flags, row_ptr, (n.feature as i32) * 8);
        let t = b.ins().f64const(n.threshold);
        let missing = (n.decision >> 2) & 3;
        let default_left = n.decision & DEFAULT_LEFT != 0;
        let goes_left = if missing == MISSING_ZERO {
            // NaN and 0 take the default way.
            let zero = b.ins().f64const(0.0);
            let is_default = b.ins().fcmp(FloatCC::UnorderedOrEqual, x, zero);
            let below = b.ins().fcmp(FloatCC::LessThanOrEqual, x, t);
            if default_left {
                b.ins().bor(is_default, below)
            } else {
                let not_default = b.ins().bxor_imm_u(is_default, 1);
                b.ins().band(not_default, below)
            }
        } else {
            let nan_left = if missing == MISSING_NAN {
                default_left
            } else {
                0.0 <= n.threshold
            };
            let cc = if nan_left {
                FloatCC::UnorderedOrLessThanOrEqual
            } else {
                FloatCC::LessThanOrEqual
            };
            b.ins().fcmp(cc, x, t)
        };
        b.ins().brif(goes_left, left, &[], right, &[]);
    }
}
