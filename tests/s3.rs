//! End-to-end: s3:// paths (issue 12) for the history, --eval, rules (a pattern too), score's and
//! select's files and every --output, against moto's S3 server on loopback, the AWS SDK finding
//! its credentials by the standard chain (environment variables, or a profile in a credentials
//! file). The numbers are those of the same run on local files; errors name the s3:// address;
//! an existing object is never replaced without --force, an input never; no spool is left.

mod common;

use std::path::Path;

use common::{Emulator, audience, bank_csv, workspace};

const BUCKET: &str = "audience-analyst";

/// The report without what names where its files were.
fn numbers(mut report: serde_json::Value) -> serde_json::Value {
    report["evaluation"]["data"] = serde_json::Value::Null;
    if let Some(rules) = report["rules"].as_array_mut() {
        for rule in rules {
            rule["file"] = serde_json::Value::Null;
        }
    }
    report
}

fn get_object(emulator: &Emulator, key: &str) -> String {
    emulator.boto3(&format!(
        "import sys\nsys.stdout.write(s3.get_object(Bucket='{BUCKET}', Key='{key}')['Body'].read().decode())"
    ))
}

#[test]
fn s3_paths_for_history_rules_eval_and_outputs() {
    let emulator = Emulator::start(false);
    let ws = workspace();
    let dir = ws.path();
    let spool = tempfile::tempdir().unwrap();
    // The history, two rules and the candidates, in the bucket.
    let rules = dir.join("rules");
    emulator.boto3(&format!(
        "s3.create_bucket(Bucket='{BUCKET}')\n\
         s3.upload_file({bank:?}, '{BUCKET}', 'history/bank-full.csv')\n\
         s3.upload_file({cand:?}, '{BUCKET}', 'history/candidates.csv')\n\
         s3.upload_file({r1:?}, '{BUCKET}', 'rules/previous_success.sql')\n\
         s3.upload_file({r2:?}, '{BUCKET}', 'rules/fresh_contacts.sql')\n\
         s3.put_object(Bucket='{BUCKET}', Key='rules/notes.txt', Body=b'not a rule')\n\
         s3.put_object(Bucket='{BUCKET}', Key='broken/bad.sql', Body=b'SELECT row_id FROM history\\nWHERE balanse > 0')\n",
        bank = bank_csv().display().to_string(),
        cand = common::repo()
            .join("examples/bank/candidates.csv")
            .display()
            .to_string(),
        r1 = rules.join("previous_success.sql").display().to_string(),
        r2 = rules.join("fresh_contacts.sql").display().to_string(),
    ));
    let run = |args: &[&str]| {
        let mut cmd = emulator.audience(dir);
        cmd.env("TMPDIR", spool.path()).args(args);
        cmd
    };
    let quick = ["--num-rounds", "30", "-q"];

    // compare: history and rules (a pattern) from S3, two outputs, one of them in S3.
    let mut args = vec![
        "compare",
        "s3://audience-analyst/rules/*.sql",
        "--data",
        "s3://audience-analyst/history/bank-full.csv",
        "-o",
        "s3://audience-analyst/reports/report.json",
        "-o",
        "local.json",
    ];
    args.extend(quick);
    run(&args).assert().success();
    let remote: serde_json::Value =
        serde_json::from_str(&get_object(&emulator, "reports/report.json")).unwrap();
    let local = common::read_json(&dir.join("local.json"));
    assert_eq!(
        remote, local,
        "the two outputs of one run are the same report"
    );
    assert_eq!(
        remote["evaluation"]["data"],
        "s3://audience-analyst/history/bank-full.csv"
    );
    let files: Vec<&str> = remote["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "s3://audience-analyst/rules/fresh_contacts.sql",
            "s3://audience-analyst/rules/previous_success.sql"
        ],
        "the pattern's matches in key order, notes.txt left out"
    );
    // The same job on local files gives the same numbers.
    let mut args = vec![
        "compare",
        "rules/fresh_contacts.sql",
        "rules/previous_success.sql",
        "-o",
        "plain.json",
    ];
    args.extend(quick);
    audience(dir).args(&args).assert().success();
    assert_eq!(
        numbers(remote.clone()),
        numbers(common::read_json(&dir.join("plain.json")))
    );

    // An existing object is refused before any work, without --force; replaced with it.
    let mut args = vec![
        "compare",
        "rules/fresh_contacts.sql",
        "-o",
        "s3://audience-analyst/reports/report.json",
    ];
    args.extend(quick);
    run(&args)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "s3://audience-analyst/reports/report.json: already exists; pass --force",
        ));
    args.push("--force");
    run(&args).assert().success();
    let replaced: serde_json::Value =
        serde_json::from_str(&get_object(&emulator, "reports/report.json")).unwrap();
    assert_eq!(replaced["rules"].as_array().unwrap().len(), 1);

    // An input is never an output, --force or not.
    run(&[
        "score",
        "--model",
        "nowhere",
        "--data",
        "s3://audience-analyst/history/candidates.csv",
        "--output",
        "s3://audience-analyst/history/candidates.csv",
        "--force",
    ])
    .assert()
    .code(2)
    .stderr(predicates::str::contains("is one of the inputs"));

    // A broken rule in S3 is named by its address, line and column.
    run(&["compare", "s3://audience-analyst/broken/bad.sql", "-q"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "s3://audience-analyst/broken/bad.sql:2:7",
        ))
        .stderr(predicates::str::contains("balance"));
    // A missing object says which one.
    run(&[
        "columns",
        "--data",
        "s3://audience-analyst/history/missing.csv",
    ])
    .assert()
    .code(2)
    .stderr(predicates::str::contains(
        "s3://audience-analyst/history/missing.csv: no such object",
    ));

    // Train from S3 with credentials from a profile (no key in the environment), then --eval,
    // score and select on S3 files.
    let aws = dir.join("aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[analyst]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile analyst]\nregion = us-east-1\n",
    )
    .unwrap();
    let mut train = run(&[
        "train",
        "--data",
        "s3://audience-analyst/history/bank-full.csv",
        "--out",
        "model",
        "--num-rounds",
        "30",
        "-q",
    ]);
    train
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env("AWS_PROFILE", "analyst")
        .env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"))
        .env("AWS_CONFIG_FILE", aws.join("config"))
        .assert()
        .success();
    let manifest = common::read_json(&dir.join("model/audience-model.json"));
    assert!(
        manifest
            .to_string()
            .contains("s3://audience-analyst/history/bank-full.csv"),
        "the bundle records where it trained: {manifest}"
    );

    let out = run(&[
        "compare",
        "--model",
        "model",
        "--eval",
        "s3://audience-analyst/history/bank-full.csv",
        "rules/previous_success.sql",
        "--format",
        "json",
        "-q",
    ])
    .assert()
    .success()
    .get_output()
    .clone();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["evaluation"]["data"],
        "s3://audience-analyst/history/bank-full.csv"
    );
    assert_eq!(
        report["evaluation"]["in_sample"], true,
        "the training file, fetched again, is recognised: {}",
        report["evaluation"]
    );

    run(&[
        "score",
        "--model",
        "model",
        "--data",
        "s3://audience-analyst/history/candidates.csv",
        "--output",
        "s3://audience-analyst/scores/candidates.csv",
        "-q",
    ])
    .assert()
    .success();
    audience(dir)
        .args([
            "score",
            "--model",
            "model",
            "--data",
            common::repo()
                .join("examples/bank/candidates.csv")
                .to_str()
                .unwrap(),
            "--output",
            "scores.csv",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(
        get_object(&emulator, "scores/candidates.csv"),
        std::fs::read_to_string(dir.join("scores.csv")).unwrap()
    );

    let selected = run(&[
        "select",
        "s3://audience-analyst/rules/previous_success.sql",
        "--model",
        "model",
        "--data",
        "s3://audience-analyst/history/candidates.csv",
        "--output",
        "s3://audience-analyst/audiences/model.csv",
        "-q",
    ])
    .assert()
    .success()
    .get_output()
    .clone();
    let said = String::from_utf8_lossy(&selected.stdout);
    assert!(
        said.contains("to s3://audience-analyst/audiences/model.csv"),
        "{said}"
    );
    let audience_file = get_object(&emulator, "audiences/model.csv");
    assert!(
        audience_file.starts_with("row_id,score,rank,in_rule\n"),
        "{}",
        &audience_file[..60.min(audience_file.len())]
    );
    // The same selection from local files is the same file.
    audience(dir)
        .args([
            "select",
            "rules/previous_success.sql",
            "--model",
            "model",
            "--data",
            common::repo()
                .join("examples/bank/candidates.csv")
                .to_str()
                .unwrap(),
            "--output",
            "selected.csv",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(
        audience_file,
        std::fs::read_to_string(dir.join("selected.csv")).unwrap()
    );
    // A bucket that does not exist is refused before the work.
    run(&[
        "score",
        "--model",
        "model",
        "--data",
        "s3://audience-analyst/history/candidates.csv",
        "--output",
        "s3://no-such-bucket/scores.csv",
    ])
    .assert()
    .code(2)
    .stderr(predicates::str::contains(
        "s3://no-such-bucket/scores.csv: no such bucket",
    ));

    // Nothing of the spool is left behind.
    let left: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(!Path::new(&dir.join("s3:")).exists());
}

/// Of two runs writing one new object, the second's upload is refused (If-None-Match: *) even
/// when the object appeared after its check; with --force it replaces it.
#[test]
fn an_object_that_appears_meanwhile_is_not_replaced() {
    use audience::sagemaker::aws::{Aws, AwsSettings, S3Uri};
    let emulator = Emulator::start(false);
    emulator.boto3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
    // The SDK's own chain, as the binary sees it, from this process's environment.
    let settings = AwsSettings {
        endpoint_url: Some(emulator.url()),
        region: Some("us-east-1".into()),
        profile: None,
    };
    // SAFETY: set before any thread of this test reads the environment (the emulator is
    // another process); nextest runs each test in its own process.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    }
    let aws = Aws::connect(&settings).unwrap();
    let to = S3Uri::parse(&format!("s3://{BUCKET}/reports/r.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.json");
    let second = dir.path().join("second.json");
    std::fs::write(&first, "first").unwrap();
    std::fs::write(&second, "second").unwrap();
    assert!(!aws.exists(&to).unwrap());
    aws.upload_new(&first, &to, false).unwrap();
    assert!(aws.exists(&to).unwrap());
    let refused = aws.upload_new(&second, &to, false).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("appeared while this run was writing it"),
        "{refused}"
    );
    assert!(refused.is_bad_input());
    assert_eq!(get_object(&emulator, "reports/r.json"), "first");
    aws.upload_new(&second, &to, true).unwrap();
    assert_eq!(get_object(&emulator, "reports/r.json"), "second");
}
