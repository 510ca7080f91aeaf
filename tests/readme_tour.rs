//! End-to-end: every `$ audience ...` command of the README's tour runs, in order, from a copy
//! of the repository's configuration, rules and bundled examples (what a fresh clone has).

mod common;

use common::{audience, repo};

/// The tour's commands: lines starting `$ audience ` between `## Tour` and the next `## `
/// section, without the trailing `# comment`.
fn tour_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("\n## Tour\n").expect("a Tour section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("$ audience "))
        .map(|l| {
            let command = l.split(" #").next().unwrap();
            command.split_whitespace().map(String::from).collect()
        })
        .collect()
}

#[test]
fn every_tour_command_runs_from_a_clone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(repo().join("audience.toml"), d.join("audience.toml")).unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), d.join("examples")).unwrap();
    std::fs::create_dir(d.join("rules")).unwrap();
    let mut rules = Vec::new();
    for entry in std::fs::read_dir(repo().join("rules")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), d.join("rules").join(entry.file_name())).unwrap();
        rules.push(format!("rules/{}", entry.file_name().to_string_lossy()));
    }
    rules.sort();
    let commands = tour_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in &commands {
        // The shell would expand the glob; so does audience, but expand it as a shell does.
        let args: Vec<String> = command
            .iter()
            .flat_map(|a| {
                if a == "rules/*.sql" {
                    rules.clone()
                } else {
                    vec![a.clone()]
                }
            })
            .collect();
        let out = audience(d).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "`audience {}` failed:\n{}",
            command.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The score line keeps an email column from the bundled candidates.
    let scores = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert!(
        scores.starts_with("row_id,score,percentile,decile,email\n"),
        "{}",
        &scores[..80]
    );
}
