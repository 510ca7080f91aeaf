//! The SageMaker training container, run exactly as the image's ENTRYPOINT runs it
//! (`audience container train`) against /opt/ml trees laid out as SageMaker lays them out.

mod common;

use std::path::{Path, PathBuf};

use common::{audience, bank_csv, read_json, shared_data};

/// An /opt/ml tree with the given hyperparameters and channels (name -> files to copy in).
fn opt_ml(
    hyperparameters: serde_json::Value,
    channels: &[(&str, Vec<PathBuf>)],
) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("input/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("hyperparameters.json"),
        hyperparameters.to_string(),
    )
    .unwrap();
    let mut data_config = serde_json::Map::new();
    for (name, files) in channels {
        let dir = root.path().join("input/data").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
        data_config.insert(
            name.to_string(),
            serde_json::json!({"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}),
        );
    }
    std::fs::write(
        config.join("inputdataconfig.json"),
        serde_json::Value::Object(data_config).to_string(),
    )
    .unwrap();
    std::fs::write(
        config.join("resourceconfig.json"),
        r#"{"current_host":"algo-1","hosts":["algo-1"],"network_interface_name":"eth0"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("model")).unwrap();
    std::fs::create_dir_all(root.path().join("output")).unwrap();
    root
}

fn train(root: &Path) -> assert_cmd::assert::Assert {
    audience(root)
        .env("AUDIENCE_OPT_ML", root)
        .args(["container", "train"])
        .assert()
}

/// The value of a metric line `name: value` (as MetricDefinitions' regexes read it).
fn metric(stdout: &str, name: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_string)
}

/// bank-full dealt into `parts` files, row i into file i % parts (the file is in time order, so
/// contiguous slices would differ by period), each with the header.
fn bank_parts(dir: &Path, parts: usize) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut bodies = vec![Vec::new(); parts];
    for (i, line) in lines.enumerate() {
        bodies[i % parts].push(line);
    }
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let path = dir.join(format!("part-{i:02}.csv"));
            std::fs::write(&path, format!("{header}\n{}\n", body.join("\n"))).unwrap();
            path
        })
        .collect()
}

#[test]
fn original_example_layout_is_a_drop_in() {
    let Some(data) = shared_data("original_example_layout_is_a_drop_in") else {
        return;
    };
    let seed = data.join("seed_cr");
    // As the SageMaker SDK's framework estimator sends them: JSON-encoded strings, plus its own keys.
    let root = opt_ml(
        serde_json::json!({
            "tree_num_leaves": "31",
            "num_round": "\"5\"",
            "sagemaker_program": "\"entry_point.py\"",
            "sagemaker_submit_directory": "\"s3://bucket/source.tar.gz\""
        }),
        &[
            ("x_train", vec![seed.join("CR_train_x.csv")]),
            ("y_train", vec![seed.join("CR_train_y.csv")]),
            ("x_test", vec![seed.join("CR_test_x.csv")]),
            ("y_test", vec![seed.join("CR_test_y.csv")]),
        ],
    );
    let out = train(root.path()).success().get_output().stdout.clone();
    let stdout = String::from_utf8(out).unwrap();
    let m = read_json(&root.path().join("model/audience-model.json"));
    assert_eq!(m["best_iteration"], 5, "num_round = 5");
    assert_eq!(m["parameters"]["num_leaves"], "31");
    assert_eq!(m["rows"]["fit"], 2379, "all of x_train is trained on");
    assert_eq!(m["rows"]["holdout"], 199, "x_test is the holdout");
    assert!(root.path().join("model/model.txt").exists());
    assert!(
        metric(&stdout, "train-auc").unwrap().parse::<f64>().is_ok(),
        "{stdout}"
    );
    assert_eq!(
        metric(&stdout, "validation-auc").as_deref(),
        Some("undefined"),
        "{stdout}"
    );
    assert!(!root.path().join("output/failure").exists());
}

#[test]
fn train_channel_with_many_files_and_a_validation_channel() {
    let parts = tempfile::tempdir().unwrap();
    let files = bank_parts(parts.path(), 5);
    let root = opt_ml(
        serde_json::json!({
            "label": "y", "positive": "yes", "negative": "no", "exclude": "duration",
            "delimiter": ";", "num_rounds": "60", "learning_rate": "0.1", "min_data_in_leaf": "\"30\""
        }),
        &[
            ("train", files[..4].to_vec()),
            ("validation", files[4..].to_vec()),
        ],
    );
    let out = train(root.path()).success().get_output().stdout.clone();
    let stdout = String::from_utf8(out).unwrap();
    let m = read_json(&root.path().join("model/audience-model.json"));
    assert_eq!(m["rows"]["total"], 45211);
    assert_eq!(
        m["rows"]["holdout"], 9042,
        "the validation channel is the holdout"
    );
    assert_eq!(m["parameters"]["min_data_in_leaf"], "30");
    let auc: f64 = metric(&stdout, "validation-auc").unwrap().parse().unwrap();
    assert!(auc > 0.75, "{stdout}");
    // The bundle scores like any other.
    let scored = tempfile::tempdir().unwrap();
    audience(scored.path())
        .args(["score", "-q", "--out", "s.csv", "--model"])
        .arg(root.path().join("model"))
        .arg("--data")
        .arg(&files[4])
        .assert()
        .success();
}

#[test]
fn failure_reason_is_written_for_sagemaker() {
    let parts = tempfile::tempdir().unwrap();
    let files = bank_parts(parts.path(), 1);
    let root = opt_ml(
        serde_json::json!({"label": "subscribed", "delimiter": ";"}),
        &[("train", files)],
    );
    train(root.path()).failure();
    let reason = std::fs::read_to_string(root.path().join("output/failure")).unwrap();
    assert!(
        reason.contains("no label column \"subscribed\""),
        "{reason}"
    );
    assert!(!root.path().join("model/model.txt").exists());
}

#[test]
fn missing_training_channel_fails_clearly() {
    let root = opt_ml(serde_json::json!({}), &[]);
    train(root.path()).failure();
    let reason = std::fs::read_to_string(root.path().join("output/failure")).unwrap();
    assert!(reason.contains("no training channel"), "{reason}");
}

#[test]
fn sigterm_stops_training_and_records_why() {
    let parts = tempfile::tempdir().unwrap();
    let files = bank_parts(parts.path(), 1);
    let root = opt_ml(
        serde_json::json!({
            "label": "y", "positive": "yes", "negative": "no", "delimiter": ";",
            "num_rounds": "100000", "early_stopping_rounds": "0", "learning_rate": "0.001"
        }),
        &[("train", files)],
    );
    let mut child = std::process::Command::new(common::audience_bin())
        .env("AUDIENCE_OPT_ML", root.path())
        .args(["container", "train"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until boosting has started (the first round line), then stop the job.
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(lines.any(|l| l.unwrap().starts_with("round ")));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success());
    let reason = std::fs::read_to_string(root.path().join("output/failure")).unwrap();
    assert!(reason.contains("termination signal"), "{reason}");
}
