//! Helpers for the end-to-end tests: the real binary, the repository's data, Python oracles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The audience binary built for these tests, run in `dir`.
pub fn audience(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("audience").expect("the audience binary is built");
    // Tests run side by side: OpenMP threads that spin while waiting would starve each other.
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .env_remove("COLUMNS");
    cmd
}

/// The bundled bank example (CC BY 4.0, in the repository).
pub fn bank_csv() -> PathBuf {
    repo().join("examples/bank/bank-full.csv")
}

/// `../shared/data` when it is there. Tests that need it print a visible SKIPPED line otherwise.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = repo().join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: ../shared/data is not beside the repository (the seed_cr files are not redistributable)"
        );
        println!("SKIPPED {test}: ../shared/data is absent");
        None
    }
}

/// A temporary directory holding a copy of the repository's audience.toml and rules.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::fs::read_to_string(repo().join("audience.toml")).unwrap();
    let config = config.replace(
        "path = \"examples/bank/bank-full.csv\"",
        &format!("path = {:?}", bank_csv().display().to_string()),
    );
    std::fs::write(dir.path().join("audience.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for entry in std::fs::read_dir(repo().join("rules")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("rules").join(entry.file_name()),
        )
        .unwrap();
    }
    dir
}

/// The Python interpreter with the test oracles (lightgbm 4.7.0, scikit-learn, pandas):
/// $AUDIENCE_PYTHON as scripts/test sets it, else python3. Fails loudly when they are missing.
pub fn python() -> Command {
    let exe = std::env::var("AUDIENCE_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(&exe)
        .args([
            "-c",
            "import lightgbm, sklearn, pandas, pyarrow; assert lightgbm.__version__ == '4.7.0', lightgbm.__version__",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}; run scripts/test, which installs the Python test dependencies"));
    assert!(
        check.status.success(),
        "{exe} lacks the Python test dependencies ({}); run scripts/test or pip install -r tests/python/requirements.txt",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    Command::new(exe)
}

/// Runs a script from tests/python with arguments; panics with its output when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = python()
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
