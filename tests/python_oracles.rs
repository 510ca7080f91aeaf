//! audience against independent implementations: Python lightgbm, pandas and scikit-learn.
//! Needs the Python test dependencies (scripts/test installs them into its venv).

mod common;

use common::{audience, bank_csv, read_json, run_python, workspace};

/// Trains the bank model with its split written out, and scores the whole file with it.
fn train_and_score(ws: &std::path::Path) {
    train_and_score_with(ws, &[]);
}

fn train_and_score_with(ws: &std::path::Path, settings: &[&str]) {
    audience(ws)
        .args(["train", "--out", "model", "--split-out", "split.csv", "-q"])
        .args(settings)
        .assert()
        .success();
    audience(ws)
        .args(["score", "--model", "model", "--out", "scores.csv", "-q"])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();
}

fn path(ws: &std::path::Path, name: &str) -> String {
    ws.join(name).display().to_string()
}

#[test]
fn training_matches_python_lightgbm_on_the_same_rows() {
    let ws = workspace();
    let dir = ws.path();
    train_and_score(dir);
    let out = run_python(
        "train_parity.py",
        &[
            &bank_csv().display().to_string(),
            ";",
            &path(dir, "model"),
            &path(dir, "split.csv"),
            &path(dir, "scores.csv"),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let manifest = read_json(&dir.join("model/audience-model.json"));
    let ours = manifest["metrics"]["holdout"]["auc"].as_f64().unwrap();
    let python = result["python_auc"].as_f64().unwrap();
    eprintln!("holdout AUC: audience {ours}, Python lightgbm {python}; {result}");
    assert!(ours >= 0.78, "AUC {ours}");
    assert!(
        (ours - python).abs() <= 0.005,
        "audience {ours} vs Python {python}"
    );
    // scikit-learn's AUC of our scores equals the one we report.
    let recomputed = result["our_auc_recomputed"].as_f64().unwrap();
    assert!(
        (ours - recomputed).abs() < 1e-12,
        "{ours} vs sklearn {recomputed}"
    );
}

#[test]
fn python_booster_reproduces_our_scores_from_model_txt() {
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args(["train", "--out", "model", "-q"])
        .assert()
        .success();
    // Candidates with a job never seen in training, missing values and new numbers.
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = lines[1].replace("\"management\"", "\"astronaut\"");
    lines[2] = lines[2].replace("\"technician\"", "");
    lines[3] = lines[3].replacen(";2;", ";;", 1);
    let candidates = dir.join("candidates.csv");
    std::fs::write(&candidates, lines.join("\n")).unwrap();
    let scored = audience(dir)
        .args(["score", "--model", "model", "--out", "scores.csv"])
        .arg("--data")
        .arg(&candidates)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&scored.get_output().stderr).into_owned();
    assert!(
        stderr.contains("not seen in training") && stderr.contains("job: 1"),
        "{stderr}"
    );
    let out = run_python(
        "score_parity.py",
        &[
            &candidates.display().to_string(),
            ";",
            &path(dir, "model"),
            &path(dir, "scores.csv"),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("{result}");
    assert_eq!(result["rows"], 45211);
    assert_eq!(result["pandas_categorical_columns"], 9);
    let diff = result["max_abs_diff"].as_f64().unwrap();
    assert!(
        diff <= 1e-12,
        "largest difference to Python lightgbm: {diff}"
    );
}

#[test]
fn compare_report_equals_an_independent_recomputation() {
    compare_oracle(&[]);
}

/// A coarse model (three stumps: at most eight distinct scores), so rules' cuts and decile
/// boundaries fall inside groups of equal scores: the pro-rata counts are recomputed too.
#[test]
fn compare_report_with_heavy_ties_equals_an_independent_recomputation() {
    let report = compare_oracle(&[
        "--num-leaves",
        "2",
        "--num-rounds",
        "3",
        "--early-stopping-rounds",
        "0",
    ]);
    assert!(report["model"]["distinct_scores"].as_u64().unwrap() <= 8);
    let tied: Vec<u64> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tied_at_cut"].as_u64().unwrap())
        .collect();
    // previous_success is exactly the model's best group (its first split is poutcome): its cut
    // falls between two scores; the other four fall among thousands of equal scores.
    assert_eq!(tied.iter().filter(|&&t| t > 1000).count(), 4, "{tied:?}");
}

fn compare_oracle(settings: &[&str]) -> serde_json::Value {
    let ws = workspace();
    let dir = ws.path();
    train_and_score_with(dir, settings);
    audience(dir)
        .args(["compare", "rules/*.sql", "--output", "report.json", "-q"])
        .args(settings)
        .assert()
        .success();
    let out = run_python(
        "compare_oracle.py",
        &[
            &bank_csv().display().to_string(),
            ";",
            &path(dir, "split.csv"),
            &path(dir, "scores.csv"),
            &path(dir, "report.json"),
        ],
    );
    let mismatches: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    read_json(&dir.join("report.json"))
}
