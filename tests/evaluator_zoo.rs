//! audience's tree evaluator against LightGBM itself, on a zoo of models and awkward rows.

mod common;

use std::path::Path;

use common::{audience, bank_csv, read_json, repo, run_python, workspace};

fn read_scores(path: &Path) -> Vec<f64> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "score")
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap()[column].parse::<f64>().unwrap())
        .collect()
}

fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn native_evaluator_matches_lightgbm_on_a_zoo_of_python_models() {
    let zoo = tempfile::tempdir().unwrap();
    let dir = zoo.path();
    run_python("model_zoo.py", &[&dir.display().to_string()]);
    let names: Vec<String> = serde_json::from_value(read_json(&dir.join("zoo.json"))).unwrap();
    assert!(names.len() >= 20, "{} models", names.len());
    let mut report = Vec::new();
    for name in &names {
        let rows = if name == "pandas_categorical" {
            "rows_text.csv"
        } else {
            "rows.csv"
        };
        audience(dir)
            .args([
                "score",
                "-q",
                "--force",
                "--out",
                "scores.csv",
                "--data",
                rows,
                "--model",
            ])
            .arg(dir.join("models").join(format!("{name}.txt")))
            .assert()
            .success();
        let ours = read_scores(&dir.join("scores.csv"));
        let expected: Vec<f64> =
            std::fs::read_to_string(dir.join("expected").join(format!("{name}.txt")))
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
        assert_eq!(ours.len(), 100_000);
        let diff = max_difference(&ours, &expected);
        report.push(format!("{name}: {diff:e}"));
        assert!(
            diff <= 1e-12,
            "{name}: largest difference to LightGBM {diff:e}"
        );
    }
    eprintln!(
        "largest |audience - LightGBM| per model:\n{}",
        report.join("\n")
    );
}

#[test]
fn native_and_lightgbm_engines_agree_on_our_own_models() {
    // The bank model and the coupon model, trained by audience, scored by both engines on rows
    // with unseen categories and missing values added.
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args(["train", "--out", "bank", "-q"])
        .assert()
        .success();
    let coupon = repo().join("examples/coupon");
    audience(dir)
        .args(["train", "--out", "coupon", "-q", "--config"])
        .arg(coupon.join("audience.toml"))
        .assert()
        .success();
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (i, line) in lines.iter_mut().enumerate().skip(1).step_by(97) {
        *line = match i % 3 {
            0 => line.replacen("\"married\"", "\"eloped\"", 1),
            1 => line.replacen(";\"no\";", ";;", 1),
            _ => line.replacen(";1;", ";-0;", 1),
        };
    }
    std::fs::write(dir.join("bank_awkward.csv"), lines.join("\n")).unwrap();
    for (model, data) in [
        ("bank", dir.join("bank_awkward.csv")),
        (
            "coupon",
            coupon.join("in-vehicle-coupon-recommendation.csv"),
        ),
    ] {
        let mut scores = Vec::new();
        for engine in ["native", "lightgbm"] {
            let out = format!("{model}_{engine}.csv");
            audience(dir)
                .args([
                    "score", "-q", "--model", model, "--engine", engine, "--out", &out, "--data",
                ])
                .arg(&data)
                .assert()
                .success();
            scores.push(read_scores(&dir.join(out)));
        }
        let diff = max_difference(&scores[0], &scores[1]);
        assert!(diff <= 1e-12, "{model}: engines differ by {diff:e}");
    }
}
