//! End-to-end: `audience select` (issue 13), the real binary: the model's audience of a rule's
//! size is exactly what `score --top n` keeps, in rank order, ties by the seeded id hash; sizes,
//! empty and everybody rules, expected conversions only from calibrated scores, the report's
//! verdict, Parquet, and inputs never overwritten.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use audience::metrics::tie_key;
use common::{audience, bank_csv, python, workspace};

/// Rows of a CSV file as maps from header to value.
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

/// Checks `audience` against `score`: same people as `score --top n`, in rank order (score
/// descending, then the tie hash), ranks 1..n, in_rule as the rule says.
fn check_against_score(
    dir: &Path,
    selected: &Path,
    id: &str,
    seed: u64,
    in_rule: &BTreeSet<String>,
) {
    let rows = read_csv(selected);
    let n = rows.len();
    let scores_file = dir.join(format!("top-{n}.csv"));
    audience(dir)
        .args(["score", "-q", "--data", "candidates.csv", "--out"])
        .arg(&scores_file)
        .args(["--top", &n.to_string()])
        .assert()
        .success();
    let top = read_csv(&scores_file);
    let picked: BTreeSet<&str> = rows.iter().map(|r| r[id].as_str()).collect();
    let kept: BTreeSet<&str> = top.iter().map(|r| r[id].as_str()).collect();
    assert_eq!(
        picked, kept,
        "select and score --top {n} keep different people"
    );
    let score_of: HashMap<&str, &str> = top
        .iter()
        .map(|r| (r[id].as_str(), r["score"].as_str()))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["rank"], (i + 1).to_string());
        assert_eq!(
            r["score"],
            score_of[r[id].as_str()],
            "the same score as score writes"
        );
        assert_eq!(
            r["in_rule"] == "true",
            in_rule.contains(&r[id]),
            "in_rule of {}",
            r[id]
        );
        if i > 0 {
            let (a, b) = (&rows[i - 1], r);
            let (sa, sb): (f64, f64) = (a["score"].parse().unwrap(), b["score"].parse().unwrap());
            assert!(sa > sb || (sa == sb && tie_key(&a[id], seed) <= tie_key(&b[id], seed)));
        }
    }
}

#[test]
fn bank_rule_audience_matches_score_top_n_and_reports_the_verdict() {
    let dir = workspace();
    let d = dir.path();
    // This week's candidates: the bank file without its outcome (and a new name).
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let candidates: String = text
        .lines()
        .map(|l| l.rsplit_once(';').unwrap().0.to_string() + "\n")
        .collect();
    std::fs::write(d.join("candidates.csv"), candidates).unwrap();
    audience(d)
        .args(["train", "-q", "--out", "model"])
        .assert()
        .success();
    audience(d)
        .args(["compare", "rules/*.sql", "-q", "--output", "report.json"])
        .assert()
        .success();
    let out = stdout_of(audience(d).args([
        "select",
        "rules/young_professionals.sql",
        "--data",
        "candidates.csv",
        "--output",
        "audience.csv",
        "--report",
        "report.json",
        "-q",
    ]));
    // The rule's people among the candidates, from DuckDB running the same SQL.
    let sql = std::fs::read_to_string(d.join("rules/young_professionals.sql")).unwrap();
    let duck = python()
        .args([
            "-c",
            "import sys, duckdb, numpy as np, pandas as pd\nhistory = pd.read_csv(sys.argv[1], sep=';')\nhistory['row_id'] = np.arange(len(history))\ncon = duckdb.connect()\ncon.register('history', history)\nfor r in sorted(con.execute(f'SELECT row_id FROM ({sys.argv[2]}) AS rule').fetchnumpy()['row_id'].tolist()): print(r)",
        ])
        .arg(d.join("candidates.csv"))
        .arg(&sql)
        .output()
        .unwrap();
    assert!(
        duck.status.success(),
        "{}",
        String::from_utf8_lossy(&duck.stderr)
    );
    let in_rule: BTreeSet<String> = String::from_utf8_lossy(&duck.stdout)
        .lines()
        .map(String::from)
        .collect();
    // Everybody, ranked, for the rule's scores.
    let everyone = stdout_of(audience(d).args([
        "select",
        "rules/young_professionals.sql",
        "--data",
        "candidates.csv",
        "--output",
        "everyone.csv",
        "--share",
        "1",
        "-q",
    ]));
    let all = read_csv(&d.join("everyone.csv"));
    assert_eq!(all.len(), 45211, "{everyone}");
    assert_eq!(
        all.iter().filter(|r| r["in_rule"] == "true").count(),
        in_rule.len()
    );
    let n = in_rule.len();
    let rows = read_csv(&d.join("audience.csv"));
    assert_eq!(rows.len(), n, "{out}");
    assert!(
        out.contains(&format!("Wrote the model's {n} best of 45211 candidates")),
        "{out}"
    );
    let shared = rows.iter().filter(|r| r["in_rule"] == "true").count();
    assert!(
        out.contains(&format!(
            "{n} candidates; {shared} of them are in the model's audience too"
        )),
        "{out}"
    );
    check_against_score(d, &d.join("audience.csv"), "row_id", 42, &in_rule);
    // Calibrated on its held-out rows: expected conversions are the sums of the scores.
    let model_sum: f64 = rows
        .iter()
        .map(|r| r["score"].parse::<f64>().unwrap())
        .sum();
    let rule_sum: f64 = all
        .iter()
        .filter(|r| in_rule.contains(&r["row_id"]))
        .map(|r| r["score"].parse::<f64>().unwrap())
        .sum();
    assert!(
        out.contains(&format!(
            "the model's audience {model_sum:.1}, the rule's {rule_sum:.1} (expected, not observed"
        )),
        "{out}"
    );
    assert!(
        out.contains("Last compare (stratified random, 0.3 held out, seed 42): model better"),
        "{out}"
    );
    // Identical inputs, identical bytes.
    audience(d)
        .args([
            "select",
            "rules/young_professionals.sql",
            "--data",
            "candidates.csv",
            "-o",
            "again.csv",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.join("again.csv")).unwrap(),
        std::fs::read(d.join("audience.csv")).unwrap()
    );
    // Parquet holds the same rows.
    audience(d)
        .args([
            "select",
            "rules/young_professionals.sql",
            "--data",
            "candidates.csv",
            "-o",
            "audience.parquet",
            "-q",
        ])
        .assert()
        .success();
    let check = python()
        .args([
            "-c",
            "import sys, pandas as pd\nc = pd.read_csv(sys.argv[1], dtype={'row_id': str})\np = pd.read_parquet(sys.argv[2])\nassert list(p.columns) == ['row_id', 'score', 'rank', 'in_rule'], p.columns\nassert (c['row_id'] == p['row_id']).all() and (c['score'] == p['score']).all() and (c['rank'] == p['rank']).all() and (c['in_rule'] == p['in_rule']).all()\nprint(len(p))",
        ])
        .arg(d.join("audience.csv"))
        .arg(d.join("audience.parquet"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), n.to_string());
    // Inputs are never outputs, --force or not.
    for input in [
        "candidates.csv",
        "report.json",
        "rules/young_professionals.sql",
    ] {
        audience(d)
            .args([
                "select",
                "rules/young_professionals.sql",
                "--data",
                "candidates.csv",
                "--report",
                "report.json",
                "--force",
                "-q",
                "-o",
                input,
            ])
            .assert()
            .failure();
    }
    assert_eq!(read_csv(&d.join("candidates.csv")).len(), 45211);
}

/// 600 candidates with ids, a one-split model: two distinct scores, so most cuts fall in a tie.
fn tied_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut history = String::from("id,flag,grp,y\n");
    let mut candidates = String::from("id,flag,grp\n");
    for i in 0..600 {
        let flag = u8::from(i % 4 == 0);
        let y = u8::from((i % 4 == 0 && i % 3 != 1) || i % 7 == 0);
        let grp = ["a", "b", "c"][(i * 7) % 3];
        history.push_str(&format!("h{i},{flag},{grp},{y}\n"));
        candidates.push_str(&format!("c{:04},{flag},{grp}\n", (i * 7919) % 10_000));
    }
    std::fs::write(dir.path().join("history.csv"), history).unwrap();
    std::fs::write(dir.path().join("candidates.csv"), candidates).unwrap();
    std::fs::write(
        dir.path().join("audience.toml"),
        "[data]\npath = \"history.csv\"\nid = \"id\"\nlabel = \"y\"\nexclude = [\"grp\"]\n\n[model]\nnum_rounds = 1\nnum_leaves = 2\nearly_stopping_rounds = 0\nparams = { min_data_in_leaf = 5 }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for (name, sql) in [
        ("grp_b", "SELECT id FROM history WHERE grp = 'b'"),
        ("nobody", "SELECT id FROM history WHERE grp = 'z'"),
        ("everybody", "SELECT * FROM history"),
        (
            "first_hundred",
            "SELECT id FROM history ORDER BY id LIMIT 100",
        ),
    ] {
        std::fs::write(dir.path().join("rules").join(format!("{name}.sql")), sql).unwrap();
    }
    audience(dir.path())
        .args(["train", "-q", "--out", "model"])
        .assert()
        .success();
    dir
}

#[test]
fn ties_sizes_and_edge_rules_on_streamed_candidates_with_ids() {
    let dir = tied_workspace();
    let d = dir.path();
    let grp_b: BTreeSet<String> = read_csv(&d.join("candidates.csv"))
        .into_iter()
        .filter(|r| r["grp"] == "b")
        .map(|r| r["id"].clone())
        .collect();
    let out = stdout_of(audience(d).args([
        "select",
        "rules/grp_b.sql",
        "-d",
        "candidates.csv",
        "-o",
        "b.csv",
        "-q",
    ]));
    assert_eq!(read_csv(&d.join("b.csv")).len(), grp_b.len(), "{out}");
    // 150 flagged candidates share the higher score; grp b has 200 people: the cut falls in
    // the lower score's group, among 450 tied candidates.
    assert!(
        out.contains("Ties: 450 candidates share the score"),
        "{out}"
    );
    assert!(
        out.contains("of them were selected, by a seeded hash of the id (--seed 42)"),
        "{out}"
    );
    check_against_score(d, &d.join("b.csv"), "id", 42, &grp_b);
    // Another seed picks other tied people, still exactly score's choice with that seed.
    audience(d)
        .args([
            "select",
            "rules/grp_b.sql",
            "-d",
            "candidates.csv",
            "-o",
            "b7.csv",
            "--seed",
            "7",
            "-q",
        ])
        .assert()
        .success();
    let ids = |f: &str| -> BTreeSet<String> {
        read_csv(&d.join(f))
            .into_iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    assert_ne!(ids("b.csv"), ids("b7.csv"));

    // --size and --share: 7% of 600 is 42 (not 43 by a last bit).
    for (flag, value, n) in [
        ("--size", "250", 250),
        ("--share", "0.07", 42),
        ("--size", "10000", 600),
    ] {
        let file = format!("sized-{n}.csv");
        audience(d)
            .args([
                "select",
                "rules/grp_b.sql",
                "-d",
                "candidates.csv",
                "-o",
                &file,
                flag,
                value,
                "-q",
            ])
            .assert()
            .success();
        assert_eq!(read_csv(&d.join(&file)).len(), n, "{flag} {value}");
        check_against_score(d, &d.join(&file), "id", 42, &grp_b);
    }
    // Every candidate, ranked (checked above against the tie hash): the rule-sized audience is
    // its first 200, so the tied people chosen are those of the smallest hashes.
    let ranked: Vec<String> = read_csv(&d.join("sized-600.csv"))
        .into_iter()
        .map(|r| r["id"].clone())
        .collect();
    let first: BTreeSet<String> = ranked[..200].iter().cloned().collect();
    assert_eq!(first, ids("b.csv"));
    // Without a rule, a size is needed, and in_rule is left empty.
    audience(d)
        .args(["select", "-d", "candidates.csv", "-o", "x.csv"])
        .assert()
        .failure();
    audience(d)
        .args([
            "select",
            "--size",
            "5",
            "-d",
            "candidates.csv",
            "-o",
            "five.csv",
            "-q",
        ])
        .assert()
        .success();
    assert!(
        read_csv(&d.join("five.csv"))
            .iter()
            .all(|r| r["in_rule"].is_empty())
    );

    // A rule selecting nobody: an empty audience, said so.
    let out = stdout_of(audience(d).args([
        "select",
        "rules/nobody.sql",
        "-d",
        "candidates.csv",
        "-o",
        "none.csv",
        "-q",
    ]));
    assert_eq!(
        std::fs::read_to_string(d.join("none.csv")).unwrap(),
        "id,score,rank,in_rule\n"
    );
    assert!(
        out.contains("Wrote the model's 0 best of 600 candidates"),
        "{out}"
    );
    // Everybody: the model's audience is the rule's.
    let out = stdout_of(audience(d).args([
        "select",
        "rules/everybody.sql",
        "-d",
        "candidates.csv",
        "-o",
        "all.csv",
        "-q",
    ]));
    let all = read_csv(&d.join("all.csv"));
    assert_eq!(all.len(), 600);
    assert!(all.iter().all(|r| r["in_rule"] == "true"));
    assert!(out.contains("600 candidates; 600 of them"), "{out}");
    // A LIMIT rule runs on one partition: the same 100 every time.
    audience(d)
        .args([
            "select",
            "rules/first_hundred.sql",
            "-d",
            "candidates.csv",
            "-o",
            "h1.csv",
            "-q",
        ])
        .assert()
        .success();
    audience(d)
        .args([
            "select",
            "rules/first_hundred.sql",
            "-d",
            "candidates.csv",
            "-o",
            "h2.csv",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(ids("h1.csv").len(), 100);
    assert_eq!(
        std::fs::read(d.join("h1.csv")).unwrap(),
        std::fs::read(d.join("h2.csv")).unwrap()
    );
    // A rule error names the file; a report that is not one names its line.
    std::fs::write(
        d.join("rules/bad.sql"),
        "SELECT id FROM history WHERE nope = 1",
    )
    .unwrap();
    audience(d)
        .args([
            "select",
            "rules/bad.sql",
            "-d",
            "candidates.csv",
            "-o",
            "bad.csv",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("rules/bad.sql"));
    std::fs::write(
        d.join("report.json"),
        "{\"schema_version\": 2,\n \"tool\": 3}",
    )
    .unwrap();
    audience(d)
        .args([
            "select",
            "rules/grp_b.sql",
            "-d",
            "candidates.csv",
            "-o",
            "r.csv",
            "--report",
            "report.json",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("report.json").and(predicates::str::contains("line 2")));
}

#[test]
fn scores_that_are_not_probabilities_are_not_summed() {
    let dir = workspace();
    let d = dir.path();
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    std::fs::write(d.join("candidates.csv"), text).unwrap();
    // Weighting the conversions tenfold inflates every score: it still ranks, but its
    // scores are no longer rates.
    audience(d)
        .args([
            "train",
            "-q",
            "--out",
            "model",
            "--param",
            "scale_pos_weight=10",
        ])
        .assert()
        .success();
    let out = stdout_of(audience(d).args([
        "select",
        "rules/fresh_contacts.sql",
        "-d",
        "candidates.csv",
        "-o",
        "a.csv",
        "-q",
    ]));
    assert!(
        out.contains(
            "Expected conversions not stated: the model's scores are off the observed rates by"
        ),
        "{out}"
    );
    assert!(out.contains("not probabilities to sum"), "{out}");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn compare_writes_who_each_rule_and_the_model_pick() {
    let dir = workspace();
    let d = dir.path();
    audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "-q",
            "--output",
            "report.json",
            "--audiences",
            "aud",
        ])
        .assert()
        .success();
    let report = common::read_json(&d.join("report.json"));
    for r in report["rules"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let rows = read_csv(&d.join("aud").join(format!("{name}.csv")));
        let n = r["size"].as_u64().unwrap() as usize;
        let count =
            |f: &dyn Fn(&HashMap<String, String>) -> bool| rows.iter().filter(|r| f(r)).count();
        assert_eq!(count(&|p| p["in_rule"] == "true"), n, "{name}: |R|");
        assert_eq!(count(&|p| p["in_model"] == "true"), n, "{name}: |M|");
        let converted_r = count(&|p| p["in_rule"] == "true" && p["converted"] == "1");
        assert_eq!(
            converted_r as u64,
            r["rule_conversions"].as_u64().unwrap(),
            "{name}"
        );
        // The model's people are its ranks 1..n; with no tie at the cut, exactly the report's M.
        assert!(
            rows.iter()
                .all(|p| (p["in_model"] == "true")
                    == (p["model_rank"].parse::<usize>().unwrap() <= n))
        );
        if r["tied_at_cut"] == 0 {
            let both = count(&|p| p["part"] == "both");
            assert_eq!(
                both as f64,
                r["overlap"]["both"].as_f64().unwrap(),
                "{name}"
            );
            let converted_m = count(&|p| p["in_model"] == "true" && p["converted"] == "1");
            assert_eq!(
                converted_m as f64,
                r["model_conversions"].as_f64().unwrap(),
                "{name}"
            );
        }
        for p in &rows {
            let expected = match (p["in_rule"].as_str(), p["in_model"].as_str()) {
                ("true", "true") => "both",
                ("true", "false") => "rule_only",
                _ => "model_only",
            };
            assert_eq!(p["part"], expected);
        }
    }
    // A second run would replace them: refused before any training, the files untouched.
    let before = std::fs::read(d.join("aud/fresh_contacts.csv")).unwrap();
    audience(d)
        .args(["compare", "rules/*.sql", "-q", "--audiences", "aud"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "aud/cash_rich_no_debt.csv: already exists",
        ));
    assert_eq!(
        std::fs::read(d.join("aud/fresh_contacts.csv")).unwrap(),
        before
    );
}
