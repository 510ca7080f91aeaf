//! Bad input: each case runs the real binary and expects a non-zero exit, a one-line error naming
//! the problem, and nothing left behind.

mod common;

use std::path::Path;

use common::{audience, bank_csv, workspace};

/// Runs audience in `dir` and checks the failure; returns the error line.
fn fails(dir: &Path, args: &[&str], expected: &[&str]) -> String {
    let before = listing(dir);
    let output = audience(dir)
        .args(args)
        .arg("-q")
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for part in expected {
        assert!(
            stderr.contains(part),
            "error should mention {part:?}:\n{stderr}"
        );
    }
    assert_eq!(listing(dir), before, "the failed run left files behind");
    stderr
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir);
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.push(entry.path().display().to_string());
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        }
    }
    out
}

fn bank() -> String {
    bank_csv().display().to_string()
}

#[test]
fn missing_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["train", "--config", "nope.toml"],
        &["nope.toml", "not found"],
    );
}

#[test]
fn no_data_configured() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["train", "--label", "y"],
        &["no data file", "--data"],
    );
}

#[test]
fn missing_data_file() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["train", "--data", "gone.csv", "--label", "y"],
        &["gone.csv", "No such file"],
    );
}

#[test]
fn data_path_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    fails(
        dir.path(),
        &["train", "--data", "folder", "--label", "y"],
        &["folder", "directory"],
    );
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("locked.csv");
    std::fs::write(&file, "a,y\n1,1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&file).is_ok() {
        // Root reads anything: a broken symlink is the unreadable file root also meets.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere.csv"), &file).unwrap();
    }
    fails(
        dir.path(),
        &["train", "--data", "locked.csv", "--label", "y"],
        &["locked.csv"],
    );
}

#[test]
fn missing_label_column() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["train", "--data", &bank(), "--label", "subscribed"],
        &["no label column \"subscribed\"", "the columns are: age"],
    );
}

#[test]
fn missing_id_column() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &[
            "train",
            "--data",
            &bank(),
            "--label",
            "y",
            "--positive",
            "yes",
            "--id",
            "customer_id",
        ],
        &["no id column \"customer_id\""],
    );
}

#[test]
fn label_with_one_class() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.csv"), "a,y\n1,1\n2,1\n3,yes\n").unwrap();
    fails(
        dir.path(),
        &["train", "--data", "h.csv", "--label", "y"],
        &["only one class", "\"y\""],
    );
}

#[test]
fn label_value_neither_positive_nor_negative() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.csv"), "a,y\n1,1\n2,0\n3,maybe\n").unwrap();
    fails(
        dir.path(),
        &["train", "--data", "h.csv", "--label", "y"],
        &["data row 3", "\"maybe\"", "neither positive"],
    );
}

#[test]
fn duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.csv"), "id,a,y\n7,1,1\n8,2,0\n7,3,0\n").unwrap();
    fails(
        dir.path(),
        &["train", "--data", "h.csv", "--label", "y", "--id", "id"],
        &["duplicate id \"7\"", "rows 1 and 3"],
    );
}

#[test]
fn ragged_csv_row_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let short = lines[30000].rsplit_once(';').unwrap().0.to_string();
    lines[30000] = &short;
    std::fs::write(dir.path().join("ragged.csv"), lines.join("\n")).unwrap();
    fails(
        dir.path(),
        &[
            "train",
            "--data",
            "ragged.csv",
            "--label",
            "y",
            "--positive",
            "yes",
        ],
        &["ragged.csv", "line 30001", "expected 17 fields, found 16"],
    );
}

fn rule_case(sql: &str, expected: &[&str]) {
    let ws = workspace();
    std::fs::write(ws.path().join("bad.sql"), sql).unwrap();
    fails(
        ws.path(),
        &["compare", "bad.sql", "rules/previous_success.sql"],
        expected,
    );
}

#[test]
fn rule_with_a_syntax_error() {
    rule_case(
        "SELECT *\nFROM history\nWHERE age >",
        &["bad.sql:3:", "syntax error"],
    );
}

#[test]
fn rule_that_writes() {
    rule_case(
        "DELETE FROM history WHERE age > 3",
        &["bad.sql:1:1", "read-only SELECT", "DELETE"],
    );
    rule_case(
        "COPY history TO 'out.csv'",
        &["bad.sql:1:1", "read-only SELECT"],
    );
}

#[test]
fn rule_with_two_statements() {
    rule_case(
        "SELECT * FROM history;\nSELECT * FROM history WHERE age > 30;",
        &["bad.sql:2:1", "2 statements"],
    );
}

#[test]
fn rule_with_an_unknown_column() {
    rule_case(
        "SELECT *\nFROM history\nWHERE salary > 1000",
        &["bad.sql:3:7", "salary"],
    );
}

#[test]
fn rule_reading_a_file() {
    rule_case(
        "SELECT * FROM read_csv('/etc/passwd')",
        &["bad.sql:1:15", "table function"],
    );
}

#[test]
fn rule_without_the_id_column() {
    rule_case(
        "SELECT age FROM history",
        &["bad.sql", "no id column \"row_id\""],
    );
}

#[test]
fn rules_glob_matching_nothing() {
    let ws = workspace();
    fails(
        ws.path(),
        &["compare", "nothing/*.sql"],
        &["nothing/*.sql", "matches no file"],
    );
}

#[test]
fn bundle_features_missing_from_the_data() {
    let ws = workspace();
    audience(ws.path()).args(["train", "-q"]).assert().success();
    std::fs::write(ws.path().join("few.csv"), "age;job;y\n30;admin.;no\n").unwrap();
    fails(
        ws.path(),
        &[
            "score", "--model", "model", "--data", "few.csv", "--out", "s.csv",
        ],
        &["few.csv", "missing column(s)", "balance", "poutcome"],
    );
}

#[test]
fn missing_model_bundle() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &[
            "score",
            "--model",
            "nomodel",
            "--data",
            &bank(),
            "--out",
            "s.csv",
        ],
        &["nomodel", "not a model bundle"],
    );
}

#[test]
fn existing_outputs_need_force() {
    let ws = workspace();
    let dir = ws.path();
    std::fs::write(dir.join("report.json"), "keep me").unwrap();
    fails(
        dir,
        &["compare", "--output", "report.json"],
        &["report.json", "already exists", "--force"],
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("report.json")).unwrap(),
        "keep me"
    );
    std::fs::create_dir(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/mine.txt"), "keep me").unwrap();
    fails(dir, &["train"], &["model", "already exists", "--force"]);
    assert!(dir.join("model/mine.txt").exists());
    std::fs::write(dir.join("scores.csv"), "keep me").unwrap();
    fails(
        dir,
        &[
            "score",
            "--model",
            "model",
            "--data",
            &bank(),
            "--out",
            "scores.csv",
        ],
        &["scores.csv", "already exists"],
    );
    // With --force the report is replaced.
    audience(dir)
        .args(["compare", "--output", "report.json", "--force", "-q"])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(dir.join("report.json"))
            .unwrap()
            .starts_with('{')
    );
}

#[test]
fn unknown_configuration_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audience.toml"), "[model]\nnum_leafs = 8\n").unwrap();
    fails(dir.path(), &["train"], &["audience.toml", "num_leafs"]);
}

#[test]
fn excluded_column_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &[
            "train",
            "--data",
            &bank(),
            "--label",
            "y",
            "--positive",
            "yes",
            "--exclude",
            "durration",
        ],
        &["\"durration\"", "does not have"],
    );
}
