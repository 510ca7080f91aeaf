//! End-to-end: an analyst's first hour (issue 12) with a history that is not bundled (web
//! sessions with CamelCase headers, a TRUE/FALSE column, month names) and SQL written the way
//! analysts write it: every broken rule reported at once before any training, `columns`,
//! `init`, the configuration found from a sub-folder, one flag vocabulary, exit codes, several
//! outputs in one run, completions and manual pages.

mod common;

use std::path::Path;

use common::audience;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// 3,000 sessions: SessionId, BounceRates, PageValues, Month (names), Weekend (TRUE/FALSE),
/// VisitorType, Revenue (TRUE/FALSE, likelier with PageValues).
fn sessions_csv() -> String {
    let months = [
        "Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv =
        String::from("SessionId,BounceRates,PageValues,Month,Weekend,VisitorType,Revenue\n");
    for i in 0..3000 {
        let page_values = (-(1.0 - next()).ln() * 10.0 * 1000.0).round() / 1000.0;
        let revenue = next() < (0.04 + page_values / 50.0).min(0.9);
        csv.push_str(&format!(
            "S{i:05},{:.4},{page_values},{},{},{},{}\n",
            next() * 0.2,
            months[(next() * 10.0) as usize % 10],
            if next() < 0.25 { "TRUE" } else { "FALSE" },
            if next() < 0.8 {
                "Returning_Visitor"
            } else {
                "New_Visitor"
            },
            if revenue { "TRUE" } else { "FALSE" }
        ));
    }
    csv
}

/// A folder with sessions.csv, an audience.toml for it and rules/.
fn sessions_workspace(rules: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sessions.csv"), sessions_csv()).unwrap();
    std::fs::write(
        dir.path().join("audience.toml"),
        "[data]\npath = \"sessions.csv\"\nid = \"SessionId\"\nlabel = \"Revenue\"\n\n[model]\nnum_rounds = 30\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for (name, sql) in rules {
        std::fs::write(dir.path().join("rules").join(format!("{name}.sql")), sql).unwrap();
    }
    dir
}

#[test]
fn every_broken_rule_at_once_before_training_with_hints() {
    let dir = sessions_workspace(&[
        (
            "lower_case",
            "SELECT sessionid FROM history WHERE bouncerates < 0.05 AND pagevalues > 10",
        ),
        (
            "weekend",
            "SELECT SessionId FROM history\nWHERE Weekend = 'TRUE'",
        ),
        (
            "may",
            "SELECT SessionId\nFROM history\nWHERE Month = \"May\"",
        ),
        (
            "misspelt",
            "SELECT SessionId FROM history WHERE PageValue > 0",
        ),
    ]);
    let d = dir.path();
    let out = audience(d)
        .args(["compare", "rules/*.sql"])
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("3 problems:"), "{stderr}");
    assert!(stderr.contains("rules/weekend.sql:2:7: Weekend is a true/false column, and 'TRUE' is text: write Weekend = TRUE"), "{stderr}");
    assert!(stderr.contains("rules/may.sql:3:15: no column named \"May\"; to compare with the text May, write it in single quotes: 'May'"), "{stderr}");
    assert!(
        stderr.contains(
            "rules/misspelt.sql:1:37: no column named \"PageValue\" (did you mean \"PageValues\"?)"
        ),
        "{stderr}"
    );
    // Nothing trained: the rules were planned against the header and types alone.
    assert!(!stderr.contains("Training on"), "{stderr}");
    assert!(!stderr.contains("lower_case"), "{stderr}");

    // Rules are checked before the table is loaded: a label value that loading would refuse
    // ("maybe") does not hide them.
    let broken_label = sessions_csv().replacen(",TRUE\n", ",maybe\n", 1);
    std::fs::write(d.join("maybe.csv"), broken_label).unwrap();
    audience(d)
        .args(["compare", "rules/weekend.sql", "--data", "maybe.csv"])
        .assert()
        .code(2)
        .stderr(contains("rules/weekend.sql:2:7:").and(contains("is \"maybe\"").not()));
    audience(d)
        .args(["compare", "rules/lower_case.sql", "--data", "maybe.csv"])
        .assert()
        .code(2)
        .stderr(contains("is \"maybe\""));

    // Fixed as the hints say, they run; the lower-case names found their columns.
    std::fs::write(
        d.join("rules/weekend.sql"),
        "SELECT SessionId FROM history WHERE Weekend = TRUE",
    )
    .unwrap();
    std::fs::write(
        d.join("rules/may.sql"),
        "SELECT SessionId FROM history WHERE Month = 'May'",
    )
    .unwrap();
    std::fs::write(
        d.join("rules/misspelt.sql"),
        "SELECT SessionId FROM history WHERE PageValues > 0",
    )
    .unwrap();
    audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "-q",
            "-o",
            "report.json",
            "-o",
            "report.csv",
        ])
        .assert()
        .success();
    let report = common::read_json(&d.join("report.json"));
    let sizes: Vec<u64> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["base_size"].as_u64().unwrap())
        .collect();
    let csv = sessions_csv();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let count = |f: &dyn Fn(&Vec<&str>) -> bool| rows.iter().filter(|r| f(r)).count() as u64;
    // Rules in file order: lower_case, may, misspelt, weekend.
    assert_eq!(
        sizes,
        [
            count(&|r| r[1].parse::<f64>().unwrap() < 0.05 && r[2].parse::<f64>().unwrap() > 10.0),
            count(&|r| r[3] == "May"),
            count(&|r| r[2].parse::<f64>().unwrap() > 0.0),
            count(&|r| r[4] == "TRUE"),
        ]
    );
    // The CSV spells verdicts as the JSON does.
    let csv_report = std::fs::read_to_string(d.join("report.csv")).unwrap();
    for r in report["rules"].as_array().unwrap() {
        assert!(
            csv_report.contains(&format!(",{},", r["verdict"].as_str().unwrap())),
            "{csv_report}"
        );
    }
}

#[test]
fn columns_shows_types_roles_and_examples() {
    let dir = sessions_workspace(&[]);
    let d = dir.path();
    let out = audience(d).args(["columns"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("sessions.csv: 3000 rows, 7 columns"),
        "{text}"
    );
    for (name, kind, role) in [
        ("SessionId", "text", "id"),
        ("PageValues", "number", "feature (numeric)"),
        ("Weekend", "boolean", "feature (numeric)"),
        ("Month", "text", "feature (categorical)"),
        ("Revenue", "text", "label"),
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        assert!(line.contains(kind) && line.contains(role), "{line}");
    }
    let out = audience(d)
        .args(["columns", "--format", "json", "--exclude", "PageValues"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let month = json["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Month")
        .unwrap();
    assert_eq!(month["distinct"], 10);
    assert_eq!(month["nulls"], 0);
    assert_eq!(month["examples"].as_array().unwrap().len(), 3);
    let pv = json["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "PageValues")
        .unwrap();
    assert_eq!(pv["role"], "excluded");
}

#[test]
fn init_writes_a_configuration_that_works_on_the_first_try() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sessions.csv"), sessions_csv()).unwrap();
    audience(d)
        .args(["init", "sessions.csv"])
        .assert()
        .success();
    let config = std::fs::read_to_string(d.join("audience.toml")).unwrap();
    assert!(config.contains("id = \"SessionId\""), "{config}");
    assert!(config.contains("label = \"Revenue\""), "{config}");
    assert!(config.contains("exclude = []"), "{config}");
    let rule = std::fs::read_to_string(d.join("rules/example.sql")).unwrap();
    audience(d)
        .args(["compare", "rules/*.sql", "-q", "-o", "report.json"])
        .assert()
        .success();
    assert_eq!(
        common::read_json(&d.join("report.json"))["rules"][0]["name"],
        "example"
    );
    // Never replaces what is there.
    audience(d)
        .args(["init", "sessions.csv"])
        .assert()
        .code(2)
        .stderr(contains("audience.toml: already exists"));
    assert_eq!(
        std::fs::read_to_string(d.join("audience.toml")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read_to_string(d.join("rules/example.sql")).unwrap(),
        rule
    );
}

#[test]
fn configuration_is_found_from_sub_folders_and_its_errors_are_located() {
    let dir = sessions_workspace(&[("may", "SELECT SessionId FROM history WHERE Month = 'May'")]);
    let d = dir.path();
    let deep = d.join("notes/2026");
    std::fs::create_dir_all(&deep).unwrap();
    audience(&deep)
        .args(["compare", "../../rules/may.sql", "-q", "-o", "r.json"])
        .assert()
        .success();
    assert!(deep.join("r.json").is_file());
    // Where nothing is found, the message says where it looked.
    let empty = tempfile::tempdir().unwrap();
    audience(empty.path())
        .args(["train"])
        .assert()
        .code(2)
        .stderr(contains("no audience.toml in").and(contains("or any folder above it")));
    // TOML errors by line and column; a label spelt in the wrong case gets the right name.
    std::fs::write(
        d.join("bad.toml"),
        "[data]\npath = \"sessions.csv\"\nlabel = 3\n",
    )
    .unwrap();
    audience(d)
        .args(["train", "--config", "bad.toml"])
        .assert()
        .code(2)
        .stderr(contains("bad.toml:3:9: invalid type"));
    audience(d)
        .args(["train", "--label", "revenue", "-o", "m"])
        .assert()
        .code(2)
        .stderr(contains("(did you mean \"Revenue\"?)"));
    audience(d)
        .args(["train", "--exclude", "pagevalue", "-o", "m"])
        .assert()
        .code(2)
        .stderr(contains("(did you mean \"PageValues\"?)"));
}

#[test]
fn one_flag_vocabulary_exit_codes_and_several_outputs() {
    let dir = sessions_workspace(&[("may", "SELECT SessionId FROM history WHERE Month = 'May'")]);
    let d = dir.path();
    // -o everywhere, --out kept; -m, -d.
    audience(d)
        .args(["train", "-q", "-o", "model"])
        .assert()
        .success();
    audience(d)
        .args(["train", "-q", "--out", "model2"])
        .assert()
        .success();
    audience(d)
        .args([
            "score",
            "-m",
            "model",
            "-d",
            "sessions.csv",
            "-o",
            "scores.csv",
            "-q",
        ])
        .assert()
        .success();
    audience(d)
        .args([
            "score",
            "--model",
            "model",
            "--data",
            "sessions.csv",
            "--out",
            "scores2.csv",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.join("scores.csv")).unwrap(),
        std::fs::read(d.join("scores2.csv")).unwrap()
    );
    // Usage and bad input exit 2.
    audience(d)
        .args(["score", "--no-such-flag"])
        .assert()
        .code(2);
    audience(d)
        .args(["score", "-m", "model", "-d", "missing.csv", "-o", "x.csv"])
        .assert()
        .code(2);
    audience(d)
        .args([
            "select",
            "rules/may.sql",
            "-d",
            "sessions.csv",
            "-o",
            "a.csv",
            "--share",
            "2",
        ])
        .assert()
        .code(2);

    // Several outputs in one run, the model kept, the table on standard output with colour.
    let out = audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "-q",
            "-o",
            "r.json",
            "-o",
            "r.md",
            "-o",
            "r.html",
            "-o",
            "-",
            "--color",
            "always",
            "--save-model",
            "kept",
        ])
        .assert()
        .success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(table.contains("\u{1b}["), "colour was asked for");
    assert!(table.contains("Rules against the model"));
    assert!(
        std::fs::read_to_string(d.join("r.md"))
            .unwrap()
            .starts_with("# Rules against the model")
    );
    assert!(
        std::fs::read_to_string(d.join("r.html"))
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    let report = common::read_json(&d.join("r.json"));
    // The kept model is the one judged: its held-out AUC is the report's (the bundle's comes
    // from metrics::auc, the report's from the DeLong routine: equal but for the last bits).
    let manifest = common::read_json(&d.join("kept/audience-model.json"));
    let (kept, judged) = (
        manifest["metrics"]["holdout"]["auc"].as_f64().unwrap(),
        report["model"]["auc"].as_f64().unwrap(),
    );
    assert!((kept - judged).abs() < 1e-12, "{kept} vs {judged}");
    audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "-q",
            "-o",
            "a.json",
            "-o",
            "a.json",
        ])
        .assert()
        .code(2)
        .stderr(contains("given as --output twice"));
    audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "-q",
            "--color",
            "never",
            "-o",
            "-",
        ])
        .assert()
        .success()
        .stdout(contains("\u{1b}[").not());
}

#[test]
fn completions_and_manual_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = audience(d).args(["completions", shell]).assert().success();
        let script = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(
            script.contains("select") && script.contains("compare"),
            "{shell}"
        );
    }
    // bash itself loads the script and completes a subcommand.
    let out = audience(d).args(["completions", "bash"]).assert().success();
    std::fs::write(d.join("audience.bash"), &out.get_output().stdout).unwrap();
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg("source ./audience.bash; COMP_WORDS=(audience sel); COMP_CWORD=1; _audience audience sel audience; echo \"${COMPREPLY[@]}\"")
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&bash.stdout).trim(),
        "select",
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    let page = audience(d).args(["man"]).assert().success();
    assert!(String::from_utf8_lossy(&page.get_output().stdout).contains(".TH AUDIENCE 1"));
    audience(d).args(["man", "-o", "man"]).assert().success();
    for page in [
        "audience.1",
        "audience-compare.1",
        "audience-select.1",
        "audience-columns.1",
    ] {
        let text = std::fs::read_to_string(d.join("man").join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    assert!(!Path::new(&d.join("man/audience-help.1")).exists());
    // Pages already there are replaced only with --force.
    audience(d).args(["man", "-o", "man"]).assert().code(2);
    audience(d)
        .args(["man", "-o", "man", "--force"])
        .assert()
        .success();
}
