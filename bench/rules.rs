//! The rules of `compare` over a large table: load the CSV and run every rule with audience's
//! engine (DataFusion), as `compare` does. Prints one JSON object.
//!
//! usage: cargo bench --bench rules -- DATA.csv ID_COLUMN RULE.sql...

use std::time::Instant;

use audience::data::{LoadOptions, load_table, read_ids};
use audience::rules::{RuleLimits, RuleRunner, load_rule};

/// This process's resident and peak resident memory in MB, from /proc (Linux; 0 elsewhere).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [data, id, rules @ ..] = args.as_slice() else {
        eprintln!("usage: rules DATA.csv ID_COLUMN RULE.sql...");
        std::process::exit(2);
    };
    let start = Instant::now();
    let table = load_table(
        data.as_ref(),
        &LoadOptions {
            delimiter: None,
            text_columns: vec![id.clone()],
            na_values: Vec::new(),
        },
    )
    .expect("data loads");
    let table_s = start.elapsed().as_secs_f64();
    let (table_rss, table_peak) = memory_mb();
    let ids = read_ids(&table, id).expect("unique ids");
    let (ids_rss, _) = memory_mb();
    let runner =
        RuleRunner::new(&table, "history", id, &ids, RuleLimits::default()).expect("registers");
    let loaded = start.elapsed().as_secs_f64();
    let mut sizes = Vec::new();
    let rules_start = Instant::now();
    for rule in rules {
        let rule = load_rule(rule.as_ref(), "history").expect("valid rule");
        sizes.push(runner.run(&rule).expect("rule runs").rows.len());
    }
    let ran = rules_start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "rows": table.num_rows(),
            "load_s": loaded,
            "table_s": table_s,
            "ids_s": loaded - table_s,
            "rules_s": ran,
            "total_s": loaded + ran,
            "audience_sizes": sizes,
            "rss_after_table_mb": table_rss,
            "peak_during_table_mb": table_peak,
            "rss_after_ids_mb": ids_rss,
            "peak_mb": memory_mb().1,
        })
    );
}
