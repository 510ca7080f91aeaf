//! Tree evaluation alone: audience's evaluator against LightGBM's C API on the same matrix, at one
//! thread and at every core. Prints one JSON object.
//!
//! usage: cargo bench --bench evaluate -- MODEL_DIR_OR_TXT DATA.csv [REPEATS] [compiled]
//! (`compiled`: audience's own evaluators alone, at one thread and at every core, for quick
//! comparisons). `native` is what `score` runs (the masks for batches of rows, where the model
//! allows), `jit` the machine code alone.

use std::time::Instant;

use audience::data::{LoadOptions, load_table};
use audience::model::bundle::ModelBundle;

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one repeat"))
}

/// The largest |difference| between `reference` and any of `others`.
fn max_abs_diff(reference: &[f64], others: &[&Vec<f64>]) -> f64 {
    others
        .iter()
        .flat_map(|o| o.iter().zip(reference).map(|(x, y)| (x - y).abs()))
        .fold(0.0f64, f64::max)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [model, data, rest @ ..] = args.as_slice() else {
        eprintln!("usage: evaluate MODEL DATA.csv [REPEATS] [compiled]");
        std::process::exit(2);
    };
    let repeats: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(3);
    let bundle = ModelBundle::load(model.as_ref(), None).expect("model loads");
    let text_columns = bundle.features.text_columns();
    let table = load_table(
        data.as_ref(),
        &LoadOptions {
            delimiter: None,
            text_columns,
            na_values: Vec::new(),
        },
    )
    .expect("data loads");
    let (matrix, _) = bundle.features.encode(&table.batch, None).expect("encodes");
    let threads = rayon::current_num_threads();
    let compile_started = std::time::Instant::now();
    let compiled = bundle.ensemble.compile().expect("the trees compile");
    let compile_s = compile_started.elapsed().as_secs_f64();
    let (native_1, a) = best_of(repeats, || {
        bundle.ensemble.predict_serial(&matrix, Some(&compiled))
    });
    let (native_all, b) = best_of(repeats, || {
        bundle.ensemble.predict_using(&matrix, Some(&compiled))
    });
    // The machine code alone, without the masks that serve batches by default.
    let masked = compiled.has_masks();
    let jit = bundle
        .ensemble
        .compile()
        .expect("the trees compile")
        .without_masks();
    let (jit_1, j1) = best_of(repeats, || {
        bundle.ensemble.predict_serial(&matrix, Some(&jit))
    });
    let (jit_all, j2) = best_of(repeats, || {
        bundle.ensemble.predict_using(&matrix, Some(&jit))
    });
    if rest.get(1).map(String::as_str) == Some("compiled") {
        let diff = max_abs_diff(&a, &[&b, &j1, &j2]);
        println!(
            "{}",
            serde_json::json!({
                "rows": matrix.rows,
                "threads": threads,
                "native_masked": masked,
                "native_1_thread_s": native_1,
                "native_all_threads_s": native_all,
                "native_compile_s": compile_s,
                "jit_1_thread_s": jit_1,
                "jit_all_threads_s": jit_all,
                "max_abs_diff_all_threads": diff,
            })
        );
        return;
    }
    let (walk_1, w1) = best_of(repeats, || bundle.ensemble.predict_serial(&matrix, None));
    let (walk_all, w2) = best_of(repeats, || bundle.ensemble.predict(&matrix));
    let booster = bundle.booster().expect("LightGBM loads the model");
    let (lightgbm_1, c) = best_of(repeats, || {
        booster
            .predict_with_threads(&matrix, Some(1))
            .expect("predicts")
    });
    let (lightgbm_all, d) = best_of(repeats, || {
        booster
            .predict_with_threads(&matrix, Some(threads))
            .expect("predicts")
    });
    let max_diff = max_abs_diff(&a, &[&b, &c, &d, &w1, &w2, &j1, &j2]);
    println!(
        "{}",
        serde_json::json!({
            "rows": matrix.rows,
            "trees": bundle.ensemble.num_trees(),
            "threads": threads,
            "native_1_thread_s": native_1,
            "native_all_threads_s": native_all,
            "native_compile_s": compile_s,
            "native_masked": masked,
            "jit_1_thread_s": jit_1,
            "jit_all_threads_s": jit_all,
            "walk_1_thread_s": walk_1,
            "walk_all_threads_s": walk_all,
            "lightgbm_1_thread_s": lightgbm_1,
            "lightgbm_all_threads_s": lightgbm_all,
            "max_abs_diff": max_diff,
        })
    );
}
