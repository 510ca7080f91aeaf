//! `audience sagemaker train | transform | status`: the same jobs as `train` and `score`, run as
//! SageMaker jobs from our own container, on AWS or emulated on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use audience::model::bundle::ModelBundle;
use audience::output;
use audience::sagemaker::archive;
use audience::sagemaker::job::{
    self, BatchStrategy, TrainingJob, TransformJob, channels_for, check_job_name,
    data_processing_for, hyperparameters_from_config, stage_candidates,
};
use audience::sagemaker::local::{self, LocalJobRecord};

use super::ConfigArgs;

pub const ABOUT: &str = "Train and score as Amazon SageMaker jobs (or their local emulation)";

pub const LONG_ABOUT: &str = "\
Run training and batch scoring as Amazon SageMaker jobs from audience's own container image
(the Dockerfile builds it; `audience container` is its entry point).

`train` uploads the history (or uses s3:// paths as given), creates the training job with
audience.toml's settings as hyperparameters, waits showing each status change, and unpacks the
job's model.tar.gz into a local model bundle that `score` and `compare` use as they are.
`transform` stages the candidates as CSV, creates the model and a batch-transform job
(MultiRecord, split by line) whose DataProcessing sends only the model's features to the
container and joins the id back, waits, and writes one id,score file.

--backend local runs the same jobs here, as SageMaker runs them: an /opt/ml tree per host, the
container's `train` as a child process, model.tar.gz; for transform, the container's `serve` on
a loopback port, MultiRecord payloads up to MaxPayloadInMB, and InputFilter, JoinSource and
OutputFilter applied (SageMaker's own local mode skips them). Jobs live under --local-root.

AWS settings come from the standard chain (AWS_PROFILE, AWS_REGION, credentials files, SSO,
instance roles); --endpoint-url (or AWS_ENDPOINT_URL) targets a compatible endpoint.";

pub const EXAMPLES: &str = "\
Examples:
  audience sagemaker train --backend local --output model/
  audience sagemaker transform --backend local --model model/ --data candidates.csv --output scores.csv
  audience sagemaker train --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/audience:1 \\
      --role arn:aws:iam::123456789012:role/SageMaker --s3 s3://my-bucket/audience --output model/
  audience sagemaker train ... --instance-count 2        # data-parallel LightGBM over 2 hosts
  audience sagemaker train ... --no-wait                 # print the job name and return
  audience sagemaker status audience-train-20261125-183631-042
  audience sagemaker transform --image ... --role ... --s3 s3://my-bucket/audience \\
      --model model/ --data candidates.csv --output scores.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Amazon SageMaker through the AWS SDK
    Aws,
    /// This machine, laid out and run as SageMaker would
    Local,
}

/// Where jobs run and how to reach them.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Where the job runs
    #[arg(long, value_enum, default_value_t = Backend::Aws, help_heading = "Backend")]
    pub backend: Backend,
    /// Folder of local jobs (--backend local)
    #[arg(
        long,
        value_name = "DIR",
        default_value = "sagemaker-jobs",
        help_heading = "Backend"
    )]
    pub local_root: PathBuf,
    /// AWS endpoint for S3 and SageMaker [default: $AWS_ENDPOINT_URL, else AWS's]
    #[arg(long, value_name = "URL", help_heading = "Backend")]
    pub endpoint_url: Option<String>,
    /// AWS region [default: the AWS configuration's]
    #[arg(long, help_heading = "Backend")]
    pub region: Option<String>,
    /// AWS profile [default: $AWS_PROFILE, else default]
    #[arg(long, help_heading = "Backend")]
    pub profile: Option<String>,
    /// Seconds between status checks while waiting
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        help_heading = "Backend"
    )]
    pub poll: f64,
}

/// The container image and role a job on AWS runs with.
#[derive(Debug, Clone, Args)]
pub struct AwsJobArgs {
    /// ECR image URI of audience's container
    #[arg(long, value_name = "URI", env = "AUDIENCE_IMAGE", help_heading = "AWS")]
    pub image: Option<String>,
    /// IAM role SageMaker runs the job as
    #[arg(long, value_name = "ARN", env = "AUDIENCE_ROLE", help_heading = "AWS")]
    pub role: Option<String>,
    /// S3 prefix for inputs and outputs: <prefix>/<job>/input, <prefix>/<job>/output
    #[arg(
        long = "s3",
        value_name = "s3://BUCKET/PREFIX",
        env = "AUDIENCE_S3",
        help_heading = "AWS"
    )]
    pub s3_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct SagemakerArgs {
    #[command(subcommand)]
    pub command: SagemakerCommand,
}

#[derive(Debug, Subcommand)]
pub enum SagemakerCommand {
    /// Train as a SageMaker training job and unpack the model bundle
    Train(Box<TrainJobArgs>),
    /// Score candidates as a SageMaker batch-transform job
    Transform(Box<TransformJobArgs>),
    /// Show a job's status (and failure reason)
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct TrainJobArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub aws: AwsJobArgs,
    /// Validation data: the holdout (SageMaker channel `validation`) instead of a split
    #[arg(long, value_name = "PATH")]
    pub validation: Option<PathBuf>,
    /// Labels of the validation data, when labels sit in a separate file
    #[arg(long, value_name = "PATH")]
    pub validation_labels: Option<PathBuf>,
    /// Job name [default: audience-train-<UTC date>-<time>-<milliseconds>]
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,
    /// Instance type
    #[arg(long, default_value = "ml.m5.xlarge")]
    pub instance_type: String,
    /// Instances; more than one trains data-parallel
    #[arg(long, default_value_t = 1)]
    pub instance_count: u32,
    /// Storage per instance, GB
    #[arg(long, default_value_t = 30)]
    pub volume_gb: u32,
    /// Stop the job after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub max_runtime: u64,
    /// Return once the job is created (then: audience sagemaker status NAME); AWS only, local
    /// jobs run to the end
    #[arg(long)]
    pub no_wait: bool,
    /// Model bundle directory to write
    #[arg(
        long = "output",
        short = 'o',
        visible_alias = "out",
        value_name = "DIR",
        default_value = "model"
    )]
    pub out: PathBuf,
    /// Replace an existing bundle
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TransformJobArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub aws: AwsJobArgs,
    /// Model bundle directory, or a model.tar.gz (local path or s3://)
    #[arg(long, short, value_name = "DIR|TAR.GZ", default_value = "model")]
    pub model: PathBuf,
    /// Candidates to score: CSV files with a header line
    #[arg(long, short, value_name = "PATH", required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// CSV delimiter of the candidates; detected when absent
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Output: one CSV of id,score lines in input order
    #[arg(
        long = "output",
        short = 'o',
        visible_alias = "out",
        value_name = "PATH"
    )]
    pub out: PathBuf,
    /// Job name [default: audience-score-<UTC date>-<time>-<milliseconds>]
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,
    /// Instance type
    #[arg(long, default_value = "ml.m5.large")]
    pub instance_type: String,
    /// Instances (files are spread over them)
    #[arg(long, default_value_t = 1)]
    pub instance_count: u32,
    /// Largest payload sent to the container, MB (1 to 100)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_payload_mb: u32,
    /// Records per request: as many as fit (multi) or one (single)
    #[arg(long, value_enum, default_value_t = StrategyArg::Multi)]
    pub batch_strategy: StrategyArg,
    /// Requests in flight per instance
    #[arg(long, default_value_t = 1)]
    pub max_concurrent: u32,
    /// Return once the job is created (AWS only; local jobs run to the end)
    #[arg(long)]
    pub no_wait: bool,
    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Multi,
    Single,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Job name
    pub job: String,
    /// The job is a transform job
    #[arg(long)]
    pub transform: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(args: SagemakerArgs) -> Result<()> {
    match args.command {
        SagemakerCommand::Train(a) => train(*a),
        SagemakerCommand::Transform(a) => transform(*a),
        SagemakerCommand::Status(a) => status(a),
    }
}

#[cfg(feature = "sagemaker")]
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The error for a job that ended without its result: its kind, name, final status and reason.
fn job_ended(kind: &str, name: &str, status: &str, reason: Option<&str>) -> anyhow::Error {
    anyhow::anyhow!(
        "{kind} job {name} {}: {}",
        status.to_lowercase(),
        reason.unwrap_or("no reason given")
    )
}

fn this_exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the audience executable to run as the container")
}

fn train(args: TrainJobArgs) -> Result<()> {
    let config = args.config.resolve()?;
    output::check_bundle_output(
        &args.out,
        args.force,
        &super::config_inputs(&args.config, &config),
    )?;
    let data = config
        .data
        .path
        .clone()
        .context("no history: set data.path in audience.toml or pass --data")?;
    let name = match &args.job_name {
        Some(n) => n.clone(),
        None => job::job_name("audience-train", SystemTime::now()),
    };
    check_job_name(&name)?;
    if args.instance_count == 0 {
        bail!("--instance-count must be at least 1");
    }
    let job = TrainingJob {
        name: name.clone(),
        hyperparameters: hyperparameters_from_config(&config),
        channels: channels_for(
            &data,
            config.data.labels_path.as_deref(),
            args.validation.as_deref(),
            args.validation_labels.as_deref(),
        )?,
        instance_type: args.instance_type.clone(),
        instance_count: args.instance_count,
        volume_size_gb: args.volume_gb,
        max_runtime: Duration::from_secs(args.max_runtime),
    };
    match args.backend.backend {
        Backend::Local => train_local(&job, &args),
        Backend::Aws => train_aws(&job, &args),
    }
}

fn train_local(job: &TrainingJob, args: &TrainJobArgs) -> Result<()> {
    let root = &args.backend.local_root;
    eprintln!(
        "local training job {} ({} host{}) in {}",
        job.name,
        job.instance_count,
        if job.instance_count == 1 { "" } else { "s" },
        root.join(&job.name).display()
    );
    let multi = job.instance_count > 1;
    let outcome = local::train(job, root, &this_exe()?, &mut |host, line| {
        if multi {
            eprintln!("[{host}] {line}");
        } else {
            eprintln!("  {line}");
        }
    })?;
    let record = &outcome.record;
    eprintln!(
        "{}: {} after {:.1} s",
        job.name, record.status, record.seconds
    );
    match &outcome.model_archive {
        Some(archive_path) => {
            unpack_bundle(archive_path, &args.out, args.force)?;
            println!(
                "model bundle: {} (from {})",
                args.out.display(),
                archive_path.display()
            );
            Ok(())
        }
        None => Err(job_ended(
            "training",
            &job.name,
            &record.status,
            record.failure_reason.as_deref(),
        )),
    }
}

/// Unpacks model.tar.gz into the bundle folder `out`, replacing it only with --force, and
/// checks that it loads.
fn unpack_bundle(archive_path: &Path, out: &Path, force: bool) -> Result<()> {
    output::check_bundle_output(out, force, &output::Inputs::default())?;
    let (staged, _registered) = output::staging_dir_beside(out)?;
    archive::unpack(archive_path, staged.path())?;
    ModelBundle::load(staged.path(), None).with_context(|| {
        format!(
            "{}: the archive does not hold a model bundle",
            archive_path.display()
        )
    })?;
    let staged = staged.keep();
    output::replace_dir(&staged, out, force)?;
    Ok(())
}

#[cfg(feature = "sagemaker")]
fn connect(b: &BackendArgs) -> Result<audience::sagemaker::aws::Aws> {
    Ok(audience::sagemaker::aws::Aws::connect(
        &audience::sagemaker::aws::AwsSettings {
            endpoint_url: b.endpoint_url.clone(),
            region: b.region.clone(),
            profile: b.profile.clone(),
        },
    )?)
}

#[cfg(feature = "sagemaker")]
fn required<'a>(value: &'a Option<String>, flag: &str, env: &str) -> Result<&'a str> {
    value
        .as_deref()
        .with_context(|| format!("--backend aws needs {flag} (or {env})"))
}

#[cfg(feature = "sagemaker")]
fn train_aws(job: &TrainingJob, args: &TrainJobArgs) -> Result<()> {
    use audience::sagemaker::aws::S3Uri;
    let image = required(&args.aws.image, "--image", "AUDIENCE_IMAGE")?;
    let role = required(&args.aws.role, "--role", "AUDIENCE_ROLE")?;
    let prefix = S3Uri::parse(required(&args.aws.s3_prefix, "--s3", "AUDIENCE_S3")?)?;
    let aws = connect(&args.backend)?;
    let channels = aws.stage_channels(job, &prefix, &mut |m| eprintln!("{m}"))?;
    let arn = aws.create_training_job(job, image, role, &channels, &prefix)?;
    eprintln!("created training job {} ({arn})", job.name);
    if args.no_wait {
        println!("{}", job.name);
        return Ok(());
    }
    let poll = Duration::from_secs_f64(args.backend.poll.max(0.01));
    let status = aws.wait_training(&job.name, poll, &mut |s, t| {
        eprintln!("[{}] {} ({})", elapsed(t), s.status, s.secondary);
    })?;
    if status.status != "Completed" {
        return Err(job_ended(
            "training",
            &job.name,
            &status.status,
            status.failure_reason.as_deref(),
        ));
    }
    let artifacts = status
        .model_artifacts
        .context("the job completed but names no model artifacts")?;
    let download = tempfile::tempdir()?;
    let local_archive = download.path().join("model.tar.gz");
    eprintln!("downloading {artifacts}");
    aws.download(&S3Uri::parse(&artifacts)?, &local_archive, true)?;
    unpack_bundle(&local_archive, &args.out, args.force)?;
    println!("model bundle: {} (from {artifacts})", args.out.display());
    Ok(())
}

#[cfg(not(feature = "sagemaker"))]
fn train_aws(_: &TrainingJob, _: &TrainJobArgs) -> Result<()> {
    bail!("this audience was built without the `sagemaker` feature: only --backend local works")
}

/// The model as a local bundle (to plan DataProcessing) and a model.tar.gz to run.
struct TransformModel {
    bundle: ModelBundle,
    archive: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn transform_model(model: &Path, backend: &BackendArgs) -> Result<TransformModel> {
    let text = model.to_string_lossy();
    let temp = tempfile::tempdir()?;
    let archive_path = if text.starts_with("s3://") {
        #[cfg(feature = "sagemaker")]
        {
            let path = temp.path().join("model.tar.gz");
            connect(backend)?.download(
                &audience::sagemaker::aws::S3Uri::parse(&text)?,
                &path,
                true,
            )?;
            path
        }
        #[cfg(not(feature = "sagemaker"))]
        {
            let _ = backend;
            bail!("an s3:// model needs the `sagemaker` feature")
        }
    } else if model.is_dir() {
        let path = temp.path().join("model.tar.gz");
        archive::pack_dir(model, &path, true)?;
        path
    } else {
        model.to_path_buf()
    };
    let unpacked = temp.path().join("bundle");
    archive::unpack(&archive_path, &unpacked)?;
    let bundle = ModelBundle::load(&unpacked, None)
        .with_context(|| format!("{}: not a model bundle", model.display()))?;
    Ok(TransformModel {
        bundle,
        archive: archive_path,
        _temp: Some(temp),
    })
}

fn transform(args: TransformJobArgs) -> Result<()> {
    let mut inputs = output::Inputs::of(args.data.iter().map(PathBuf::as_path));
    inputs.add(&args.model);
    output::check_file_output(&args.out, args.force, &inputs)?;
    let name = match &args.job_name {
        Some(n) => n.clone(),
        None => job::job_name("audience-score", SystemTime::now()),
    };
    check_job_name(&name)?;
    let model = transform_model(&args.model, &args.backend)?;
    let delimiter = args
        .delimiter
        .as_deref()
        .map(audience::config::delimiter_byte)
        .transpose()?;
    // Stage every candidate file as the comma CSV SageMaker splits by line.
    let staging = tempfile::tempdir()?;
    let mut staged = Vec::new();
    let mut plan = None;
    let mut names = std::collections::BTreeSet::new();
    for input in &args.data {
        let file_name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "candidates.csv".into());
        if !names.insert(file_name.clone()) {
            bail!("two candidate files are named {file_name}: their .out files would clash");
        }
        let target = staging.path().join(&file_name);
        let s = stage_candidates(input, &model.bundle, delimiter, &target)?;
        let dp = data_processing_for(&model.bundle, &s.header)
            .with_context(|| format!("{}", input.display()))?;
        match &plan {
            None => plan = Some(dp),
            Some(p) if *p == dp => {}
            Some(_) => bail!(
                "{}: its columns are not in the same order as {}'s; one transform job needs one layout",
                input.display(),
                args.data[0].display()
            ),
        }
        eprintln!("staged {} ({} rows)", input.display(), s.rows);
        staged.push(target);
    }
    let data_processing = plan.context("no candidate file")?;
    let job = TransformJob {
        name: name.clone(),
        model_name: name.clone(),
        batch_strategy: match args.batch_strategy {
            StrategyArg::Multi => BatchStrategy::MultiRecord,
            StrategyArg::Single => BatchStrategy::SingleRecord,
        },
        max_payload_mb: args.max_payload_mb,
        max_concurrent: args.max_concurrent.max(1),
        data_processing,
        instance_type: args.instance_type.clone(),
        instance_count: args.instance_count.max(1),
    };
    eprintln!(
        "DataProcessing: InputFilter {}, JoinSource {}, OutputFilter {}",
        job.data_processing.input_filter,
        job.data_processing.join_source.as_api(),
        job.data_processing.output_filter
    );
    match args.backend.backend {
        Backend::Local => transform_local(&job, &model, &staged, &args),
        Backend::Aws => transform_aws(&job, &model, &staged, &args),
    }
}

fn transform_local(
    job: &TransformJob,
    model: &TransformModel,
    staged: &[PathBuf],
    args: &TransformJobArgs,
) -> Result<()> {
    let root = &args.backend.local_root;
    eprintln!(
        "local transform job {} in {}",
        job.name,
        root.join(&job.name).display()
    );
    let mut reported = 0usize;
    let mut progress = |records: usize| {
        if records >= reported + 100_000 {
            eprintln!("  {records} records");
            reported = records;
        }
    };
    let outcome = local::transform(
        job,
        &model.archive,
        staged,
        root,
        &this_exe()?,
        &mut progress,
    )?;
    for f in &outcome.files {
        match (&f.output, &f.error) {
            (Some(out), _) => eprintln!(
                "  {} -> {} ({} records in {} payloads)",
                f.input.file_name().unwrap_or_default().to_string_lossy(),
                out.display(),
                f.records,
                f.payloads
            ),
            (None, Some(e)) => eprintln!("  {}: failed: {e}", f.input.display()),
            _ => {}
        }
    }
    if outcome.record.status != "Completed" {
        // A local transform job ends Completed or Failed.
        let r = &outcome.record;
        return Err(job_ended(
            "transform",
            &job.name,
            &r.status,
            r.failure_reason.as_deref(),
        ));
    }
    let parts: Vec<PathBuf> = outcome
        .files
        .iter()
        .filter_map(|f| f.output.clone())
        .collect();
    let rows = local::merge_outputs(&parts, &args.out, args.force)?;
    println!("{rows} scores written to {}", args.out.display());
    Ok(())
}

#[cfg(feature = "sagemaker")]
fn transform_aws(
    job: &TransformJob,
    model: &TransformModel,
    staged: &[PathBuf],
    args: &TransformJobArgs,
) -> Result<()> {
    use audience::sagemaker::aws::S3Uri;
    let image = required(&args.aws.image, "--image", "AUDIENCE_IMAGE")?;
    let role = required(&args.aws.role, "--role", "AUDIENCE_ROLE")?;
    let prefix = S3Uri::parse(required(&args.aws.s3_prefix, "--s3", "AUDIENCE_S3")?)?;
    let aws = connect(&args.backend)?;
    let model_uri = if args.model.to_string_lossy().starts_with("s3://") {
        S3Uri::parse(&args.model.to_string_lossy())?
    } else {
        let to = prefix.join(&format!("{}/model/model.tar.gz", job.name));
        eprintln!("uploading the model to {to}");
        aws.upload(&model.archive, &to)?;
        to
    };
    let input = prefix.join(&format!("{}/input/", job.name));
    for file in staged {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let to = input.join(&name);
        eprintln!("uploading {name} to {to}");
        aws.upload(file, &to)?;
    }
    aws.create_model(&job.model_name, image, role, &model_uri)?;
    eprintln!("created model {}", job.model_name);
    let output = prefix.join(&format!("{}/output/", job.name));
    let arn = aws.create_transform_job(job, &input, &output)?;
    eprintln!("created transform job {} ({arn})", job.name);
    if args.no_wait {
        println!("{}", job.name);
        return Ok(());
    }
    let poll = Duration::from_secs_f64(args.backend.poll.max(0.01));
    let status = aws.wait_transform(&job.name, poll, &mut |s, t| {
        eprintln!("[{}] {}", elapsed(t), s.status);
    })?;
    if status.status != "Completed" {
        return Err(job_ended(
            "transform",
            &job.name,
            &status.status,
            status.failure_reason.as_deref(),
        ));
    }
    // One <file>.out per input file, in the input files' order.
    let listed = aws.list(&output)?;
    let download = tempfile::tempdir()?;
    let mut parts = Vec::new();
    for file in staged {
        let name = format!(
            "{}.out",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        let found = listed
            .iter()
            .find(|u| u.key.rsplit('/').next() == Some(name.as_str()))
            .with_context(|| format!("the transform job wrote no {name} under {output}"))?;
        let local_path = download.path().join(&name);
        eprintln!("downloading {found}");
        aws.download(found, &local_path, true)?;
        parts.push(local_path);
    }
    let rows = local::merge_outputs(&parts, &args.out, args.force)?;
    println!("{rows} scores written to {}", args.out.display());
    Ok(())
}

#[cfg(not(feature = "sagemaker"))]
fn transform_aws(
    _: &TransformJob,
    _: &TransformModel,
    _: &[PathBuf],
    _: &TransformJobArgs,
) -> Result<()> {
    bail!("this audience was built without the `sagemaker` feature: only --backend local works")
}

fn status(args: StatusArgs) -> Result<()> {
    match args.backend.backend {
        Backend::Local => {
            let r = LocalJobRecord::load(&args.backend.local_root, &args.job)?;
            println!("{} ({} job): {}", r.name, r.kind, r.status);
            println!("created: {}", r.created);
            if let Some(e) = &r.ended {
                println!("ended: {e} ({:.1} s)", r.seconds);
            }
            if let Some(reason) = &r.failure_reason {
                println!("failure reason: {reason}");
            }
            if let Some(a) = &r.artifacts {
                println!("artifacts: {}", a.display());
            }
            Ok(())
        }
        Backend::Aws => status_aws(&args),
    }
}

#[cfg(feature = "sagemaker")]
fn status_aws(args: &StatusArgs) -> Result<()> {
    let aws = connect(&args.backend)?;
    if args.transform {
        let s = aws.describe_transform_job(&args.job)?;
        println!("{} (transform job): {}", args.job, s.status);
        if let Some((i, j, o)) = &s.data_processing {
            println!("data processing: InputFilter {i}, JoinSource {j}, OutputFilter {o}");
        }
        if let Some(p) = &s.output_path {
            println!("output: {p}");
        }
        if let Some(r) = &s.failure_reason {
            println!("failure reason: {r}");
        }
    } else {
        let s = aws.describe_training_job(&args.job)?;
        println!(
            "{} (training job): {} ({})",
            args.job, s.status, s.secondary
        );
        for (status, message) in &s.transitions {
            println!("  {status}: {message}");
        }
        if let Some(t) = s.training_seconds {
            println!("training time: {t} s");
        }
        if let Some(a) = &s.model_artifacts {
            println!("model artifacts: {a}");
        }
        if let Some(r) = &s.failure_reason {
            println!("failure reason: {r}");
        }
    }
    Ok(())
}

#[cfg(not(feature = "sagemaker"))]
fn status_aws(_: &StatusArgs) -> Result<()> {
    bail!("this audience was built without the `sagemaker` feature: only --backend local works")
}
