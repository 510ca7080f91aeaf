//! End-to-end: nothing is lost. `--force` replaces only what audience wrote, never an input;
//! two runs never silently replace each other's output; an interrupted run leaves no temporary
//! files, and the bundle it was replacing either whole or replaced whole; signals the caller
//! ignores stay ignored; outputs get the usual permissions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{audience, audience_bin, bank_csv, make_fifo, train_small_model, workspace};

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".audience-"))
        .collect()
}

/// Writes the bank history `times` over to `dir/big.csv` (one header); returns its data rows.
fn write_bank_times(dir: &Path, times: usize) -> usize {
    let bank = std::fs::read_to_string(bank_csv()).unwrap();
    let (header, rows) = bank.split_once('\n').unwrap();
    let rows = rows.trim_end();
    let mut big = String::with_capacity(bank.len() * times);
    big.push_str(header);
    for _ in 0..times {
        big.push('\n');
        big.push_str(rows);
    }
    std::fs::write(dir.join("big.csv"), big).unwrap();
    times * rows.lines().count()
}

/// Waits until `child`, still running, has created a temporary file in `dir`.
fn wait_until_writing(child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while leftovers(dir).is_empty() {
        assert!(Instant::now() < deadline, "the run never started writing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was signalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`"INT"`, ...) to `child`; whether `kill` could.
fn send(signal: &str, child: &Child) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn force_never_replaces_a_directory_that_is_not_a_bundle() {
    let ws = workspace();
    let dir = ws.path();
    std::fs::copy(bank_csv(), dir.join("bank.csv")).unwrap();
    let config = std::fs::read_to_string(dir.join("audience.toml")).unwrap();
    std::fs::write(
        dir.join("audience.toml"),
        config.replace(
            &format!("{:?}", bank_csv().display().to_string()),
            "\"bank.csv\"",
        ),
    )
    .unwrap();
    // The working directory itself, holding the history and the configuration.
    let run = audience(dir)
        .args(["train", "--out", ".", "--force", "-q"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("holds one of the inputs"), "{stderr}");
    assert!(dir.join("bank.csv").is_file() && dir.join("rules").is_dir());
    // A folder of someone's files.
    std::fs::create_dir(dir.join("notes")).unwrap();
    std::fs::write(dir.join("notes/plan.txt"), "keep me").unwrap();
    let run = audience(dir)
        .args(["train", "--out", "notes", "--force", "-q"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains("is not a model bundle") && stderr.contains("plan.txt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes/plan.txt")).unwrap(),
        "keep me"
    );
    // A bundle audience wrote: replaced.
    audience(dir)
        .args(["train", "--out", "model", "-q"])
        .assert()
        .success();
    audience(dir)
        .args([
            "train",
            "--out",
            "model",
            "--force",
            "-q",
            "--num-rounds",
            "5",
        ])
        .assert()
        .success();
    let manifest = common::read_json(&dir.join("model/audience-model.json"));
    assert_eq!(manifest["num_rounds"], 5);
    assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
}

#[test]
fn an_output_that_is_an_input_is_refused_even_with_force() {
    let ws = workspace();
    let dir = ws.path();
    train_small_model(dir, "model");
    std::fs::copy(bank_csv(), dir.join("candidates.csv")).unwrap();
    std::os::unix::fs::symlink(dir.join("candidates.csv"), dir.join("alias.csv")).unwrap();
    let before = std::fs::read(dir.join("candidates.csv")).unwrap();
    for out in ["candidates.csv", "alias.csv", "model/model.txt"] {
        let run = audience(dir)
            .args([
                "score",
                "--data",
                "candidates.csv",
                "--out",
                out,
                "--force",
                "-q",
            ])
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains("is one of the inputs"), "{out}: {stderr}");
    }
    assert_eq!(std::fs::read(dir.join("candidates.csv")).unwrap(), before);
    let rule = std::fs::read(dir.join("rules/previous_success.sql")).unwrap();
    for out in ["rules/previous_success.sql", "audience.toml"] {
        let run = audience(dir)
            .args(["compare", "rules/*.sql", "--output", out, "--force", "-q"])
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains("is one of the inputs"), "{out}: {stderr}");
    }
    assert_eq!(
        std::fs::read(dir.join("rules/previous_success.sql")).unwrap(),
        rule
    );
    let run = audience(dir)
        .args([
            "train",
            "--out",
            "model",
            "--force",
            "--split-out",
            "audience.toml",
            "-q",
        ])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("is one of the inputs"));
}

#[test]
fn two_runs_writing_one_new_output_never_both_succeed() {
    let ws = workspace();
    let dir = ws.path();
    let start = || {
        Command::new(audience_bin())
            .current_dir(dir)
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .args(["compare", "rules/*.sql", "--output", "report.json", "-q"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let results = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let ok = results.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one run writes report.json");
    let failed = results.iter().find(|o| !o.status.success()).unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("already exists")
            || stderr.contains("appeared while this run was writing it"),
        "{stderr}"
    );
    assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
}

#[test]
fn outputs_in_missing_folders_or_over_pipes_and_links_are_refused_up_front() {
    let ws = workspace();
    let d = ws.path();
    let run = audience(d)
        .args([
            "compare",
            "rules/*.sql",
            "--output",
            "nodir/report.json",
            "-q",
        ])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains("nodir/report.json") && stderr.contains("the folder nodir does not exist"),
        "{stderr}"
    );
    train_small_model(d, "model");
    make_fifo(&d.join("pipe.csv"));
    std::fs::write(d.join("kept.csv"), "mine\n").unwrap();
    std::os::unix::fs::symlink(d.join("kept.csv"), d.join("link.csv")).unwrap();
    for (out, kind) in [
        ("pipe.csv", "a named pipe"),
        ("link.csv", "a symbolic link"),
    ] {
        let run = audience(d)
            .args([
                "score",
                "--data",
                &bank_csv().display().to_string(),
                "--out",
                out,
                "--force",
                "-q",
            ])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains(&format!("is {kind}")), "{out}: {stderr}");
    }
    let pipe = std::fs::symlink_metadata(d.join("pipe.csv")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&pipe.file_type()));
    assert!(
        std::fs::symlink_metadata(d.join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(d.join("kept.csv")).unwrap(),
        "mine\n"
    );
    assert!(leftovers(d).is_empty(), "{:?}", leftovers(d));
}

#[test]
fn an_interrupted_score_leaves_no_temporary_files() {
    let ws = workspace();
    let d = ws.path();
    train_small_model(d, "model");
    // The bank history twenty times over: 900,000 candidates.
    write_bank_times(d, 20);
    for signal in ["INT", "TERM", "HUP"] {
        let mut child = Command::new(audience_bin())
            .current_dir(d)
            .args([
                "score",
                "--data",
                "big.csv",
                "--out",
                "scores.csv",
                "-q",
                "--force",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it is writing its temporary files, then interrupt it.
        wait_until_writing(&mut child, d);
        assert!(send(signal, &child));
        let status = child.wait().unwrap();
        assert!(!status.success(), "{signal}: {status:?}");
        assert!(leftovers(d).is_empty(), "{signal}: {:?}", leftovers(d));
        assert!(!d.join("scores.csv").exists());
    }
}

#[test]
fn signals_the_caller_ignores_stay_ignored() {
    let ws = workspace();
    let d = ws.path();
    train_small_model(d, "model");
    // The bank history five times over, so that the run is still going when the signals come.
    let rows = write_bank_times(d, 5);
    // As `nohup` leaves SIGHUP, and a shell a background job's SIGINT: ignored, across exec.
    let mut child = Command::new("sh")
        .current_dir(d)
        .arg("-c")
        .arg("trap '' HUP INT; exec \"$0\" score --data big.csv --out scores.csv -q")
        .arg(audience_bin())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_writing(&mut child, d);
    for signal in ["HUP", "INT"] {
        assert!(send(signal, &child));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert_eq!(written.lines().count(), 1 + rows);
    assert!(leftovers(d).is_empty(), "{:?}", leftovers(d));
}

#[test]
fn an_interrupted_train_force_leaves_the_old_bundle_or_the_new_one_whole() {
    let ws = workspace();
    let d = ws.path();
    let train = |rounds: &str| {
        Command::new(audience_bin())
            .current_dir(d)
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .args([
                "train",
                "--out",
                "model",
                "--force",
                "-q",
                "--num-rounds",
                rounds,
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let bundle = || {
        (
            std::fs::read_to_string(d.join("model/model.txt")).unwrap(),
            std::fs::read_to_string(d.join("model/audience-model.json")).unwrap(),
        )
    };
    // The two bundles a run can leave, and how long a replacing run takes here.
    assert!(train("5").wait().unwrap().success());
    let five = bundle();
    let started = Instant::now();
    assert!(train("6").wait().unwrap().success());
    let whole = started.elapsed();
    let six = bundle();
    assert_ne!(five, six);
    // Interruptions spread over the whole run, past its end too: each time the target holds one
    // of the two bundles, whole, and nothing else is left behind.
    let trials = 12u32;
    for trial in 0..trials {
        let rounds = if trial % 2 == 0 { "5" } else { "6" };
        let mut child = train(rounds);
        std::thread::sleep(whole * trial / (trials - 2));
        // The run may have ended already: `kill` then fails, and that is one of the cases.
        let _ = send(if trial % 3 == 0 { "TERM" } else { "INT" }, &child);
        let status = child.wait().unwrap();
        let left = bundle();
        assert!(
            left == five || left == six,
            "trial {trial} ({status:?}): the model folder holds neither bundle"
        );
        let mut entries: Vec<String> = std::fs::read_dir(d.join("model"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            ["audience-model.json", "model.txt"],
            "trial {trial}"
        );
        assert!(leftovers(d).is_empty(), "trial {trial}: {:?}", leftovers(d));
    }
}

#[test]
fn outputs_get_the_usual_permissions() {
    let ws = workspace();
    let dir = ws.path();
    for (umask, file_mode, dir_mode) in [("022", 0o644, 0o755), ("077", 0o600, 0o700)] {
        let report = format!("report-{umask}.json");
        let model = format!("model-{umask}");
        let status = Command::new("sh")
            .current_dir(dir)
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .arg("-c")
            .arg(format!(
                "umask {umask} && \"$0\" compare rules/*.sql --output {report} -q && \"$0\" train --out {model} -q --num-rounds 5",
            ))
            .arg(audience_bin())
            .status()
            .unwrap();
        assert!(status.success());
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report), file_mode, "umask {umask}");
        assert_eq!(mode(&model), dir_mode, "umask {umask}");
        assert_eq!(
            mode(&format!("{model}/model.txt")),
            file_mode,
            "umask {umask}"
        );
    }
}
