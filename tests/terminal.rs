//! End-to-end in a real terminal (tmux): `compare`'s report in 80 and 120 columns fits without
//! a wrapped line, every number whole; the width is the terminal's own, not `COLUMNS`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{audience_bin, workspace};

/// A tmux server of its own (a private socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        let socket = format!("audience-test-{name}-{}", std::process::id());
        Tmux { socket }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs (scripts/setup --test installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in `dir` in a `columns`-wide pane and returns the screen when it ends:
    /// (physical lines, logical lines with wrapped ones joined).
    fn screen(&self, dir: &Path, columns: u16, command: &str) -> (Vec<String>, Vec<String>) {
        let shell = format!("cd {dir:?} && {command}; echo __DONE__$?; sleep 600");
        self.run(&[
            "new-session",
            "-d",
            "-x",
            &columns.to_string(),
            "-y",
            "200",
            "-e",
            "NO_COLOR=1",
            "-e",
            "COLUMNS=300",
            "sh",
            "-c",
            &shell,
        ]);
        let started = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-p", "-S", "-", "-E", "-"]);
            if screen.contains("__DONE__") {
                assert!(screen.contains("__DONE__0"), "{command} failed:\n{screen}");
                let joined = self.run(&["capture-pane", "-p", "-J", "-S", "-", "-E", "-"]);
                let lines = |s: &str| {
                    s.lines()
                        .map(|l| l.trim_end().to_string())
                        .filter(|l| !l.is_empty())
                        .collect()
                };
                return (lines(&screen), lines(&joined));
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "timed out:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn the_report_fits_80_and_120_column_terminals() {
    let dir = workspace();
    let d = dir.path();
    let bin = audience_bin();
    let out = common::audience(d)
        .args(["compare", "rules/*.sql", "-q", "-o", "r.json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = common::read_json(&d.join("r.json"));
    for columns in [80u16, 120] {
        let tmux = Tmux::new(&columns.to_string());
        // COLUMNS=300 in the pane: the layout must follow the terminal, not the variable.
        let (physical, joined) = tmux.screen(
            d,
            columns,
            &format!("{} compare 'rules/*.sql' -q", bin.display()),
        );
        assert_eq!(
            physical,
            joined,
            "{columns} columns: some line wrapped:\n{}",
            physical.join("\n")
        );
        assert!(
            physical
                .iter()
                .all(|l| l.chars().count() <= usize::from(columns))
        );
        let screen = joined.join("\n");
        // Every rule's rates and difference appear whole.
        for r in report["rules"].as_array().unwrap() {
            for key in ["rule_rate", "model_rate"] {
                let text = format!("{:.1}%", r[key].as_f64().unwrap() * 100.0);
                assert!(
                    screen.contains(&text),
                    "{columns}: {text} missing:\n{screen}"
                );
            }
            let diff = format!("{:+.1}", r["rate_diff"].as_f64().unwrap() * 100.0);
            assert!(
                screen.contains(&diff),
                "{columns}: {diff} missing:\n{screen}"
            );
            assert!(screen.contains(r["name"].as_str().unwrap()));
        }
        // The wide layout at 120 shows the interval beside the difference, the narrow one under it.
        let first = &report["rules"][0];
        let ci = &first["rate_diff_ci"];
        let interval = format!(
            "({:+.1}, {:+.1})",
            ci[0].as_f64().unwrap() * 100.0,
            ci[1].as_f64().unwrap() * 100.0
        );
        let beside = format!(
            "{:+.1} {interval}",
            first["rate_diff"].as_f64().unwrap() * 100.0
        );
        let wide = screen.contains(&interval) && screen.lines().any(|l| l.contains(&beside));
        assert_eq!(wide, columns >= 100, "{columns}:\n{screen}");
    }
}

/// Progress in an 80-column terminal: something within a second of the start, a spinner that
/// moves while the history is read, bars that fit the width, no ETA, and nothing left of them
/// when the report prints.
#[test]
fn progress_fits_80_columns_moves_and_starts_at_once() {
    let dir = workspace();
    let d = dir.path();
    let bin = audience_bin();
    common::audience(d)
        .args(["synth", "--rows", "400000", "-o", "history.csv", "-q"])
        .assert()
        .success();
    std::fs::write(
        d.join("rules/busy.sql"),
        "SELECT customer_id FROM history WHERE visits_30d > 5",
    )
    .unwrap();
    std::fs::write(
        d.join("synth.toml"),
        "[data]\npath = \"history.csv\"\nid = \"customer_id\"\nlabel = \"converted\"\n\n[model]\nnum_rounds = 40\n",
    )
    .unwrap();
    let tmux = Tmux::new("progress");
    let command = format!(
        "cd {d:?} && {} compare rules/busy.sql -c synth.toml; echo __DONE__$?; sleep 600",
        bin.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "60",
        "-e",
        "NO_COLOR=1",
        "sh",
        "-c",
        &command,
    ]);
    let started = Instant::now();
    let mut first_output = None;
    let mut reading_frames = std::collections::BTreeSet::new();
    let mut saw_training_bar = false;
    let screen = loop {
        // Physical lines (a bar redrawn in place confuses tmux's joining of wrapped lines):
        // a bar wider than the pane would push its count onto the next line, so each bar line
        // must hold its own end.
        let screen = tmux.run(&["capture-pane", "-p"]);
        let elapsed = started.elapsed();
        if first_output.is_none() && !screen.trim().is_empty() {
            first_output = Some(elapsed);
        }
        for line in screen.lines() {
            assert!(
                line.trim_end().chars().count() <= 80,
                "a line wider than the terminal:\n{screen}"
            );
            assert!(!line.contains("ETA") && !line.contains("eta"), "{screen}");
            if let Some(rest) = line.strip_prefix("Reading ")
                && rest.contains("history.csv")
            {
                // The spinner's frame is the first character after "Reading ".
                reading_frames.insert(rest.chars().next().unwrap());
            }
            if line.starts_with("training [") {
                assert!(
                    line.contains("] ") && line.contains("/40"),
                    "the bar does not fit its line:\n{screen}"
                );
                saw_training_bar = true;
            }
        }
        if screen.contains("__DONE__") {
            break tmux.run(&["capture-pane", "-p", "-J", "-S", "-", "-E", "-"]);
        }
        assert!(elapsed < Duration::from_secs(300), "timed out:\n{screen}");
        std::thread::sleep(Duration::from_millis(40));
    };
    assert!(screen.contains("__DONE__0"), "{screen}");
    let first = first_output.expect("something was shown");
    assert!(
        first < Duration::from_secs(1),
        "the first line came after {first:?}"
    );
    assert!(
        reading_frames.len() >= 2,
        "the spinner did not move while reading: frames {reading_frames:?}"
    );
    assert!(saw_training_bar, "no training bar seen:\n{screen}");
    // The bars are cleared: the final screen has the report, not a half-drawn bar.
    assert!(!screen.contains("training ["), "{screen}");
    assert!(screen.contains("Training on 400000 rows"), "{screen}");
}
