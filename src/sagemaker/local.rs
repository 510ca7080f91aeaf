//! `--backend local`: SageMaker's training and batch-transform jobs without AWS, run the way the
//! service runs them (reference/sagemaker-byoc.md):
//!
//! - training lays out an /opt/ml tree per host (input/config/*.json, input/data/<channel>/),
//!   runs the container's `train` as a child process per host, and tars the model folder into
//!   model.tar.gz; the failure file becomes the job's failure reason;
//! - transform extracts model.tar.gz into /opt/ml/model, starts the container's `serve` on a free
//!   loopback port, splits each input file by line, batches records into payloads of at most
//!   MaxPayloadInMB, applies InputFilter, JoinSource and OutputFilter, and writes `<file>.out`
//!   only when the whole file succeeded. Unlike the SageMaker Python SDK's local mode, the
//!   DataProcessing settings are applied.
//!
//! A job's folder lives under the local root: `<root>/<job name>/`, with `job.json` recording its
//! status for `audience sagemaker status`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::output::AtomicFile;
use crate::sagemaker::archive;
use crate::sagemaker::container::ROOT_ENV;
use crate::sagemaker::job::{DataLocation, TrainingJob, TransformJob};
use crate::{Error, Result};

/// The environment variable naming each host's address for data-parallel training
/// (`algo-1=127.0.0.1:40001,algo-2=127.0.0.1:40002`). On SageMaker the host names resolve
/// through DNS; the local backend runs every host on loopback, so each gets its own port.
pub const HOST_ADDRESSES_ENV: &str = "AUDIENCE_HOST_ADDRESSES";

/// SageMaker's first 1024 characters of /opt/ml/output/failure.
const FAILURE_REASON_CHARS: usize = 1024;

/// The status record of a local job (`<root>/<job>/job.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalJobRecord {
    pub name: String,
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// model.tar.gz for a training job; the output folder for a transform job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<PathBuf>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    pub seconds: f64,
}

impl LocalJobRecord {
    pub fn load(root: &Path, name: &str) -> Result<LocalJobRecord> {
        let path = root.join(name).join("job.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Config(format!("no local job {name:?} under {}", root.display()))
            } else {
                Error::io(&path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| Error::data(&path, e.to_string()))
    }

    /// The record of a job that starts now (InProgress), saved.
    fn begin(root: &Path, name: &str, kind: &str) -> Result<LocalJobRecord> {
        let record = LocalJobRecord {
            name: name.to_string(),
            kind: kind.to_string(),
            status: "InProgress".into(),
            failure_reason: None,
            artifacts: None,
            created: now_text(),
            ended: None,
            seconds: 0.0,
        };
        record.save(root)?;
        Ok(record)
    }

    fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(&self.name).join("job.json");
        let text =
            serde_json::to_string_pretty(self).map_err(|e| Error::data(&path, e.to_string()))?;
        crate::output::write_atomic(&path, text.as_bytes(), true)
    }
}

fn now_text() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Creates `<root>/<name>`; like SageMaker, a name is used once.
fn new_job_dir(root: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let dir = root.join(name);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Config(format!(
            "a job named {name:?} already exists under {} (job names are used once)",
            root.display()
        ))),
        Err(e) => Err(Error::io(&dir, e)),
    }
}

/// How a local job ended.
#[derive(Debug, Clone)]
pub struct LocalTraining {
    pub record: LocalJobRecord,
    /// model.tar.gz, when the job completed.
    pub model_archive: Option<PathBuf>,
}

/// What the caller sees of a running job: a line of the container's log, tagged with its host.
pub type LogSink<'a> = &'a mut dyn FnMut(&str, &str);

/// Runs a training job: one `audience container train` child per host.
pub fn train(job: &TrainingJob, root: &Path, exe: &Path, log: LogSink) -> Result<LocalTraining> {
    let started = Instant::now();
    let job_dir = new_job_dir(root, &job.name)?;
    let mut record = LocalJobRecord::begin(root, &job.name, "training")?;
    let hosts: Vec<String> = (1..=job.instance_count.max(1))
        .map(|i| format!("algo-{i}"))
        .collect();
    let addresses = if hosts.len() > 1 {
        let mut parts = Vec::new();
        for host in &hosts {
            parts.push(format!("{host}=127.0.0.1:{}", free_port()?));
        }
        Some(parts.join(","))
    } else {
        None
    };
    let mut children = Vec::new();
    for host in &hosts {
        let opt = job_dir.join(host);
        lay_out_training(job, &opt, host, &hosts)?;
        let mut command = Command::new(exe);
        command
            .args(["container", "train"])
            .env(ROOT_ENV, &opt)
            .env("TRAINING_JOB_NAME", &job.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(a) = &addresses {
            // The hosts share this machine's cores: OpenMP threads that outnumber them spin
            // against each other at every collective step.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            command
                .env(HOST_ADDRESSES_ENV, a)
                .env("OMP_NUM_THREADS", (cores / hosts.len()).max(1).to_string());
        }
        let child = command.spawn().map_err(|e| Error::io(exe, e))?;
        children.push((host.clone(), child));
    }
    let outcome = supervise(&mut children, job.max_runtime, log);
    let mut reasons = Vec::new();
    for (host, status) in &outcome {
        if !status.success {
            let failure = job_dir.join(host).join("output/failure");
            let text = std::fs::read_to_string(&failure).unwrap_or_default();
            let reason = if status.timed_out {
                format!(
                    "MaxRuntimeExceeded: stopped after {} s",
                    job.max_runtime.as_secs()
                )
            } else if text.trim().is_empty() {
                format!("{host}: the container exited with {}", status.code)
            } else {
                text.trim().to_string()
            };
            reasons.push(if hosts.len() > 1 {
                format!("{host}: {reason}")
            } else {
                reason
            });
        }
    }
    record.seconds = started.elapsed().as_secs_f64();
    record.ended = Some(now_text());
    if !reasons.is_empty() {
        let mut reason = reasons.join("; ");
        if let Some((cut, _)) = reason.char_indices().nth(FAILURE_REASON_CHARS) {
            reason.truncate(cut);
        }
        record.status = if outcome.iter().any(|(_, s)| s.timed_out) {
            "Stopped".into()
        } else {
            "Failed".into()
        };
        record.failure_reason = Some(reason);
        record.save(root)?;
        return Ok(LocalTraining {
            record,
            model_archive: None,
        });
    }
    // SageMaker merges every host's /opt/ml/model into one archive.
    let merged = job_dir.join("model");
    std::fs::create_dir_all(&merged).map_err(|e| Error::io(&merged, e))?;
    for host in &hosts {
        let dir = job_dir.join(host).join("model");
        copy_tree(&dir, &merged)?;
    }
    let archive_path = job_dir.join("output/model.tar.gz");
    std::fs::create_dir_all(job_dir.join("output")).map_err(|e| Error::io(&job_dir, e))?;
    archive::pack_dir(&merged, &archive_path, false)?;
    record.status = "Completed".into();
    record.artifacts = Some(archive_path.clone());
    record.save(root)?;
    Ok(LocalTraining {
        record,
        model_archive: Some(archive_path),
    })
}

/// Writes one host's /opt/ml tree as SageMaker does in File mode.
fn lay_out_training(job: &TrainingJob, opt: &Path, host: &str, hosts: &[String]) -> Result<()> {
    let config = opt.join("input/config");
    for dir in [
        config.clone(),
        opt.join("model"),
        opt.join("output/data"),
        opt.join("input/data"),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let json = |name: &str, value: serde_json::Value| -> Result<()> {
        let path = config.join(name);
        let text =
            serde_json::to_string_pretty(&value).map_err(|e| Error::data(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    };
    json(
        "hyperparameters.json",
        serde_json::to_value(&job.hyperparameters).unwrap_or_default(),
    )?;
    let mut channels = serde_json::Map::new();
    for channel in &job.channels {
        let mut c = serde_json::Map::new();
        if let Some(ct) = &channel.content_type {
            c.insert("ContentType".into(), ct.clone().into());
        }
        c.insert("TrainingInputMode".into(), "File".into());
        c.insert("S3DistributionType".into(), "FullyReplicated".into());
        c.insert("RecordWrapperType".into(), "None".into());
        channels.insert(channel.name.clone(), c.into());
        let dir = opt.join("input/data").join(&channel.name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        match &channel.data {
            DataLocation::Files(files) => {
                for file in files {
                    let name = file.file_name().ok_or_else(|| {
                        Error::Config(format!("{} is not a file", file.display()))
                    })?;
                    link_or_copy(file, &dir.join(name))?;
                }
            }
            DataLocation::S3(uri) => {
                return Err(Error::Config(format!(
                    "{uri}: the local backend reads local files; S3 data needs --backend aws"
                )));
            }
        }
    }
    json("inputdataconfig.json", channels.into())?;
    json(
        "resourceconfig.json",
        serde_json::json!({
            "current_host": host,
            "hosts": hosts,
            "network_interface_name": "eth0",
        }),
    )
}

/// The container only reads its channels, so a hard link is as good as SageMaker's download and
/// costs nothing; across file systems the file is copied.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if !from.is_file() {
        return Err(Error::io(
            from,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// A free loopback port (bound, read, released: the child binds it a moment later).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?
        .port();
    Ok(port)
}

#[derive(Debug, Clone)]
struct ExitStatus {
    success: bool,
    code: String,
    timed_out: bool,
}

/// Forwards the children's output line by line and waits for all of them; past `max_runtime`
/// they get SIGTERM and, 120 s later as on SageMaker (here 10 s), SIGKILL. When one host fails,
/// the others are stopped too: a data-parallel job cannot go on without it.
fn supervise(
    children: &mut [(String, Child)],
    max_runtime: Duration,
    log: LogSink,
) -> Vec<(String, ExitStatus)> {
    let (sender, receiver) = std::sync::mpsc::channel::<(String, String)>();
    let mut readers = Vec::new();
    for (host, child) in children.iter_mut() {
        let streams: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for stream in streams {
            let sender = sender.clone();
            let host = host.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                    if sender.send((host.clone(), line)).is_err() {
                        break;
                    }
                }
            }));
        }
    }
    drop(sender);
    let started = Instant::now();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut terminated_at: Option<Instant> = None;
    let mut timed_out = false;
    loop {
        while let Ok((host, line)) = receiver.try_recv() {
            log(&host, &line);
        }
        for (i, (_, child)) in children.iter_mut().enumerate() {
            if statuses[i].is_none()
                && let Ok(Some(status)) = child.try_wait()
            {
                statuses[i] = Some(ExitStatus {
                    success: status.success(),
                    code: status.to_string(),
                    timed_out,
                });
            }
        }
        if statuses.iter().all(|s| s.is_some()) {
            break;
        }
        let failed = statuses.iter().flatten().any(|s| !s.success);
        if terminated_at.is_none() && (started.elapsed() > max_runtime || failed) {
            timed_out = started.elapsed() > max_runtime;
            for (i, (_, child)) in children.iter().enumerate() {
                if statuses[i].is_none() {
                    terminate(child);
                }
            }
            terminated_at = Some(Instant::now());
        }
        if let Some(at) = terminated_at
            && at.elapsed() > Duration::from_secs(10)
        {
            for (i, (_, child)) in children.iter_mut().enumerate() {
                if statuses[i].is_none() {
                    let _ = child.kill();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for reader in readers {
        let _ = reader.join();
    }
    while let Ok((host, line)) = receiver.try_recv() {
        log(&host, &line);
    }
    children
        .iter()
        .zip(statuses)
        .map(|((host, _), s)| {
            let mut s = s.unwrap_or(ExitStatus {
                success: false,
                code: "unknown".into(),
                timed_out,
            });
            s.timed_out = s.timed_out || (timed_out && !s.success);
            (host.clone(), s)
        })
        .collect()
}

/// SIGTERM, as `docker stop` sends it.
fn terminate(child: &Child) {
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// The container's `serve`, running on loopback for a transform job; stopped on drop.
pub struct LocalServer {
    child: Child,
    pub base_url: String,
}

impl LocalServer {
    /// Starts `exe container serve` on a free loopback port for the model in `opt/model`, with
    /// the environment SageMaker gives a transform container, and waits for /ping.
    pub fn start(exe: &Path, opt: &Path, job: &TransformJob) -> Result<LocalServer> {
        let mut child = Command::new(exe)
            .args(["container", "serve", "--host", "127.0.0.1", "--port", "0"])
            .env(ROOT_ENV, opt)
            .env("SAGEMAKER_BATCH", "true")
            .env(
                "SAGEMAKER_MAX_PAYLOAD_IN_MB",
                job.max_payload_mb.to_string(),
            )
            .env("SAGEMAKER_BATCH_STRATEGY", job.batch_strategy.as_env())
            .env(
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
                job.max_concurrent.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(exe, e))?;
        // The server prints `audience: serving on 127.0.0.1:PORT (...)` once it listens.
        let stdout = child.stdout.take();
        let mut first = String::new();
        if let Some(out) = stdout {
            let mut reader = BufReader::new(out);
            let _ = reader.read_line(&mut first);
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
        }
        let address = first
            .split("serving on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let Some(address) = address else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(Error::Model {
                path: opt.join("model"),
                message: format!(
                    "the serving container did not start: {}",
                    err.lines().last().unwrap_or("no message")
                ),
            });
        };
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    eprintln!("[serve] {line}");
                }
            });
        }
        let server = LocalServer {
            child,
            base_url: format!("http://{address}"),
        };
        // SageMaker pings until the container answers (2 s per attempt).
        let agent = http_agent(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = agent.get(format!("{}/ping", server.base_url)).call()
                && r.status() == 200
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Config(
                    "the serving container never answered /ping".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// One input file's result.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub input: PathBuf,
    pub output: Option<PathBuf>,
    pub records: usize,
    pub payloads: usize,
    pub error: Option<String>,
}

/// How a local transform job ended.
#[derive(Debug, Clone)]
pub struct LocalTransform {
    pub record: LocalJobRecord,
    pub files: Vec<FileOutcome>,
}

/// Runs a batch-transform job over local CSV files (each with its header line, sent as a record
/// as SageMaker does), writing `<output_dir>/<file name>.out` for each file that succeeds.
pub fn transform(
    job: &TransformJob,
    model_archive: &Path,
    inputs: &[PathBuf],
    root: &Path,
    exe: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<LocalTransform> {
    let started = Instant::now();
    let job_dir = new_job_dir(root, &job.name)?;
    let mut record = LocalJobRecord::begin(root, &job.name, "transform")?;
    let opt = job_dir.join("opt_ml");
    archive::unpack(model_archive, &opt.join("model"))?;
    let output_dir = job_dir.join("output");
    std::fs::create_dir_all(&output_dir).map_err(|e| Error::io(&output_dir, e))?;
    let server = LocalServer::start(exe, &opt, job)?;
    let agent = http_agent(Duration::from_secs(600));
    let url = format!("{}/invocations", server.base_url);
    let mut files = Vec::new();
    for input in inputs {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".into());
        let out_path = output_dir.join(format!("{name}.out"));
        let outcome = transform_file(job, &agent, &url, input, &out_path, progress);
        files.push(match outcome {
            Ok((records, payloads)) => FileOutcome {
                input: input.clone(),
                output: Some(out_path),
                records,
                payloads,
                error: None,
            },
            Err(message) => FileOutcome {
                input: input.clone(),
                output: None,
                records: 0,
                payloads: 0,
                error: Some(message),
            },
        });
    }
    // Idle keep-alive connections would hold the server's graceful shutdown open.
    drop(agent);
    drop(server);
    record.seconds = started.elapsed().as_secs_f64();
    record.ended = Some(now_text());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            f.error
                .as_ref()
                .map(|e| format!("{}: {e}", f.input.display()))
        })
        .collect();
    if failures.is_empty() {
        record.status = "Completed".into();
    } else {
        record.status = "Failed".into();
        let mut reason = failures.join("; ");
        if let Some((cut, _)) = reason.char_indices().nth(FAILURE_REASON_CHARS) {
            reason.truncate(cut);
        }
        record.failure_reason = Some(reason);
    }
    record.artifacts = Some(output_dir);
    record.save(root)?;
    Ok(LocalTransform { record, files })
}

/// Splits one file by line, posts MultiRecord (or SingleRecord) payloads of at most
/// MaxPayloadInMB, and assembles the output with DataProcessing; the `.out` file appears only
/// when every record succeeded.
fn transform_file(
    job: &TransformJob,
    agent: &ureq::Agent,
    url: &str,
    input: &Path,
    out_path: &Path,
    progress: &mut dyn FnMut(usize),
) -> std::result::Result<(usize, usize), String> {
    let file = std::fs::File::open(input).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = AtomicFile::create(out_path, true).map_err(|e| e.to_string())?;
    let limit = (job.max_payload_mb as usize).max(1) * 1024 * 1024;
    let single = job.batch_strategy == crate::sagemaker::job::BatchStrategy::SingleRecord;
    let dp = &job.data_processing;
    let mut splitter = crate::sagemaker::dataprocessing::LineSplitter::default();
    // One payload: the original lines (for the join) and the filtered records sent.
    let mut originals: Vec<String> = Vec::new();
    let mut payload = String::new();
    let mut line_number = 0usize;
    let mut records = 0usize;
    let mut payloads = 0usize;
    let mut first_record = 0usize;
    let mut writer = std::io::BufWriter::new(out.file());
    let mut filter_splitter = crate::sagemaker::dataprocessing::LineSplitter::default();
    let mut send = |originals: &mut Vec<String>,
                    payload: &mut String,
                    first_record: usize,
                    writer: &mut std::io::BufWriter<&mut std::fs::File>|
     -> std::result::Result<(), String> {
        if originals.is_empty() {
            return Ok(());
        }
        let response = agent
            .post(url)
            .header("Content-Type", "text/csv")
            .header("Accept", "text/csv")
            .send(payload.as_bytes())
            .map_err(|e| format!("posting records {first_record}..: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(|e| format!("reading the answer to records {first_record}..: {e}"))?;
        if status != 200 {
            return Err(format!(
                "the container answered {status} to the payload starting at line {first_record}: {}",
                body.trim()
            ));
        }
        let answers: Vec<&str> = body
            .strip_suffix('\n')
            .unwrap_or(&body)
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        if answers.len() != originals.len() {
            return Err(format!(
                "the payload starting at line {first_record} had {} records but the container \
                 answered {} lines",
                originals.len(),
                answers.len()
            ));
        }
        for (i, (input, answer)) in originals.iter().zip(answers).enumerate() {
            let line = dp
                .assemble(&mut splitter, input, answer)
                .map_err(|e| format!("line {}: {e}", first_record + i))?;
            writer
                .write_all(line.as_bytes())
                .and_then(|_| writer.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
        }
        originals.clear();
        payload.clear();
        Ok(())
    };
    let mut raw = String::new();
    loop {
        raw.clear();
        let n = reader
            .read_line(&mut raw)
            .map_err(|e| format!("line {}: {e}", line_number + 1))?;
        if n == 0 {
            break;
        }
        line_number += 1;
        let mut line = raw.strip_suffix('\n').unwrap_or(&raw);
        line = line.strip_suffix('\r').unwrap_or(line);
        if line_number == 1 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        // SageMaker's Line split leaves no empty record for a trailing newline; an empty line
        // inside the file is a record like any other, but a CSV line with no fields has no
        // features, so it is skipped as the end of the file would be.
        if line.is_empty() {
            continue;
        }
        let record = dp
            .filter_input(&mut filter_splitter, line)
            .map_err(|e| format!("line {line_number}: {e}"))?;
        if record.len() + 1 > limit {
            return Err(format!(
                "line {line_number} is larger than MaxPayloadInMB ({} MB)",
                job.max_payload_mb
            ));
        }
        if !originals.is_empty() && (single || payload.len() + record.len() + 1 > limit) {
            send(&mut originals, &mut payload, first_record, &mut writer)?;
            payloads += 1;
            progress(records);
        }
        if originals.is_empty() {
            first_record = line_number;
        }
        payload.push_str(&record);
        payload.push('\n');
        originals.push(line.to_string());
        records += 1;
    }
    if !originals.is_empty() {
        send(&mut originals, &mut payload, first_record, &mut writer)?;
        payloads += 1;
        progress(records);
    }
    writer.flush().map_err(|e| e.to_string())?;
    drop(writer);
    out.commit(true).map_err(|e| e.to_string())?;
    Ok((records, payloads))
}

/// Concatenates `.out` files (each starting with the header line its input had) into one CSV
/// with a single header; returns the number of data lines.
pub fn merge_outputs(parts: &[PathBuf], target: &Path, force: bool) -> Result<usize> {
    let mut out = AtomicFile::create(target, force)?;
    let mut lines = 0usize;
    {
        let mut writer = std::io::BufWriter::new(out.file());
        let mut header: Option<String> = None;
        for part in parts {
            let file = std::fs::File::open(part).map_err(|e| Error::io(part, e))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| Error::io(part, e))?;
                if i == 0 {
                    match &header {
                        None => header = Some(line.clone()),
                        Some(h) if *h == line => continue,
                        Some(h) => {
                            return Err(Error::data(
                                part,
                                format!("header {line:?} differs from the first file's {h:?}"),
                            ));
                        }
                    }
                } else {
                    lines += 1;
                }
                writer
                    .write_all(line.as_bytes())
                    .and_then(|_| writer.write_all(b"\n"))
                    .map_err(|e| Error::io(target, e))?;
            }
        }
        writer.flush().map_err(|e| Error::io(target, e))?;
    }
    out.commit(force)?;
    Ok(lines)
}

/// Host name -> socket address, from `AUDIENCE_HOST_ADDRESSES`.
pub fn host_addresses(text: &str) -> Result<BTreeMap<String, std::net::SocketAddr>> {
    let mut map = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, address) = part.split_once('=').ok_or_else(|| {
            Error::Config(format!(
                "{HOST_ADDRESSES_ENV}: {part:?} is not host=address:port"
            ))
        })?;
        let address = address.parse().map_err(|_| {
            Error::Config(format!(
                "{HOST_ADDRESSES_ENV}: {address:?} is not an address:port"
            ))
        })?;
        map.insert(host.to_string(), address);
    }
    Ok(map)
}
