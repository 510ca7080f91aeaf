//! End-to-end: hostile data, rules, requests and pipes. No hang, no crash, no silent wrong
//! answer: each is refused with a message naming what and where, or handled.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{audience, audience_bin, make_fifo, workspace};

/// Runs `command` and fails the test if it has not ended within `limit` (then kills it).
fn ends_within(mut command: Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_fifo_as_data_is_refused_instead_of_hanging() {
    let ws = workspace();
    let dir = ws.path();
    make_fifo(&dir.join("pipe.csv"));
    audience(dir)
        .args(["train", "--out", "model", "-q", "--num-rounds", "3"])
        .assert()
        .success();
    for args in [
        vec!["train", "--data", "pipe.csv", "--out", "m2", "-q"],
        vec!["score", "--data", "pipe.csv", "--out", "s.csv", "-q"],
        vec!["compare", "--data", "pipe.csv", "-q"],
        vec![
            "select", "--size", "3", "--data", "pipe.csv", "--output", "x.csv", "-q",
        ],
        vec![
            "select",
            "rules/fresh_contacts.sql",
            "--data",
            "pipe.csv",
            "--output",
            "x.csv",
        ],
        vec!["columns", "--data", "pipe.csv"],
    ] {
        let mut command = Command::new(audience_bin());
        command.current_dir(dir).args(&args);
        let out = ends_within(command, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("pipe.csv: is not a regular file"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_closed_standard_output_ends_quietly() {
    let ws = workspace();
    let mut child = Command::new(audience_bin())
        .current_dir(ws.path())
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .args(["compare", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the pipe before the report is written, as `| head` does once it has read enough.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}

/// The bank workspace with rule limits tightened.
fn limited_workspace(timeout: &str, memory_mb: u64) -> tempfile::TempDir {
    let ws = workspace();
    let config = std::fs::read_to_string(ws.path().join("audience.toml")).unwrap();
    std::fs::write(
        ws.path().join("audience.toml"),
        format!("{config}\n[compare]\nrule_timeout = {timeout}\nrule_memory_mb = {memory_mb}\n"),
    )
    .unwrap();
    for entry in std::fs::read_dir(ws.path().join("rules")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    ws
}

fn compare_rule(dir: &std::path::Path, name: &str, sql: &str) -> std::process::Output {
    std::fs::write(dir.join("rules").join(format!("{name}.sql")), sql).unwrap();
    let mut command = Command::new(audience_bin());
    command
        .current_dir(dir)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .args([
            "compare",
            &format!("rules/{name}.sql"),
            "--format",
            "json",
            "-q",
        ]);
    let out = ends_within(command, Duration::from_secs(120));
    std::fs::remove_file(dir.join("rules").join(format!("{name}.sql"))).unwrap();
    out
}

fn rule_size(out: &std::process::Output) -> u64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["rules"][0]["base_size"].as_u64().unwrap()
}

#[test]
fn generated_rules_of_thousands_of_terms_run_and_overdeep_ones_are_refused() {
    let ws = limited_workspace("60", 4096);
    let dir = ws.path();
    // 4,000 OR terms, as generated SQL writes them, against the same condition written short.
    let terms: Vec<String> = (0..4000).map(|b| format!("balance = {b}")).collect();
    let long = compare_rule(
        dir,
        "generated",
        &format!("SELECT row_id FROM history WHERE {}", terms.join(" OR ")),
    );
    let short = compare_rule(
        dir,
        "short",
        "SELECT row_id FROM history WHERE balance BETWEEN 0 AND 3999 AND balance = CAST(balance AS BIGINT)",
    );
    assert_eq!(rule_size(&long), rule_size(&short));
    // 400 UNION ALLs of filters against one OR of them.
    let parts: Vec<String> = (0..400)
        .map(|d| format!("SELECT row_id FROM history WHERE age = {}", 18 + d % 70))
        .collect();
    let unions = compare_rule(dir, "unions", &parts.join("\nUNION ALL\n"));
    let ages = compare_rule(
        dir,
        "ages",
        "SELECT row_id FROM history WHERE age BETWEEN 18 AND 87",
    );
    assert_eq!(rule_size(&unions), rule_size(&ages));
    // An arithmetic chain 400 deep cannot be rebalanced: refused with its place.
    let sum = vec!["age"; 400].join(" + ");
    let out = compare_rule(
        dir,
        "deep",
        &format!("SELECT row_id\nFROM history\nWHERE {sum} > 100"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rules/deep.sql:3:7: the expression here is nested more than 256 deep"),
        "{stderr}"
    );
}

#[test]
fn endless_and_greedy_rules_are_stopped() {
    let ws = limited_workspace("3", 64);
    let dir = ws.path();
    for (name, sql, needle) in [
        (
            "recursive",
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT row_id FROM history WHERE age IN (SELECT n FROM t)",
            "ran for longer than 3 s and was stopped (compare.rule_timeout)",
        ),
        (
            "cartesian",
            "SELECT a.row_id FROM history a, history b",
            "ran for longer than 3 s and was stopped (compare.rule_timeout)",
        ),
        (
            "greedy",
            "SELECT row_id FROM (SELECT a.row_id, row_number() OVER (ORDER BY a.balance + b.balance) AS r FROM history a JOIN history b ON a.job = b.job) t WHERE r < 5",
            "needed more than 64 MB while running (compare.rule_memory_mb)",
        ),
    ] {
        let out = compare_rule(dir, name, sql);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("rules/{name}.sql: ")) && stderr.contains(needle),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn rules_that_change_from_run_to_run_are_refused() {
    let ws = limited_workspace("60", 4096);
    let dir = ws.path();
    for (name, sql, needle) in [
        (
            "random",
            "SELECT row_id FROM history\nWHERE random() < 0.5",
            "rules/random.sql:2:7: random() gives other values on every call",
        ),
        (
            "today",
            "SELECT row_id FROM history WHERE day = extract(day FROM now())",
            "now() depends on when the rule runs",
        ),
        (
            "uuid",
            "SELECT row_id FROM history WHERE uuid() > 'a'",
            "uuid() gives other values on every call",
        ),
    ] {
        let out = compare_rule(dir, name, sql);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(
            !stderr.contains("Training on"),
            "{name}: refused before training: {stderr}"
        );
    }
}

/// The bank history with the text of some fields of column `column` (0-based) replaced.
fn bank_with(dir: &std::path::Path, name: &str, column: usize, edits: &[(usize, &str)]) {
    let bank = std::fs::read_to_string(common::bank_csv()).unwrap();
    let mut lines: Vec<String> = bank.lines().map(String::from).collect();
    for &(row, value) in edits {
        let mut fields: Vec<String> = lines[row + 1].split(';').map(String::from).collect();
        fields[column] = value.to_string();
        lines[row + 1] = fields.join(";");
    }
    std::fs::write(dir.join(name), lines.join("\n")).unwrap();
}

#[test]
fn a_numeric_column_with_a_stray_text_is_an_error_unless_declared_missing() {
    let ws = workspace();
    let dir = ws.path();
    // age is column 0 of bank-full; one "n/a" at data row 1500 of 45,211.
    bank_with(dir, "ages.csv", 0, &[(1499, "n/a")]);
    let run = audience(dir)
        .args(["train", "--data", "ages.csv", "-q", "--num-rounds", "3"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "column \"age\" holds numbers except in 1 of 45211 rows (data row 1500: \"n/a\")"
        ) && stderr.contains("data.na_values"),
        "{stderr}"
    );
    // Declared as missing: age stays numeric.
    audience(dir)
        .args([
            "train",
            "--data",
            "ages.csv",
            "-q",
            "--num-rounds",
            "3",
            "--na-value",
            "n/a",
        ])
        .assert()
        .success();
    let manifest = common::read_json(&dir.join("model/audience-model.json"));
    let age = manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "age")
        .unwrap();
    assert_eq!(age["kind"], "numeric");
    assert_eq!(manifest["na_values"], serde_json::json!(["n/a"]));
    // Scoring reads "n/a" as missing with the bundle's own list, and "1,234" in a numeric
    // column is an error naming the row, not a silent missing value. balance is column 5.
    audience(dir)
        .args(["score", "--data", "ages.csv", "--out", "a.csv", "-q"])
        .assert()
        .success();
    bank_with(dir, "balances.csv", 5, &[(300, "1,234")]);
    let run = audience(dir)
        .args(["score", "--data", "balances.csv", "--out", "b.csv", "-q"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "balances.csv: data row 301: column \"balance\" holds \"1,234\", which is not a number"
        ),
        "{stderr}"
    );
    assert!(!dir.join("b.csv").exists());
}
