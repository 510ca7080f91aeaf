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
    // LightGBM's own engine is checked on the first 10,000 rows: it is given the text audience's
    // parser wrote back, and that is a property of the model, not of how many rows score.
    for file in ["rows.csv", "rows_text.csv"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let head: Vec<&str> = text.lines().take(10_001).collect();
        std::fs::write(dir.join(format!("head_{file}")), head.join("\n") + "\n").unwrap();
    }
    let mut report = Vec::new();
    for name in &names {
        let rows = if name == "pandas_categorical" {
            "rows_text.csv"
        } else {
            "rows.csv"
        };
        let expected: Vec<f64> =
            std::fs::read_to_string(dir.join("expected").join(format!("{name}.txt")))
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
        // audience's evaluators (the default, which runs batches of rows as bitmasks and the
        // rest through the trees compiled to machine code; the compiled trees alone; the
        // node-array walker) on every row, and LightGBM's own on the first 10,000.
        for (engine, data, count) in [
            ("native", rows.to_string(), 100_000),
            ("compiled", rows.to_string(), 100_000),
            ("walk", rows.to_string(), 100_000),
            ("lightgbm", format!("head_{rows}"), 10_000),
        ] {
            audience(dir)
                .args([
                    "score",
                    "-q",
                    "--force",
                    "--out",
                    "scores.csv",
                    "--data",
                    &data,
                    "--engine",
                    engine,
                    "--model",
                ])
                .arg(dir.join("models").join(format!("{name}.txt")))
                .assert()
                .success();
            let ours = read_scores(&dir.join("scores.csv"));
            assert_eq!(ours.len(), count);
            let diff = max_difference(&ours, &expected[..count]);
            report.push(format!("{name} ({engine}): {diff:e}"));
            assert!(
                diff <= 1e-12,
                "{name} ({engine}): largest difference to LightGBM {diff:e}"
            );
        }
    }
    eprintln!(
        "largest |audience - LightGBM| per model:\n{}",
        report.join("\n")
    );
}

#[test]
fn native_and_lightgbm_engines_agree_on_our_own_models() {
    // Models trained by audience (bank, coupon, synthetic), each scored by both engines on at
    // least 100k rows, with unseen categories, missing values and negative zeros added.
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
    // In a folder of its own: the workspace's audience.toml describes the bank file.
    let plain = tempfile::tempdir().unwrap();
    audience(plain.path())
        .args([
            "synth",
            "--rows",
            "30000",
            "--seed",
            "11",
            "--out",
            "synth_train.csv",
            "-q",
        ])
        .assert()
        .success();
    audience(plain.path())
        .args([
            "train",
            "--data",
            "synth_train.csv",
            "--label",
            "converted",
            "--id",
            "customer_id",
        ])
        .arg("--out")
        .arg(dir.join("synth"))
        .arg("-q")
        .assert()
        .success();
    audience(dir)
        .args([
            "synth",
            "--rows",
            "100000",
            "--seed",
            "12",
            "--out",
            "synth_rows.csv",
            "-q",
        ])
        .assert()
        .success();
    let awkward = |path: &Path, out: &str, copies: usize, edits: &[(&str, &str)]| {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let header = lines.remove(0);
        let mut all = vec![header];
        for copy in 0..copies {
            for (i, line) in lines.iter().enumerate() {
                let (from, to) = edits[(i + copy) % edits.len()];
                all.push(if i % 7 == 0 {
                    line.replacen(from, to, 1)
                } else {
                    line.clone()
                });
            }
        }
        std::fs::write(dir.join(out), all.join("\n")).unwrap();
        dir.join(out)
    };
    let bank_rows = awkward(
        &bank_csv(),
        "bank_awkward.csv",
        3,
        &[
            ("\"married\"", "\"eloped\""),
            (";\"no\";", ";;"),
            (";1;", ";-0;"),
            (";0;", ";1e-36;"),
        ],
    );
    let coupon_rows = awkward(
        &coupon.join("in-vehicle-coupon-recommendation.csv"),
        "coupon_awkward.csv",
        8,
        &[(",Sunny,", ",Foggy,"), (",1d,", ",,"), (",1,", ",-0,")],
    );
    let synth_rows = awkward(
        &dir.join("synth_rows.csv"),
        "synth_awkward.csv",
        1,
        &[(",push,", ",fax,"), (",0,", ",-1e-36,"), (",ios,", ",,")],
    );
    for (model, data) in [
        ("bank", bank_rows),
        ("coupon", coupon_rows),
        ("synth", synth_rows),
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
        assert!(
            scores[0].len() >= 100_000,
            "{model}: {} rows",
            scores[0].len()
        );
        let diff = max_difference(&scores[0], &scores[1]);
        assert!(diff <= 1e-12, "{model}: engines differ by {diff:e}");
    }
}
