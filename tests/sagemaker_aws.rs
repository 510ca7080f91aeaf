//! `audience sagemaker ... --backend aws` against moto_server on loopback (through
//! tests/python/sagemaker_emulator.py, which makes moto's jobs run the real container): the
//! real AWS SDK, real S3 uploads and downloads, the requests as sent.
#![cfg(feature = "sagemaker")]

mod common;

use common::{Emulator, audience, bank_csv, read_json, workspace};

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/audience:test";
const ROLE: &str = "arn:aws:iam::123456789012:role/SageMakerRole";

fn make_bucket(emulator: &Emulator, bucket: &str) {
    emulator.boto3(&format!("s3.create_bucket(Bucket='{bucket}')"));
}

#[test]
fn training_job_uploads_polls_downloads_and_unpacks() {
    let emulator = Emulator::start(false);
    make_bucket(&emulator, "audience-test");
    let ws = workspace();
    let dir = ws.path();
    let run = emulator
        .audience(dir)
        .args([
            "sagemaker",
            "train",
            "--image",
            IMAGE,
            "--role",
            ROLE,
            "--s3",
            "s3://audience-test/runs",
            "--job-name",
            "bank-1",
            "--poll",
            "0.1",
            "--instance-type",
            "ml.m5.2xlarge",
            "--max-runtime",
            "7200",
            "--num-rounds",
            "60",
            "--out",
            "model",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    // Upload, then every status change as it happened, then the download.
    assert!(
        stderr.contains("to s3://audience-test/runs/bank-1/input/train/bank-full.csv"),
        "{stderr}"
    );
    for status in [
        "InProgress (Starting)",
        "InProgress (Training)",
        "Completed (Completed)",
    ] {
        assert!(stderr.contains(status), "{status} missing from:\n{stderr}");
    }
    assert!(
        stderr.contains("downloading s3://audience-test/runs/bank-1/output/model.tar.gz"),
        "{stderr}"
    );
    // The uploaded object is the file.
    let size = emulator.boto3(
        "print(s3.head_object(Bucket='audience-test', Key='runs/bank-1/input/train/bank-full.csv')['ContentLength'])",
    );
    assert_eq!(
        size.trim().parse::<u64>().unwrap(),
        std::fs::metadata(bank_csv()).unwrap().len()
    );

    // CreateTrainingJob as sent.
    let r = emulator.request("CreateTrainingJob", "bank-1");
    assert_eq!(r["training_job_name"], "bank-1");
    assert_eq!(r["role_arn"], ROLE);
    let algorithm = &r["algorithm_specification"];
    assert_eq!(algorithm["TrainingImage"], IMAGE);
    assert_eq!(algorithm["TrainingInputMode"], "File");
    let metrics = algorithm["MetricDefinitions"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["Name"] == "validation:auc" && m["Regex"] == "validation-auc: ([0-9.]+)")
    );
    assert_eq!(metrics.len(), 5);
    let hp = &r["hyper_parameters"];
    assert_eq!(hp["label"], "y");
    assert_eq!(hp["exclude"], "duration");
    assert_eq!(hp["num_rounds"], "60");
    assert_eq!(hp["min_data_in_leaf"], "20");
    let channel = &r["input_data_config"][0];
    assert_eq!(channel["ChannelName"], "train");
    assert_eq!(channel["ContentType"], "text/csv");
    assert_eq!(
        channel["DataSource"]["S3DataSource"]["S3Uri"],
        "s3://audience-test/runs/bank-1/input/train/"
    );
    assert_eq!(
        channel["DataSource"]["S3DataSource"]["S3DataType"],
        "S3Prefix"
    );
    assert_eq!(
        r["output_data_config"]["S3OutputPath"],
        "s3://audience-test/runs"
    );
    assert_eq!(r["resource_config"]["InstanceType"], "ml.m5.2xlarge");
    assert_eq!(r["resource_config"]["InstanceCount"], 1);
    assert_eq!(r["stopping_condition"]["MaxRuntimeInSeconds"], 7200);

    // The unpacked bundle is what `audience train` makes of the same settings.
    audience(dir)
        .args(["train", "--num-rounds", "60", "--out", "direct", "--quiet"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dir.join("model/model.txt")).unwrap(),
        std::fs::read_to_string(dir.join("direct/model.txt")).unwrap()
    );
    let manifest = read_json(&dir.join("model/audience-model.json"));
    assert!(manifest["metrics"]["holdout"]["auc"].as_f64().unwrap() > 0.78);
    audience(dir)
        .args(["score", "--model", "model", "--out", "scores.csv"])
        .arg("--data")
        .arg(bank_csv())
        .assert()
        .success();

    emulator
        .audience(dir)
        .args(["sagemaker", "status", "bank-1"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "bank-1 (training job): Completed (Completed)",
        ))
        .stdout(predicates::str::contains(
            "Downloading: Downloading input data",
        ))
        .stdout(predicates::str::contains(
            "model artifacts: s3://audience-test/runs/bank-1/output/model.tar.gz",
        ));
    // A name only part of an existing job's is no job: SageMaker's refusal is checked against
    // the job list by exact name.
    emulator
        .audience(dir)
        .args(["sagemaker", "status", "bank"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no training job named \"bank\""));
}

#[test]
fn failed_training_job_shows_its_reason_and_no_wait_returns_at_once() {
    let emulator = Emulator::start(false);
    make_bucket(&emulator, "audience-test");
    let ws = workspace();
    let dir = ws.path();
    emulator
        .audience(dir)
        .args([
            "sagemaker",
            "train",
            "--image",
            IMAGE,
            "--role",
            ROLE,
            "--s3",
            "s3://audience-test",
            "--job-name",
            "broken",
            "--poll",
            "0.1",
            "--label",
            "nosuch",
            "--out",
            "model",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("InProgress (Starting)"))
        .stderr(predicates::str::contains("Failed (Failed)"))
        .stderr(predicates::str::contains("training job broken failed:"))
        .stderr(predicates::str::contains("nosuch"));
    assert!(!dir.join("model").exists());
    emulator
        .audience(dir)
        .args(["sagemaker", "status", "broken"])
        .assert()
        .success()
        .stdout(predicates::str::contains("failure reason:"))
        .stdout(predicates::str::contains("nosuch"));

    // --no-wait prints the job name and returns while the job runs.
    emulator
        .audience(dir)
        .args([
            "sagemaker",
            "train",
            "--image",
            IMAGE,
            "--role",
            ROLE,
            "--s3",
            "s3://audience-test",
            "--job-name",
            "later",
            "--no-wait",
            "--num-rounds",
            "5",
        ])
        .assert()
        .success()
        .stdout("later\n");
    assert!(!dir.join("model").exists());
}

#[test]
fn transform_job_sends_data_processing_and_merges_the_out_files() {
    let emulator = Emulator::start(false);
    make_bucket(&emulator, "audience-test");
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args(["train", "--num-rounds", "30", "--out", "model", "--quiet"])
        .assert()
        .success();
    // Two candidate files: one .out each, merged in order under one header.
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines[..20_001].join("\n") + "\n";
    let second = format!("{}\n{}\n", lines[0], lines[20_001..].join("\n"));
    std::fs::write(dir.join("a.csv"), first).unwrap();
    std::fs::write(dir.join("b.csv"), second).unwrap();
    emulator
        .audience(dir)
        .args([
            "sagemaker",
            "transform",
            "--image",
            IMAGE,
            "--role",
            ROLE,
            "--s3",
            "s3://audience-test/score",
            "--job-name",
            "score-1",
            "--poll",
            "0.1",
            "--model",
            "model",
            "--data",
            "a.csv",
            "b.csv",
            "--out",
            "scores.csv",
            "--max-payload-mb",
            "1",
        ])
        .assert()
        .success()
        .stderr(predicates::str::contains("InProgress"))
        .stderr(predicates::str::contains("Completed"));
    // Scores equal `audience score` on each file (row_id numbers each file's rows).
    for name in ["a.csv", "b.csv"] {
        audience(dir)
            .args(["score", "--model", "model", "--data", name, "--out"])
            .arg(format!("{name}.ref"))
            .assert()
            .success();
    }
    let reference: Vec<String> = ["a.csv.ref", "b.csv.ref"]
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .skip(usize::from(i > 0))
                .map(|l| l.splitn(3, ',').take(2).collect::<Vec<_>>().join(","))
                .collect::<Vec<_>>()
        })
        .collect();
    let got: Vec<String> = std::fs::read_to_string(dir.join("scores.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), 45_212);
    assert_eq!(got, reference);

    let model = emulator.request("CreateModel", "score-1");
    assert_eq!(model["execution_role_arn"], ROLE);
    assert_eq!(model["primary_container"]["Image"], IMAGE);
    assert_eq!(
        model["primary_container"]["ModelDataUrl"],
        "s3://audience-test/score/score-1/model/model.tar.gz"
    );
    let t = emulator.request("CreateTransformJob", "score-1");
    assert_eq!(t["model_name"], "score-1");
    assert_eq!(t["batch_strategy"], "MultiRecord");
    assert_eq!(t["max_payload_in_mb"], 1);
    assert_eq!(t["transform_input"]["SplitType"], "Line");
    assert_eq!(t["transform_input"]["ContentType"], "text/csv");
    assert_eq!(
        t["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"],
        "s3://audience-test/score/score-1/input/"
    );
    assert_eq!(t["transform_output"]["AssembleWith"], "Line");
    assert_eq!(t["transform_output"]["Accept"], "text/csv");
    assert_eq!(
        t["transform_output"]["S3OutputPath"],
        "s3://audience-test/score/score-1/output/"
    );
    // bank has no id column: a row_id column is staged first; the features follow it.
    assert_eq!(
        t["data_processing"],
        serde_json::json!({"InputFilter": "$[1,2,3,4,5,6,7,8,9,10,11,13,14,15,16]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    );
    emulator
        .audience(dir)
        .args(["sagemaker", "status", "--transform", "score-1"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "score-1 (transform job): Completed",
        ))
        .stdout(predicates::str::contains(
            "JoinSource Input, OutputFilter $[0,-1]",
        ));
}

#[test]
fn a_missing_job_and_an_access_error_are_clear() {
    let emulator = Emulator::start(false);
    let dir = tempfile::tempdir().unwrap();
    emulator
        .audience(dir.path())
        .args(["sagemaker", "status", "nosuch"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "no training job named \"nosuch\"",
        ));
    emulator
        .audience(dir.path())
        .args(["sagemaker", "status", "--transform", "nosuch"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "no transform job named \"nosuch\"",
        ));
    // Missing settings are named before anything is sent.
    let ws = workspace();
    emulator
        .audience(ws.path())
        .args(["sagemaker", "train", "--role", ROLE, "--s3", "s3://b"])
        .env_remove("AUDIENCE_IMAGE")
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--backend aws needs --image (or AUDIENCE_IMAGE)",
        ));

    // A server that checks credentials: ours are unknown to it.
    let strict = Emulator::start(true);
    strict
        .audience(dir.path())
        .args(["sagemaker", "status", "some-job"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("access denied"));
    let run = strict
        .audience(ws.path())
        .args([
            "sagemaker",
            "train",
            "--image",
            IMAGE,
            "--role",
            ROLE,
            "--s3",
            "s3://audience-test",
            "--job-name",
            "denied",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("access denied"));
    // Credentials are never printed.
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(!stderr.contains("testing"), "{stderr}");
}
