//! The SageMaker inference server, run as `docker run IMAGE serve` runs it, under load from a
//! second process.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{audience, bank_csv, run_python, train_small_model, workspace};

/// Starts `audience container serve` on a free loopback port; returns the child and its URL.
fn start_server(opt_ml: &std::path::Path, envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(common::audience_bin())
        .env("AUDIENCE_OPT_ML", opt_ml)
        .envs(envs.iter().copied())
        .args(["container", "serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, format!("http://{address}"))
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the server stops cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn serve_holds_a_load_test_and_answers_exactly() {
    let ws = workspace();
    let dir = ws.path();
    // /opt/ml/model as SageMaker extracts model.tar.gz into it.
    audience(dir)
        .args(["train", "--out", "opt_ml/model", "-q"])
        .assert()
        .success();
    audience(dir)
        .args([
            "score",
            "--model",
            "opt_ml/model",
            "--out",
            "expected.csv",
            "-q",
            "--data",
        ])
        .arg(bank_csv())
        .assert()
        .success();
    // The model's feature columns, comma-separated, as a transform job would send them.
    let manifest = common::read_json(&dir.join("opt_ml/model/audience-model.json"));
    let names: Vec<String> = manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(bank_csv())
        .unwrap();
    let headers = reader.headers().unwrap().clone();
    let columns: Vec<usize> = names
        .iter()
        .map(|n| headers.iter().position(|h| h == n).unwrap())
        .collect();
    let mut writer = csv::Writer::from_path(dir.join("features.csv")).unwrap();
    writer.write_record(&names).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        writer
            .write_record(columns.iter().map(|&c| &record[c]))
            .unwrap();
    }
    writer.flush().unwrap();

    let (child, url) = start_server(&dir.join("opt_ml"), &[]);
    let out = run_python(
        "load_test.py",
        &[
            &url,
            &dir.join("features.csv").display().to_string(),
            &dir.join("expected.csv").display().to_string(),
            "1200",
            "8",
        ],
    );
    stop(child);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("{summary}");
    assert_eq!(summary["failure_count"], 0, "{summary}");
    assert!(summary["requests"].as_u64().unwrap() >= 1000);
    assert!(
        summary["malformed"].as_u64().unwrap() > 100,
        "malformed payloads were mixed in"
    );
    let max_ping = summary["max_ping_ms"].as_f64().unwrap();
    assert!(max_ping < 100.0, "/ping took {max_ping} ms under load");
    assert_eq!(
        summary["execution_parameters"]["BatchStrategy"],
        "MULTI_RECORD"
    );
}

#[test]
fn payload_limit_and_strategy_come_from_the_environment() {
    let ws = workspace();
    let dir = ws.path();
    train_small_model(dir, "opt_ml/model");
    let (child, url) = start_server(
        &dir.join("opt_ml"),
        &[
            ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1"),
            ("SAGEMAKER_BATCH_STRATEGY", "SINGLE_RECORD"),
        ],
    );
    let script = format!(
        r#"
import json, urllib.request, urllib.error
params = json.loads(urllib.request.urlopen("{url}/execution-parameters").read())
assert params["MaxPayloadInMB"] == 1 and params["BatchStrategy"] == "SINGLE_RECORD", params
# Refused on its claimed length while the client is still sending: the client must read the
# 413, not a broken pipe (the server closes with a lingering close). Several times, as the
# reset it guards against depends on timing.
for attempt in range(8):
    req = urllib.request.Request("{url}/invocations", data=b"1," * 600000, method="POST")
    req.add_header("Content-Type", "text/csv")
    try:
        urllib.request.urlopen(req)
        raise SystemExit("a 1.2 MB payload was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 413, e.code
req = urllib.request.Request("{url}/invocations", data=b"{{}}", method="POST")
req.add_header("Content-Type", "application/x-image")
try:
    urllib.request.urlopen(req)
    raise SystemExit("an image was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 415, e.code
print("ok")
"#
    );
    let output = common::python().args(["-c", &script]).output().unwrap();
    stop(child);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sends raw bytes on a fresh connection and returns what the server answers (until it closes
/// the connection or `wait` passes).
fn raw_exchange(
    url: &str,
    request: &[u8],
    wait: std::time::Duration,
) -> (String, std::time::Duration) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let start = std::time::Instant::now();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn oversized_claims_and_stalled_clients_cannot_hold_the_server() {
    let ws = workspace();
    let dir = ws.path();
    train_small_model(dir, "opt_ml/model");
    let (child, url) = start_server(
        &dir.join("opt_ml"),
        &[
            ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1"),
            ("AUDIENCE_READ_TIMEOUT_SECONDS", "1"),
        ],
    );
    let long = std::time::Duration::from_secs(20);
    // A 2 GB claim: 413 at once, before any body byte.
    let (answer, took) = raw_exchange(
        &url,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 2000000000\r\n\r\n",
        long,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // A body that stops arriving: 408 within twice the read timeout.
    let (answer, took) = raw_exchange(
        &url,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n58,",
        long,
    );
    assert!(
        answer.starts_with("HTTP/1.1 408") || answer.is_empty(),
        "{answer}"
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    // Headers that never end: the connection is closed after the idle time.
    let (_, took) = raw_exchange(&url, b"POST /invocations HTTP/1.1\r\nHost:", long);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    // Many stalled connections: the server holds at most its bound of them, and still answers.
    let stalled: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count();
    assert!(
        fds < 128 + 64,
        "{fds} open descriptors with 300 stalled clients"
    );
    let (answer, took) = raw_exchange(
        &url,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        long,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    drop(stalled);
    stop(child);
}

#[test]
fn the_server_reads_values_exactly_as_score_does() {
    let ws = workspace();
    let dir = ws.path();
    audience(dir)
        .args(["train", "--out", "opt_ml/model", "-q", "--num-rounds", "20"])
        .assert()
        .success();
    // 200 rows whose categories are padded with spaces (a category is its text as written:
    // " admin." was never seen in training), and numbers with spaces (numbers are trimmed).
    let manifest = common::read_json(&dir.join("opt_ml/model/audience-model.json"));
    let features: Vec<(String, String)> = manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(bank_csv())
        .unwrap();
    let headers = reader.headers().unwrap().clone();
    let mut payload = String::new();
    let mut table = csv::Writer::from_writer(Vec::new());
    table
        .write_record(features.iter().map(|(n, _)| n.as_str()))
        .unwrap();
    for record in reader.records().take(200) {
        let record = record.unwrap();
        let row: Vec<String> = features
            .iter()
            .map(|(name, kind)| {
                let value = &record[headers.iter().position(|h| h == name).unwrap()];
                if kind == "categorical" {
                    format!(" {value}")
                } else {
                    format!(" {value} ")
                }
            })
            .collect();
        table.write_record(&row).unwrap();
        let mut line = csv::Writer::from_writer(Vec::new());
        line.write_record(&row).unwrap();
        payload.push_str(&String::from_utf8(line.into_inner().unwrap()).unwrap());
    }
    std::fs::write(dir.join("padded.csv"), table.into_inner().unwrap()).unwrap();
    audience(dir)
        .args([
            "score",
            "--model",
            "opt_ml/model",
            "--data",
            "padded.csv",
            "--out",
            "scores.csv",
            "-q",
        ])
        .assert()
        .success();
    let expected: Vec<String> = std::fs::read_to_string(dir.join("scores.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let (child, url) = start_server(&dir.join("opt_ml"), &[]);
    let answer = ureq::post(&format!("{url}/invocations"))
        .header("Content-Type", "text/csv")
        .send(payload.as_bytes())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let served: Vec<String> = answer.lines().map(String::from).collect();
    assert_eq!(served.len(), 200);
    assert_eq!(
        served, expected,
        "the server and score read the same values the same way"
    );
    stop(child);
}
