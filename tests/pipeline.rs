//! End-to-end: the real binary on real data (train, score, compare).

mod common;

use common::{audience, bank_csv, read_json, repo, shared_data, workspace};
use predicates::prelude::*;

/// Trains the bank example into `dir/model` and returns the manifest.
fn train_bank(dir: &std::path::Path) -> serde_json::Value {
    audience(dir)
        .args(["train", "--out", "model", "-q"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Holdout"));
    read_json(&dir.join("model/audience-model.json"))
}

#[test]
fn bank_model_meets_the_auc_bar_and_records_everything() {
    let ws = workspace();
    let m = train_bank(ws.path());
    let auc = m["metrics"]["holdout"]["auc"].as_f64().unwrap();
    assert!(auc >= 0.78, "holdout AUC {auc} < 0.78");
    assert_eq!(m["format_version"], 1);
    assert_eq!(m["tool"]["lightgbm_version"], "4.7.0");
    assert_eq!(
        m["input"]["sha256"],
        "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d"
    );
    assert_eq!(m["label"]["column"], "y");
    assert_eq!(m["id"]["column"], "row_id");
    assert_eq!(m["id"]["generated"], true);
    assert_eq!(m["excluded"], serde_json::json!(["duration"]));
    assert_eq!(m["rows"]["total"], 45211);
    assert_eq!(m["rows"]["holdout"], 13564);
    let features = m["features"].as_array().unwrap();
    let names: Vec<&str> = features
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"duration") && !names.contains(&"y") && !names.contains(&"row_id"));
    assert_eq!(names.len(), 15);
    let job = features.iter().find(|f| f["name"] == "job").unwrap();
    assert_eq!(job["kind"], "categorical");
    assert_eq!(job["categories"][0], "admin.", "sorted vocabulary");
    assert_eq!(job["categories"].as_array().unwrap().len(), 12);
    assert_eq!(m["parameters"]["min_data_in_leaf"], "20");
    assert!(m["best_iteration"].as_u64().unwrap() <= m["rounds_run"].as_u64().unwrap());
}

#[test]
fn categorical_features_really_are_categorical_in_model_txt() {
    let ws = workspace();
    train_bank(ws.path());
    let text = std::fs::read_to_string(ws.path().join("model/model.txt")).unwrap();
    // LightGBM writes num_cat=K>0 for trees with categorical splits: the lightgbm3 trap would
    // silently give num_cat=0 everywhere.
    let categorical_trees = text
        .lines()
        .filter_map(|l| l.strip_prefix("num_cat="))
        .filter(|n| n.parse::<u32>().unwrap() > 0)
        .count();
    assert!(categorical_trees > 0, "no tree has a categorical split");
    let infos = text
        .lines()
        .find_map(|l| l.strip_prefix("feature_infos="))
        .unwrap();
    // Categorical features are listed as `-1:code:code...`, numeric ones as `[min:max]`.
    assert!(infos.split(' ').any(|i| i.starts_with("-1:")), "{infos}");
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("pandas_categorical:[[\"admin.\", "),
        "{last}"
    );
}

#[test]
fn compare_reports_are_byte_identical_across_runs() {
    let ws = workspace();
    for out in ["a.json", "b.json"] {
        audience(ws.path())
            .args([
                "compare",
                "rules/*.sql",
                "--format",
                "json",
                "--output",
                out,
                "-q",
            ])
            .assert()
            .success();
    }
    let a = std::fs::read(ws.path().join("a.json")).unwrap();
    let b = std::fs::read(ws.path().join("b.json")).unwrap();
    assert_eq!(a, b);
    let report: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(report["schema_version"], 2);
    let evaluation = &report["evaluation"];
    assert_eq!(evaluation["rule_scope"], "history");
    assert_eq!(evaluation["base_rows"], 45211);
    assert_eq!(evaluation["in_sample"], false);
    let model = &report["model"];
    for key in [
        "auc",
        "auc_ci",
        "log_loss",
        "eval_rows",
        "positives",
        "base_rate",
    ] {
        assert!(!model[key].is_null(), "model.{key} missing");
    }
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    for r in rules {
        for key in [
            "name",
            "file",
            "size",
            "share",
            "base_size",
            "base_share",
            "tied_at_cut",
            "notes",
            "rule_conversions",
            "rule_rate",
            "rule_lift",
            "model_conversions",
            "model_rate",
            "model_lift",
            "extra_conversions",
            "overlap",
            "rate_diff_ci",
            "verdict",
            "rule_auc",
        ] {
            assert!(r.get(key).is_some(), "rules[].{key} missing");
        }
    }
    assert_eq!(report["deciles"].as_array().unwrap().len(), 10);
}

#[test]
fn every_report_format_renders() {
    let ws = workspace();
    let table = audience(ws.path())
        .args(["compare", "-q"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("young_professionals"), "{table}");
    assert!(table.contains("Model AUC"), "{table}");
    assert!(!table.contains('\u{1b}'), "no colour when not a terminal");
    for line in table.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line}"
        );
    }
    audience(ws.path())
        .args(["compare", "-q", "--output", "r.md"])
        .assert()
        .success();
    let md = std::fs::read_to_string(ws.path().join("r.md")).unwrap();
    assert!(md.starts_with("# Rules against the model"));
    assert!(md.contains("| previous_success |"));
    audience(ws.path())
        .args(["compare", "-q", "--format", "csv", "--output", "r.csv"])
        .assert()
        .success();
    let csv = std::fs::read_to_string(ws.path().join("r.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "header and five rules");
    assert!(csv.starts_with("name,file,size,share,"));
}

#[test]
fn score_writes_one_row_per_input_in_order() {
    let ws = workspace();
    train_bank(ws.path());
    audience(ws.path())
        .args([
            "score",
            "--model",
            "model",
            "--out",
            "scores.csv",
            "-q",
            "--keep",
            "job",
        ])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();
    let mut reader = csv::Reader::from_path(ws.path().join("scores.csv")).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["row_id", "score", "percentile", "decile", "job"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 45211);
    let mut decile_counts = [0usize; 11];
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0].parse::<usize>().unwrap(), i, "input order");
        let score: f64 = r[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
        decile_counts[r[3].parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(&rows[0][4], "management");
    // np.array_split-like bins: 45211 rows -> 4522 or 4521 per decile.
    for d in 1..=10 {
        assert!(
            (4521..=4522).contains(&decile_counts[d]),
            "{decile_counts:?}"
        );
    }
    // The best row has decile 1 and percentile 1.
    let best = rows
        .iter()
        .max_by(|a, b| {
            a[1].parse::<f64>()
                .unwrap()
                .total_cmp(&b[1].parse().unwrap())
        })
        .unwrap();
    assert_eq!((&best[2], &best[3]), ("1", "1"));
}

#[test]
fn score_top_n_and_parquet_output() {
    let ws = workspace();
    train_bank(ws.path());
    audience(ws.path())
        .args([
            "score", "-m", "model", "-o", "top.csv", "--top", "100", "-q",
        ])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();
    let text = std::fs::read_to_string(ws.path().join("top.csv")).unwrap();
    assert_eq!(text.lines().count(), 101);
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.split(',').nth(3) == Some("1"))
    );
    audience(ws.path())
        .args([
            "score",
            "-m",
            "model",
            "-o",
            "all.parquet",
            "--batch-rows",
            "5000",
            "-q",
        ])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();
    let file = std::fs::File::open(ws.path().join("all.parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 45211);
}

#[test]
fn compare_judges_an_existing_model_on_a_given_table() {
    let ws = workspace();
    train_bank(ws.path());
    let out = audience(ws.path())
        .args([
            "compare",
            "--model",
            "model",
            "--format",
            "json",
            "-q",
            "rules/previous_success.sql",
        ])
        .arg("--eval")
        .arg(bank_csv())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["model"]["eval_rows"], 45211);
    assert_eq!(report["evaluation"]["source"], "file");
    assert_eq!(
        report["rules"][0]["size"], 1511,
        "poutcome = 'success' rows in bank-full"
    );
}

#[test]
fn coupon_example_runs_from_its_folder() {
    let dir = repo().join("examples/coupon");
    let out = audience(&dir)
        .args(["compare", "rules/*.sql", "-q", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["rules"].as_array().unwrap().len(), 4);
    assert!(report["model"]["auc"].as_f64().unwrap() > 0.75);
}

#[test]
fn seed_cr_layout_trains_and_compares_with_auc_undefined() {
    let Some(data) = shared_data("seed_cr_layout_trains_and_compares_with_auc_undefined") else {
        return;
    };
    let seed = data.join("seed_cr");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in_android.sql"),
        "SELECT * FROM history WHERE country = 'IN' AND platform = 'ANDROID'",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("heavy_impressions.sql"),
        "SELECT row_id FROM history WHERE impression14 > 100",
    )
    .unwrap();
    audience(dir.path())
        .args(["train", "--label", "label", "--out", "model", "-q"])
        .arg("--data")
        .arg(seed.join("CR_train_x.csv"))
        .arg("--labels")
        .arg(seed.join("CR_train_y.csv"))
        .assert()
        .success();
    let m = read_json(&dir.path().join("model/audience-model.json"));
    assert_eq!(m["rows"]["total"], 2379);
    let categorical = m["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "categorical")
        .count();
    assert_eq!(
        categorical, 9,
        "the nine text columns of the original example"
    );
    // The byte-order mark is not part of the first column's name.
    assert_eq!(m["features"][0]["name"], "pkg_name");
    let out = audience(dir.path())
        .args(["compare", "--model", "model", "*.sql"])
        .arg("--eval")
        .arg(seed.join("CR_test_x.csv"))
        .arg("--eval-labels")
        .arg(seed.join("CR_test_y.csv"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("AUC is undefined: the evaluation rows hold no conversions"),
        "{text}"
    );
    assert!(!text.contains("NaN"), "{text}");
}

#[test]
fn parquet_history_gives_the_same_model_as_csv() {
    let ws = workspace();
    let dir = ws.path();
    // Write bank-full as Parquet with the library's own loader (numbers as Float64, text as Utf8).
    let options = audience::data::LoadOptions {
        delimiter: Some(b';'),
        text_columns: vec!["y".into()],
        na_values: Vec::new(),
    };
    let table = audience::data::load_table(&bank_csv(), &options).unwrap();
    let file = std::fs::File::create(dir.join("bank.parquet")).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, table.batch.schema(), None).unwrap();
    writer.write(&table.batch).unwrap();
    writer.close().unwrap();
    let csv_model = train_bank(dir);
    audience(dir)
        .args(["train", "--data", "bank.parquet", "--out", "pq", "-q"])
        .assert()
        .success();
    let pq_model = read_json(&dir.join("pq/audience-model.json"));
    assert_eq!(csv_model["metrics"], pq_model["metrics"]);
    assert_eq!(csv_model["features"], pq_model["features"]);
}

#[test]
fn rules_selecting_nobody_or_everybody_get_a_plain_note() {
    let ws = workspace();
    let dir = ws.path();
    std::fs::write(
        dir.join("nobody.sql"),
        "SELECT * FROM history WHERE age > 200",
    )
    .unwrap();
    std::fs::write(dir.join("everybody.sql"), "SELECT row_id FROM history").unwrap();
    let out = audience(dir)
        .args([
            "compare",
            "nobody.sql",
            "everybody.sql",
            "--format",
            "json",
            "-q",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("NaN"));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nobody = &report["rules"][0];
    assert_eq!(nobody["size"], 0);
    assert_eq!(nobody["verdict"], "not_comparable");
    assert!(nobody["rule_rate"].is_null());
    assert!(
        nobody["notes"][0]
            .as_str()
            .unwrap()
            .contains("selects nobody")
    );
    let everybody = &report["rules"][1];
    assert_eq!(everybody["size"], 13564);
    assert_eq!(everybody["verdict"], "identical");
    assert!(
        everybody["notes"][0]
            .as_str()
            .unwrap()
            .contains("selects everybody")
    );
    assert_eq!(
        everybody["rule_conversions"].as_f64(),
        everybody["model_conversions"].as_f64()
    );
}

#[test]
fn synth_is_deterministic_and_trainable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for out in ["a.csv", "b.csv"] {
        audience(d)
            .args([
                "synth", "--rows", "20000", "--seed", "3", "--out", out, "-q",
            ])
            .assert()
            .success();
    }
    assert_eq!(
        std::fs::read(d.join("a.csv")).unwrap(),
        std::fs::read(d.join("b.csv")).unwrap()
    );
    audience(d)
        .args([
            "synth",
            "--rows",
            "20000",
            "--seed",
            "3",
            "--out",
            "a.parquet",
            "-q",
        ])
        .assert()
        .success();
    std::fs::write(
        d.join("members.sql"),
        "SELECT customer_id FROM history WHERE membership IN ('gold', 'platinum')",
    )
    .unwrap();
    // CSV and Parquet hold the same rows, so they give the same report.
    let mut reports = Vec::new();
    for data in ["a.csv", "a.parquet"] {
        let out = audience(d)
            .args([
                "compare",
                "members.sql",
                "--label",
                "converted",
                "--id",
                "customer_id",
            ])
            .args(["--format", "json", "-q", "--data", data])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let mut report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        report["evaluation"]["data"] = serde_json::Value::Null;
        reports.push(report);
    }
    assert_eq!(reports[0], reports[1]);
    let auc = reports[0]["model"]["auc"].as_f64().unwrap();
    assert!(auc > 0.6, "a model learns the synthetic label: AUC {auc}");
}
