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
        let wide = screen.contains("(+19.8, +24.2)")
            && screen.lines().any(|l| l.contains("+22.0 (+19.8, +24.2)"));
        assert_eq!(wide, columns >= 100, "{columns}:\n{screen}");
    }
}
