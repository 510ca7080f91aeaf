//! End-to-end: the HTML report (issue 13), written by the real binary from the bundled bank
//! history and opened in headless Chromium (tests/python/html_check.py): no console errors, no
//! request beyond the file, every rule's point where the JSON of the same run puts it, a
//! screenshot kept under the target directory.

mod common;

use std::path::{Path, PathBuf};

use common::{audience, read_json, run_python, workspace};

/// Where screenshots are kept for a person to look at after the run.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs compare in `dir` twice, as JSON and as HTML (the same seed gives the same report).
fn reports(dir: &Path) -> (PathBuf, PathBuf) {
    for out in ["report.json", "report.html"] {
        audience(dir)
            .args(["compare", "rules/*.sql", "--output", out, "-q"])
            .assert()
            .success();
    }
    (dir.join("report.html"), dir.join("report.json"))
}

fn check_in_browser(html: &Path, json: &Path, screenshot: &str) -> serde_json::Value {
    assert!(
        Path::new(&std::env::var("AUDIENCE_CHROMIUM").unwrap_or("/usr/bin/chromium".into()))
            .is_file(),
        "no Chromium at /usr/bin/chromium: run scripts/setup --test (Debian package chromium), or set AUDIENCE_CHROMIUM"
    );
    let shot = artefacts().join(screenshot);
    let out = run_python(
        "html_check.py",
        &[
            html.to_str().unwrap(),
            json.to_str().unwrap(),
            shot.to_str().unwrap(),
        ],
    );
    let measured: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(measured["ok"], true, "{measured}");
    assert!(shot.is_file());
    eprintln!("screenshot: {}", shot.display());
    measured
}

#[test]
fn bank_report_renders_offline_with_rules_where_their_numbers_say() {
    let dir = workspace();
    // compare expands the glob itself when the shell did not.
    let (html, json) = reports(dir.path());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.len() < 500_000, "{} bytes", page.len());
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    assert!(!page.contains("<script"), "the report needs no script");
    let report = read_json(&json);
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    // Every rule is on both charts and in the verdict table, its verdict in words.
    for r in rules {
        let name = r["name"].as_str().unwrap();
        assert_eq!(page.matches(&format!("data-rule=\"{name}\"")).count(), 2);
        assert!(page.contains(&format!("<article class=\"rule\" id=\"rule-{name}\">")));
    }
    // The summary carries the JSON's numbers.
    let auc = report["model"]["auc"].as_f64().unwrap();
    assert!(page.contains(&format!("{auc:.4} (95% interval")));
    let measured = check_in_browser(&html, &json, "html_report_bank.png");
    assert_eq!(measured["rules_checked"], 5);
    assert_eq!(measured["requests"], 1, "{measured}");
    assert!(measured["pdf_bytes"].as_u64().unwrap() > 10_000);

    // Identical inputs, identical bytes.
    audience(dir.path())
        .args(["compare", "rules/*.sql", "--output", "again.html", "-q"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(dir.path().join("again.html")).unwrap(),
        page.as_bytes()
    );
}

#[test]
fn twenty_rules_stay_small_and_names_are_text() {
    let dir = workspace();
    let rules = dir.path().join("rules");
    for entry in std::fs::read_dir(&rules).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for i in 0..19 {
        std::fs::write(
            rules.join(format!("balance_at_least_{:05}.sql", i * 250)),
            format!(
                "SELECT * FROM history WHERE balance >= {} AND age < {}",
                i * 250,
                30 + i * 2
            ),
        )
        .unwrap();
    }
    // A file name is the rule's name: it must reach the page as text, never as markup.
    std::fs::write(
        rules.join("<img src=x onerror=alert(1)>&.sql"),
        "SELECT * FROM history WHERE housing = 'no'",
    )
    .unwrap();
    let (html, json) = reports(dir.path());
    let page = std::fs::read_to_string(&html).unwrap();
    eprintln!("20 rules: {} bytes of HTML", page.len());
    assert!(page.len() <= 500_000, "{} bytes", page.len());
    assert!(!page.contains("<img"));
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&amp;"));
    let measured = check_in_browser(&html, &json, "html_report_20_rules.png");
    assert_eq!(measured["rules_checked"], 20);
}
