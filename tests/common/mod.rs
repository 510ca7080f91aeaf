//! Helpers for the end-to-end tests: the real binary, the repository's data, Python oracles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary the end-to-end tests run: `AUDIENCE_TEST_BIN` when set (scripts/test's second pass
/// points it at the release build the Docker image ships), else the one cargo built beside these
/// tests.
pub fn audience_bin() -> PathBuf {
    match std::env::var_os("AUDIENCE_TEST_BIN") {
        Some(bin) if !bin.is_empty() => {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "AUDIENCE_TEST_BIN={} is not a file",
                bin.display()
            );
            bin
        }
        _ => assert_cmd::cargo::cargo_bin("audience"),
    }
}

/// The audience binary (`audience_bin`), run in `dir`.
pub fn audience(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(audience_bin());
    // Tests run side by side: OpenMP threads that spin while waiting would starve each other.
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .env_remove("COLUMNS");
    cmd
}

/// Trains a five-round model of the workspace's history into the bundle `dir/out`.
pub fn train_small_model(dir: &Path, out: &str) {
    audience(dir)
        .args(["train", "--out", out, "-q", "--num-rounds", "5"])
        .assert()
        .success();
}

/// Makes a named pipe at `path`.
pub fn make_fifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
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

/// tests/python/sagemaker_emulator.py: moto_server on a free loopback port whose SageMaker jobs
/// run the real container (this build's binary). Stopped when dropped.
pub struct Emulator {
    child: std::process::Child,
    pub port: u16,
    pub work: tempfile::TempDir,
}

impl Emulator {
    pub fn start(enforce_auth: bool) -> Emulator {
        use std::io::BufRead;
        let work = tempfile::tempdir().unwrap();
        let bin = audience_bin();
        let mut command = python();
        command
            .arg(repo().join("tests/python/sagemaker_emulator.py"))
            .arg("--audience")
            .arg(&bin)
            .arg("--work")
            .arg(work.path())
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if enforce_auth {
            command.arg("--enforce-auth");
        }
        let mut child = command.spawn().expect("the emulator starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the emulator prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("the emulator did not start (is moto[server] installed?): {line:?}")
            });
        Emulator { child, port, work }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Create* request as the emulator received it.
    pub fn request(&self, operation: &str, name: &str) -> serde_json::Value {
        read_json(
            &self
                .work
                .path()
                .join("requests")
                .join(format!("{operation}-{name}.json")),
        )
    }

    /// `audience` with credentials and region for this endpoint.
    pub fn audience(&self, dir: &Path) -> assert_cmd::Command {
        let mut cmd = audience(dir);
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.url())
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    /// Runs Python boto3 against the emulator (for setting up buckets and reading objects).
    pub fn boto3(&self, code: &str) -> String {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}",
            self.url()
        );
        let output = python().args(["-c", &script]).output().unwrap();
        assert!(
            output.status.success(),
            "boto3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Closing stdin ends it; kill in case it is stuck.
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
