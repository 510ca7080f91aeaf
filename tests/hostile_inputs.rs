//! End-to-end: hostile data, rules, requests and pipes. No hang, no crash, no silent wrong
//! answer: each is refused with a message naming what and where, or handled.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{audience, audience_bin, workspace};

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
    assert!(
        Command::new("mkfifo")
            .arg(dir.join("pipe.csv"))
            .status()
            .unwrap()
            .success()
    );
    audience(dir)
        .args(["train", "--out", "model", "-q", "--num-rounds", "3"])
        .assert()
        .success();
    for args in [
        vec!["train", "--data", "pipe.csv", "--out", "m2", "-q"],
        vec!["score", "--data", "pipe.csv", "--out", "s.csv", "-q"],
        vec!["compare", "--data", "pipe.csv", "-q"],
    ] {
        let mut command = Command::new(audience_bin());
        command.current_dir(dir).args(&args);
        let out = ends_within(command, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
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
