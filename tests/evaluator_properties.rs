//! Differential property test: random LightGBM models (random tree shapes, numerical and
//! categorical splits of every missing type, NaN, infinite and signed-zero thresholds, empty and
//! multi-word bitsets) and random rows (NaN, signed zeros, values under LightGBM's zero threshold,
//! negative, fractional, huge and out-of-range category codes). For every model the parser
//! accepts, the walker, the compiled trees, the masks and LightGBM's C API must give the same
//! probabilities, bit for bit; LightGBM is run on the generated file and on the text our parser
//! writes back.

use audience::data::encode::Matrix;
use audience::model::ensemble::TreeEnsemble;
use audience::model::lgbm::Booster;
use proptest::prelude::*;

/// Values that sit on every boundary the evaluators treat specially.
const SPECIAL: [f64; 18] = [
    f64::NAN,
    0.0,
    -0.0,
    1e-36,
    -1e-36,
    1e-35,
    1e-35f32 as f64,
    0.5,
    -0.5,
    1.0,
    31.0,
    32.0,
    33.7,
    64.0,
    2147483648.0,
    -2147483649.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0..SPECIAL.len()).prop_map(|i| SPECIAL[i]),
        (-3i32..140).prop_map(f64::from),
        -50.0f64..50.0,
    ]
}

fn threshold() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => value(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

#[derive(Debug, Clone)]
struct Split {
    feature: usize,
    threshold: f64,
    decision: u8,
    /// Bitset words for a categorical split.
    words: Vec<u32>,
}

#[derive(Debug, Clone)]
struct RandomTree {
    /// Preorder shape: true = internal node (then its left and right subtrees), false = leaf.
    shape: Vec<bool>,
    splits: Vec<Split>,
    leaves: Vec<f64>,
}

/// A tree shape with `leaves` leaves, chosen by `choices` (one per split: how many leaves go left).
fn shape(leaves: usize, choices: &mut impl Iterator<Item = usize>, out: &mut Vec<bool>) {
    if leaves == 1 {
        out.push(false);
        return;
    }
    out.push(true);
    let left = 1 + choices.next().unwrap_or(0) % (leaves - 1);
    shape(left, choices, out);
    shape(leaves - left, choices, out);
}

fn tree(features: usize, categorical: Vec<bool>) -> impl Strategy<Value = RandomTree> {
    (1usize..12).prop_flat_map(move |leaves| {
        let categorical = categorical.clone();
        let splits = leaves - 1;
        (
            prop::collection::vec(0usize..1000, splits),
            prop::collection::vec(
                (
                    0..features,
                    threshold(),
                    0u8..16,
                    // Up to 5 words: codes past 128 give a split its own mask in the masks
                    // evaluator (a feature with many codes).
                    prop::collection::vec(any::<u32>(), 0..6),
                ),
                splits,
            ),
            prop::collection::vec(-3.0f64..3.0, leaves),
        )
            .prop_map(move |(choices, raw, leaf_values)| {
                let mut s = Vec::new();
                shape(leaves, &mut choices.into_iter(), &mut s);
                let splits = raw
                    .into_iter()
                    .map(|(feature, threshold, decision, words)| {
                        if categorical[feature] {
                            // Categorical: missing None or NaN (LightGBM writes 1 and 9).
                            Split {
                                feature,
                                threshold: 0.0,
                                decision: 1 | (decision & 8),
                                words,
                            }
                        } else {
                            Split {
                                feature,
                                threshold,
                                decision: decision & !1,
                                words: Vec::new(),
                            }
                        }
                    })
                    .collect();
                RandomTree {
                    shape: s,
                    splits,
                    leaves: leaf_values,
                }
            })
    })
}

#[derive(Debug, Clone)]
struct RandomModel {
    features: usize,
    categorical: Vec<bool>,
    trees: Vec<RandomTree>,
    sigmoid: f64,
    average_output: bool,
}

fn model() -> impl Strategy<Value = RandomModel> {
    (1usize..5)
        .prop_flat_map(|features| {
            (
                Just(features),
                prop::collection::vec(any::<bool>(), features),
            )
        })
        .prop_flat_map(|(features, categorical)| {
            (
                Just(features),
                Just(categorical.clone()),
                prop::collection::vec(tree(features, categorical), 1..6),
                prop_oneof![Just(1.0), Just(0.5), Just(2.0)],
                any::<bool>(),
            )
        })
        .prop_map(
            |(features, categorical, trees, sigmoid, average_output)| RandomModel {
                features,
                categorical,
                trees,
                sigmoid,
                average_output,
            },
        )
}

/// The model as LightGBM writes it (CRLF line ends when `crlf`, which LightGBM's own loader
/// cannot take but a file that went through Windows has).
fn model_text(m: &RandomModel) -> String {
    let mut blocks = Vec::new();
    for (i, t) in m.trees.iter().enumerate() {
        // Number internal nodes and leaves in preorder.
        let mut next_internal = 0i32;
        let mut next_leaf = 0i32;
        let mut children = vec![(0i32, 0i32); t.splits.len()];
        fn walk(
            shape: &[bool],
            at: &mut usize,
            next_internal: &mut i32,
            next_leaf: &mut i32,
            children: &mut [(i32, i32)],
        ) -> i32 {
            let internal = shape[*at];
            *at += 1;
            if !internal {
                let leaf = *next_leaf;
                *next_leaf += 1;
                return !leaf;
            }
            let me = *next_internal;
            *next_internal += 1;
            let left = walk(shape, at, next_internal, next_leaf, children);
            let right = walk(shape, at, next_internal, next_leaf, children);
            children[me as usize] = (left, right);
            me
        }
        let mut at = 0;
        walk(
            &t.shape,
            &mut at,
            &mut next_internal,
            &mut next_leaf,
            &mut children,
        );
        let mut boundaries = vec![0usize];
        let mut words = Vec::new();
        let thresholds: Vec<String> = t
            .splits
            .iter()
            .map(|s| {
                if s.decision & 1 != 0 {
                    words.extend(s.words.iter().map(u32::to_string));
                    boundaries.push(words.len());
                    (boundaries.len() - 2).to_string()
                } else {
                    number(s.threshold)
                }
            })
            .collect();
        let join = |v: Vec<String>| v.join(" ");
        let mut b = format!(
            "Tree={i}\nnum_leaves={}\nnum_cat={}\n",
            t.leaves.len(),
            boundaries.len() - 1
        );
        b.push_str(&format!(
            "split_feature={}\n",
            join(t.splits.iter().map(|s| s.feature.to_string()).collect())
        ));
        b.push_str(&format!(
            "split_gain={}\n",
            join(t.splits.iter().map(|_| "1".into()).collect())
        ));
        b.push_str(&format!("threshold={}\n", thresholds.join(" ")));
        b.push_str(&format!(
            "decision_type={}\n",
            join(t.splits.iter().map(|s| s.decision.to_string()).collect())
        ));
        b.push_str(&format!(
            "left_child={}\n",
            join(children.iter().map(|c| c.0.to_string()).collect())
        ));
        b.push_str(&format!(
            "right_child={}\n",
            join(children.iter().map(|c| c.1.to_string()).collect())
        ));
        b.push_str(&format!(
            "leaf_value={}\n",
            join(t.leaves.iter().map(|&v| number(v)).collect())
        ));
        if boundaries.len() > 1 {
            b.push_str(&format!(
                "cat_boundaries={}\n",
                join(boundaries.iter().map(usize::to_string).collect())
            ));
            b.push_str(&format!("cat_threshold={}\n", words.join(" ")));
        }
        b.push_str("is_linear=0\nshrinkage=1\n\n\n");
        blocks.push(b);
    }
    let names: Vec<String> = (0..m.features).map(|i| format!("f{i}")).collect();
    let infos: Vec<&str> = m
        .categorical
        .iter()
        .map(|&c| if c { "-1:0:1:2" } else { "[-1:1]" })
        .collect();
    let mut text = format!(
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx={}\nobjective=binary sigmoid:{}\n{}feature_names={}\nfeature_infos={}\ntree_sizes={}\n\n",
        m.features - 1,
        m.sigmoid,
        if m.average_output {
            "average_output\n"
        } else {
            ""
        },
        names.join(" "),
        infos.join(" "),
        blocks
            .iter()
            .map(|b| b.len().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for b in &blocks {
        text.push_str(b);
    }
    text.push_str("end of trees\n\nparameters:\nend of parameters\n\npandas_categorical:null\n");
    text
}

fn same_bits(a: &[f64], b: &[f64]) -> Result<(), String> {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.to_bits() != y.to_bits() {
            return Err(format!("row {i}: {x:e} vs {y:e}"));
        }
    }
    Ok(())
}

proptest! {
    // Fixed cases (no persisted failures written into the clone); a failure prints its input.
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_engine_gives_the_same_probabilities(
        m in model(),
        seed in prop::collection::vec(value(), 64 * 4),
        crlf in any::<bool>(),
    ) {
        let text = model_text(&m);
        let file_text = if crlf { text.replace('\n', "\r\n") } else { text.clone() };
        let ensemble = TreeEnsemble::parse(&file_text).map_err(|e| TestCaseError::fail(e.0))?;
        let rows = 64;
        let values: Vec<f64> = (0..rows * m.features).map(|i| seed[i % seed.len()]).collect();
        let matrix = Matrix { values, rows, cols: m.features };
        let walked = ensemble.predict(&matrix);
        let compiled = ensemble.compile().map_err(TestCaseError::fail)?;
        let fast = ensemble.predict_using(&matrix, Some(&compiled));
        same_bits(&walked, &fast).map_err(|e| TestCaseError::fail(format!("compiled: {e}")))?;
        // The masks: on these 64 rows (part of one block), and over 200 rows (blocks of 128,
        // the last one part full), where `predict_using` picks them itself.
        if let Some(masked) = ensemble.predict_masked(&matrix) {
            same_bits(&walked, &masked).map_err(|e| TestCaseError::fail(format!("masks: {e}")))?;
            let rows = 200;
            let values: Vec<f64> = (0..rows * m.features).map(|i| seed[(i * 7) % seed.len()]).collect();
            let many = Matrix { values, rows, cols: m.features };
            let walked = ensemble.predict(&many);
            same_bits(&walked, &ensemble.predict_masked(&many).unwrap())
                .map_err(|e| TestCaseError::fail(format!("masks, 200 rows: {e}")))?;
            same_bits(&walked, &ensemble.predict_using(&many, Some(&compiled)))
                .map_err(|e| TestCaseError::fail(format!("compiled, 200 rows: {e}")))?;
        }
        // LightGBM on the generated text (LF: its loader cannot read CRLF) and on ours.
        for (name, source) in [("generated", text.clone()), ("rewritten", ensemble.to_model_text())] {
            let booster = Booster::from_model_text(&source)
                .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            let lightgbm = booster.predict(&matrix).map_err(|e| TestCaseError::fail(e.to_string()))?;
            same_bits(&walked, &lightgbm).map_err(|e| TestCaseError::fail(format!("LightGBM ({name}): {e}")))?;
        }
        // The rewritten text is a fixed point: parsed and written again, it is the same text.
        let rewritten = ensemble.to_model_text();
        prop_assert_eq!(TreeEnsemble::parse(&rewritten).unwrap().to_model_text(), rewritten);
    }
}

/// A categorical split whose bitset is longer than 65,535 words (codes above two million, as in
/// a sparse categorical model): every code goes the way LightGBM sends it.
#[test]
fn bitsets_of_any_length() {
    let words = 70_000usize;
    let mut bits = vec![0u32; words];
    for code in [0usize, 5, 2_097_151, 2_097_152, 2_097_185, 2_239_999] {
        bits[code / 32] |= 1 << (code % 32);
    }
    let text = format!(
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\nobjective=binary sigmoid:1\nfeature_names=c\nfeature_infos=-1:0\ntree_sizes=1\n\nTree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\nsplit_gain=1\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 -1\ncat_boundaries=0 {words}\ncat_threshold={}\nis_linear=0\nshrinkage=1\n\n\nend of trees\n",
        bits.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let ensemble = TreeEnsemble::parse(&text).unwrap();
    let codes = [
        0.0,
        1.0,
        5.0,
        5.5,
        2_097_151.0,
        2_097_152.0,
        2_097_153.0,
        2_097_185.0,
        2_239_999.0,
        2_240_000.0,
        2_240_031.0,
        3e6,
        -1.0,
        f64::NAN,
    ];
    let matrix = Matrix {
        values: codes.to_vec(),
        rows: codes.len(),
        cols: 1,
    };
    let walked = ensemble.predict(&matrix);
    let compiled = ensemble.predict_using(&matrix, Some(&ensemble.compile().unwrap()));
    let lightgbm = Booster::from_model_text(&ensemble.to_model_text())
        .unwrap()
        .predict(&matrix)
        .unwrap();
    let left = 1.0 / (1.0 + (-1.0f64).exp());
    let expected: Vec<bool> = vec![
        true, false, true, true, true, true, false, true, true, false, false, false, false, false,
    ];
    for (i, &l) in expected.iter().enumerate() {
        assert_eq!(walked[i] == left, l, "code {}", codes[i]);
    }
    same_bits(&walked, &compiled).unwrap();
    // Wider than the masks' table: they decline, and the compiled trees serve.
    assert!(ensemble.predict_masked(&matrix).is_none());
    same_bits(&walked, &lightgbm).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any edit of a model file (bytes replaced, lines dropped or repeated, digits changed) is
    /// either refused with an error or scored the same way by every engine: never a panic.
    #[test]
    fn malformed_models_are_refused_or_scored_consistently(
        m in model(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6, any::<u8>()), 1..6),
    ) {
        let mut lines: Vec<String> = model_text(&m).lines().map(String::from).collect();
        for (at, kind, byte) in edits {
            let i = at.index(lines.len());
            match kind {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                2 => lines[i] = lines[i].replace('1', &((byte % 10).to_string())),
                3 => lines[i] = lines[i].replace(' ', ""),
                4 => lines[i].push_str(&format!(" {}", i64::from(byte) - 128)),
                _ => {
                    if let Some(c) = lines[i].char_indices().nth(usize::from(byte) % lines[i].len().max(1)) {
                        lines[i].replace_range(c.0..c.0 + c.1.len_utf8(), "9");
                    }
                }
            }
            if lines.is_empty() {
                break;
            }
        }
        let text = lines.join("\n");
        if let Ok(ensemble) = TreeEnsemble::parse(&text) {
            let rows = 16;
            let matrix = Matrix {
                values: (0..rows * ensemble.num_features()).map(|i| SPECIAL[i % SPECIAL.len()]).collect(),
                rows,
                cols: ensemble.num_features(),
            };
            let walked = ensemble.predict(&matrix);
            if let Ok(compiled) = ensemble.compile() {
                same_bits(&walked, &ensemble.predict_using(&matrix, Some(&compiled))).map_err(TestCaseError::fail)?;
            }
            if let Some(masked) = ensemble.predict_masked(&matrix) {
                same_bits(&walked, &masked).map_err(TestCaseError::fail)?;
            }
            let booster = Booster::from_model_text(&ensemble.to_model_text())
                .map_err(|e| TestCaseError::fail(format!("LightGBM refused our own rewrite: {e}")))?;
            let lightgbm = booster.predict(&matrix).map_err(|e| TestCaseError::fail(e.to_string()))?;
            same_bits(&walked, &lightgbm).map_err(TestCaseError::fail)?;
        }
    }
}
