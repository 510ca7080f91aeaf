//! `audience sagemaker ... --backend local`: SageMaker's training and batch-transform jobs run
//! on this machine as the service runs them (an /opt/ml tree per host, the container as a child
//! process, model.tar.gz, `serve` on loopback with DataProcessing applied).

mod common;

use std::path::Path;

use common::{audience, bank_csv, read_json, workspace};

fn first_two_columns(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.splitn(3, ',').take(2).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

fn only_job(root: &Path, prefix: &str) -> std::path::PathBuf {
    let mut jobs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs.pop().unwrap()
}

#[test]
fn bank_full_training_job_then_transform_job_equals_score() {
    let ws = workspace();
    let dir = ws.path();
    let trained = audience(dir)
        .args(["sagemaker", "train", "--backend", "local", "--out", "model"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&trained.get_output().stderr).into_owned();
    assert!(stderr.contains("validation-auc: 0.80"), "{stderr}");
    // The /opt/ml tree SageMaker would have given the container.
    let job = only_job(&dir.join("sagemaker-jobs"), "audience-train-");
    let config = job.join("algo-1/input/config");
    let hp = read_json(&config.join("hyperparameters.json"));
    assert_eq!(hp["label"], "y");
    assert_eq!(hp["exclude"], "duration");
    assert_eq!(hp["positive"], "yes");
    assert_eq!(hp["min_data_in_leaf"], "20");
    let channels = read_json(&config.join("inputdataconfig.json"));
    assert_eq!(channels["train"]["ContentType"], "text/csv");
    assert_eq!(channels["train"]["TrainingInputMode"], "File");
    let resources = read_json(&config.join("resourceconfig.json"));
    assert_eq!(resources["current_host"], "algo-1");
    assert_eq!(resources["hosts"], serde_json::json!(["algo-1"]));
    assert!(job.join("algo-1/input/data/train/bank-full.csv").is_file());
    assert!(job.join("output/model.tar.gz").is_file());
    let record = read_json(&job.join("job.json"));
    assert_eq!(record["status"], "Completed");
    // The bundle is the one `audience train` writes: same model text.
    audience(dir)
        .args(["train", "--out", "direct", "--quiet"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dir.join("model/model.txt")).unwrap(),
        std::fs::read_to_string(dir.join("direct/model.txt")).unwrap()
    );

    // Transform with 1 MB payloads: several MultiRecord requests for the 4.6 MB file.
    let transformed = audience(dir)
        .args([
            "sagemaker",
            "transform",
            "--backend",
            "local",
            "--model",
            "model",
        ])
        .arg("--data")
        .arg(bank_csv())
        .args(["--out", "scores.csv", "--max-payload-mb", "1"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&transformed.get_output().stderr).into_owned();
    assert!(
        stderr.contains("JoinSource Input, OutputFilter $[0,-1]"),
        "{stderr}"
    );
    let payloads: usize = stderr
        .split(" payloads)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(payloads >= 4, "{stderr}");
    audience(dir)
        .args(["score", "--model", "model", "--out", "reference.csv"])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();
    let expected = first_two_columns(&dir.join("reference.csv"));
    assert_eq!(expected.lines().count(), 45_212);
    assert_eq!(
        std::fs::read_to_string(dir.join("scores.csv")).unwrap(),
        expected
    );
    // The job's own .out file holds the same id,score lines.
    let job = only_job(&dir.join("sagemaker-jobs"), "audience-score-");
    assert_eq!(
        std::fs::read_to_string(job.join("output/bank-full.csv.out")).unwrap(),
        expected
    );
    let name = job.file_name().unwrap().to_string_lossy().into_owned();
    audience(dir)
        .args(["sagemaker", "status", &name, "--backend", "local"])
        .assert()
        .success()
        .stdout(predicates::str::contains("(transform job): Completed"));
    // The output exists: not overwritten without --force.
    audience(dir)
        .args([
            "sagemaker",
            "transform",
            "--backend",
            "local",
            "--model",
            "model",
        ])
        .arg("--data")
        .arg(bank_csv())
        .args(["--out", "scores.csv"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--force"));
}

/// A candidate file whose columns are in another order than the model's, with the id in the
/// middle and an extra column: the InputFilter lists the feature positions in the model's
/// order and the OutputFilter picks the id and the score.
#[test]
fn transform_filters_scattered_columns_and_joins_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(';')
        .map(|h| h.trim_matches('"').to_string())
        .collect();
    // Training file: customer id first, then the bank columns; 6,000 rows.
    let mut history = String::from("customer,");
    history.push_str(&header.join(","));
    history.push('\n');
    let rows: Vec<Vec<String>> = lines
        .take(6000)
        .map(|l| {
            l.split(';')
                .map(|f| f.trim_matches('"').to_string())
                .collect()
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        history.push_str(&format!("c-{i:05},{}\n", r.join(",")));
    }
    std::fs::write(dir.join("history.csv"), &history).unwrap();
    audience(dir)
        .args([
            "train",
            "--data",
            "history.csv",
            "--label",
            "y",
            "--id",
            "customer",
            "--exclude",
            "duration",
            "--num-rounds",
            "20",
            "--out",
            "model",
            "--quiet",
        ])
        .assert()
        .success();
    // Candidates: columns reversed, the id in the middle, an extra "note" column, a quoted field.
    let mut order: Vec<String> = header.iter().filter(|h| *h != "y").cloned().rev().collect();
    order.insert(5, "customer".into());
    order.push("note".into());
    let mut candidates = order.join(",") + "\n";
    for (i, r) in rows.iter().enumerate().take(3000) {
        let field = |name: &str| -> String {
            match name {
                "customer" => format!("c-{i:05}"),
                "note" => "\"call, maybe\"".into(),
                other => r[header.iter().position(|h| h == other).unwrap()].clone(),
            }
        };
        candidates.push_str(&order.iter().map(|n| field(n)).collect::<Vec<_>>().join(","));
        candidates.push('\n');
    }
    std::fs::write(dir.join("candidates.csv"), &candidates).unwrap();
    let out = audience(dir)
        .args([
            "sagemaker",
            "transform",
            "--backend",
            "local",
            "--model",
            "model",
            "--data",
            "candidates.csv",
            "--out",
            "scores.csv",
            "--batch-strategy",
            "single",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    // Reversed features: positions listed one by one, in the model's order.
    assert!(
        stderr.contains("InputFilter $[16,15,14,13,12,11,10,9,8,7,6,3,2,1,0]"),
        "{stderr}"
    );
    assert!(stderr.contains("OutputFilter $[5,-1]"), "{stderr}");
    assert!(stderr.contains("3001 records in 3001 payloads"), "{stderr}");
    audience(dir)
        .args([
            "score",
            "--model",
            "model",
            "--data",
            "candidates.csv",
            "--out",
            "reference.csv",
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dir.join("scores.csv")).unwrap(),
        first_two_columns(&dir.join("reference.csv"))
    );
}

#[test]
fn failed_jobs_report_the_container_reason() {
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args([
            "sagemaker",
            "train",
            "--backend",
            "local",
            "--label",
            "nosuch",
            "--job-name",
            "broken",
            "--out",
            "model",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("training job broken failed:"))
        .stderr(predicates::str::contains("nosuch"));
    assert!(!dir.join("model").exists());
    let failure =
        std::fs::read_to_string(dir.join("sagemaker-jobs/broken/algo-1/output/failure")).unwrap();
    assert!(failure.contains("nosuch"), "{failure}");
    audience(dir)
        .args(["sagemaker", "status", "broken", "--backend", "local"])
        .assert()
        .success()
        .stdout(predicates::str::contains("(training job): Failed"))
        .stdout(predicates::str::contains("failure reason:"));
    // Job names are used once.
    audience(dir)
        .args([
            "sagemaker",
            "train",
            "--backend",
            "local",
            "--job-name",
            "broken",
            "--out",
            "m2",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("already exists"));
    audience(dir)
        .args(["sagemaker", "status", "nosuch", "--backend", "local"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no local job \"nosuch\""));

    // A malformed candidate record fails its file: no .out, the reason names the line.
    audience(dir)
        .args(["train", "--out", "model", "--num-rounds", "5", "--quiet"])
        .assert()
        .success();
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines: Vec<String> = text.lines().take(50).map(str::to_string).collect();
    let rest = lines[30].split_once(';').unwrap().1.to_string();
    lines[30] = format!("fifty-eight;{rest}");
    std::fs::write(dir.join("bad.csv"), lines.join("\n") + "\n").unwrap();
    audience(dir)
        .args([
            "sagemaker",
            "transform",
            "--backend",
            "local",
            "--model",
            "model",
            "--data",
            "bad.csv",
            "--out",
            "scores.csv",
            "--job-name",
            "badscore",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("transform job badscore failed"))
        .stderr(predicates::str::contains("400"));
    assert!(!dir.join("scores.csv").exists());
    assert!(
        !dir.join("sagemaker-jobs/badscore/output/bad.csv.out")
            .exists()
    );
}

/// Two hosts on loopback train one model with LightGBM's data-parallel learner; its quality
/// matches one-host training.
#[test]
fn data_parallel_training_over_two_hosts_matches_one_host() {
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args([
            "sagemaker",
            "train",
            "--backend",
            "local",
            "--out",
            "single",
        ])
        .assert()
        .success();
    let run = audience(dir)
        .args([
            "sagemaker",
            "train",
            "--backend",
            "local",
            "--instance-count",
            "2",
            "--out",
            "parallel",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains("[algo-1] audience: data-parallel training, host 1 of 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[algo-2] audience: data-parallel training, host 2 of 2"),
        "{stderr}"
    );
    let single = read_json(&dir.join("single/audience-model.json"));
    let parallel = read_json(&dir.join("parallel/audience-model.json"));
    assert_eq!(parallel["parameters"]["tree_learner"], "data");
    assert_eq!(parallel["parameters"]["num_machines"], "2");
    let auc = |m: &serde_json::Value| m["metrics"]["holdout"]["auc"].as_f64().unwrap();
    assert!(
        (auc(&single) - auc(&parallel)).abs() < 0.005,
        "one host {} vs two hosts {}",
        auc(&single),
        auc(&parallel)
    );
    // Each host trained on half of the fit rows, and only the first wrote the model.
    let jobs: Vec<_> = std::fs::read_dir(dir.join("sagemaker-jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("algo-2").exists())
        .collect();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].join("algo-1/model/model.txt").exists());
    assert!(!jobs[0].join("algo-2/model/model.txt").exists());
}
