//! The SageMaker jobs on AWS, through the AWS SDK for Rust: S3 for data and models, SageMaker
//! for CreateTrainingJob, CreateModel, CreateTransformJob and their Describe calls.
//!
//! Configuration comes from the standard AWS chain (environment, profiles, SSO, instance
//! roles); `endpoint_url` (or AWS_ENDPOINT_URL) points both clients at a compatible server such
//! as moto. Credentials are never printed.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemaker::error::ProvideErrorMetadata;
use aws_sdk_sagemaker::types as sm;
use tokio::io::AsyncWriteExt;

use crate::output::AtomicFile;
use crate::sagemaker::container::METRIC_DEFINITIONS;
use crate::sagemaker::job::{DataLocation, TrainingJob, TransformJob};
use crate::{Error, Result};

/// Where and as whom to talk to AWS; unset fields fall back to the standard chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// The two clients of a session.
pub struct Aws {
    s3: aws_sdk_s3::Client,
    sagemaker: aws_sdk_sagemaker::Client,
}

pub use crate::remote::S3Uri;

/// The HTTP status an SDK call was answered with, when it got an answer.
fn http_status<E>(
    err: &aws_sdk_sagemaker::error::SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The texts of an error's chain of causes, from `first` inwards.
fn cause_texts(first: Option<&(dyn std::error::Error + 'static)>) -> Vec<String> {
    std::iter::successors(first, |e| e.source())
        .map(|e| e.to_string())
        .collect()
}

/// Turns an SDK error into one line that says what failed and what to check.
fn aws_error<E>(
    what: &str,
    err: aws_sdk_sagemaker::error::SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sagemaker::error::SdkError;
    // A refusal is a refusal whatever its body: some compatible servers answer a JSON-protocol
    // call with an XML error the SDK cannot parse.
    if let Some(raw) = err.raw_response()
        && matches!(http_status(&err), Some(401 | 403))
        && !matches!(err, SdkError::ServiceError(_))
    {
        let body = raw
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let tag = |name: &str| {
            body.split(&format!("<{name}>"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("</{name}>")).next())
                .map(str::to_string)
        };
        let code = tag("Code").unwrap_or_else(|| format!("HTTP {}", raw.status().as_u16()));
        let text = tag("Message").unwrap_or_default();
        return Error::Aws(format!(
            "{what}: access denied ({code}): {text} (check the AWS credentials, profile and \
             the role's permissions)"
        ));
    }
    let message = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("error");
            let text = e.message().unwrap_or("").to_string();
            match code {
                "AccessDenied"
                | "AccessDeniedException"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredToken"
                | "ExpiredTokenException"
                | "AuthFailure" => format!(
                    "access denied ({code}): {text} (check the AWS credentials, profile and \
                     the role's permissions)"
                ),
                _ => format!("{code}: {text}"),
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            // The innermost causes say why (connection refused, a name that does not resolve).
            let mut causes = Vec::new();
            for text in cause_texts(std::error::Error::source(&err)) {
                if !causes.contains(&text) {
                    causes.push(text);
                }
            }
            if causes.is_empty() {
                causes.push(err.to_string());
            }
            format!("cannot reach AWS: {}", causes.join(": "))
        }
        other => {
            // Keep the chain of causes: they say e.g. that no credentials were found.
            cause_texts(Some(other)).join(": ")
        }
    };
    Error::Aws(format!("{what}: {message}"))
}

/// An S3 error on `uri`: a bucket or key that is not there is the user's path (an I/O "not
/// found" on the address, exit code 2); anything else as `aws_error` says.
fn s3_error<E>(
    what: &str,
    uri: &S3Uri,
    err: aws_sdk_sagemaker::error::SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if http_status(&err) == Some(404) {
        let (code, text) = match err.as_service_error() {
            Some(e) => (
                e.code().unwrap_or("NotFound").to_string(),
                e.message().unwrap_or("").to_string(),
            ),
            None => ("NotFound".to_string(), String::new()),
        };
        let why = if code == "NoSuchBucket" {
            format!("no such bucket ({code}: {text})")
        } else {
            format!(
                "no such object ({code}{}{text})",
                if text.is_empty() { "" } else { ": " }
            )
        };
        return Error::io(
            uri.to_string(),
            std::io::Error::new(std::io::ErrorKind::NotFound, why),
        );
    }
    aws_error(what, err)
}

/// Whether an error may be SageMaker's answer for an unknown job: a ValidationException (which
/// the SDK does not model for Describe calls) or ResourceNotFound. SageMaker also answers other
/// faults with a ValidationException, so the caller asks the job list before saying the job does
/// not exist; nothing here reads the message text, which is the service's and may change.
fn may_be_missing<E: ProvideErrorMetadata, R>(
    err: &aws_sdk_sagemaker::error::SdkError<E, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| {
        matches!(
            e.code(),
            Some("ValidationException") | Some("ResourceNotFound")
        )
    })
}

/// A Describe call's error: one that may mean an unknown job is settled by `absent` (the job
/// list read by exact name, awaited only then) and the job named as unknown; anything else as
/// `aws_error` says.
async fn describe_error<E>(
    kind: &str,
    name: &str,
    err: aws_sdk_sagemaker::error::SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
    absent: impl Future<Output = bool>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if may_be_missing(&err) && absent.await {
        Error::Aws(format!("no {kind} job named {name:?}"))
    } else {
        aws_error(&format!("describing {kind} job {name}"), err)
    }
}

/// Whether a job list, read a page at a time by `next_page` (None after the last; each page
/// Some(whether it holds the job), or None when it could not be read), holds no such job. A list
/// that cannot be read says the job may exist, so the caller reports the error it had.
async fn none_listed(mut next_page: impl AsyncFnMut() -> Option<Option<bool>>) -> bool {
    while let Some(page) = next_page().await {
        if page != Some(false) {
            return false;
        }
    }
    true
}

/// Polls `describe` every `interval` until the job ends; `on_change` hears each new `key` of the
/// status and the time since waiting began.
fn poll_until_finished<S, K: PartialEq>(
    interval: Duration,
    mut describe: impl FnMut() -> Result<S>,
    key: impl Fn(&S) -> K,
    finished: impl Fn(&S) -> bool,
    on_change: &mut dyn FnMut(&S, Duration),
) -> Result<S> {
    let started = Instant::now();
    let mut last: Option<K> = None;
    loop {
        let status = describe()?;
        let now = key(&status);
        if last.as_ref() != Some(&now) {
            on_change(&status, started.elapsed());
            last = Some(now);
        }
        if finished(&status) {
            return Ok(status);
        }
        std::thread::sleep(interval);
    }
}

/// A training job as DescribeTrainingJob reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingStatus {
    pub status: String,
    pub secondary: String,
    pub failure_reason: Option<String>,
    pub model_artifacts: Option<String>,
    /// (status, message) of every secondary transition so far.
    pub transitions: Vec<(String, String)>,
    pub training_seconds: Option<i32>,
}

impl TrainingStatus {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "Completed" | "Failed" | "Stopped")
    }
}

/// A transform job as DescribeTransformJob reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformStatus {
    pub status: String,
    pub failure_reason: Option<String>,
    pub output_path: Option<String>,
    pub data_processing: Option<(String, String, String)>,
}

impl TransformStatus {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "Completed" | "Failed" | "Stopped")
    }
}

impl Aws {
    /// Loads the AWS configuration chain and builds both clients.
    pub fn connect(settings: &AwsSettings) -> Result<Aws> {
        crate::data::runtime().block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = &settings.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            if let Some(profile) = &settings.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(url) = &settings.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            let config = loader.load().await;
            if config.region().is_none() {
                return Err(Error::Config(
                    "no AWS region: set AWS_REGION (or a profile's region), or pass --region"
                        .into(),
                ));
            }
            let custom_endpoint = settings.endpoint_url.is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            let mut s3 = aws_sdk_s3::config::Builder::from(&config);
            if custom_endpoint {
                // Compatible servers answer on one host (no bucket subdomains), and not all of
                // them take the SDK's default streaming checksums.
                s3 = s3
                    .force_path_style(true)
                    .request_checksum_calculation(
                        aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                    )
                    .response_checksum_validation(
                        aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                    );
            }
            Ok(Aws {
                s3: aws_sdk_s3::Client::from_conf(s3.build()),
                sagemaker: aws_sdk_sagemaker::Client::new(&config),
            })
        })
    }

    /// Uploads one file (streamed from disk).
    pub fn upload(&self, file: &Path, to: &S3Uri) -> Result<()> {
        crate::data::runtime().block_on(async {
            let body = ByteStream::from_path(file)
                .await
                .map_err(|e| Error::io(file, std::io::Error::other(e)))?;
            self.s3
                .put_object()
                .bucket(&to.bucket)
                .key(&to.key)
                .body(body)
                .send()
                .await
                .map_err(|e| aws_error(&format!("uploading {} to {to}", file.display()), e))?;
            Ok(())
        })
    }

    /// Whether an object exists at `at` (a HEAD request; "not found" is false, other errors are
    /// errors).
    pub fn exists(&self, at: &S3Uri) -> Result<bool> {
        crate::data::runtime().block_on(async {
            match self
                .s3
                .head_object()
                .bucket(&at.bucket)
                .key(&at.key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
                Err(e) => Err(s3_error(&format!("looking for {at}"), at, e)),
            }
        })
    }

    /// Whether `bucket` exists and may be used (a HEAD request on the bucket).
    pub fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        crate::data::runtime().block_on(async {
            match self.s3.head_bucket().bucket(bucket).send().await {
                Ok(_) => Ok(true),
                Err(e) if http_status(&e) == Some(404) => Ok(false),
                Err(e) => Err(aws_error(&format!("looking for bucket {bucket}"), e)),
            }
        })
    }

    /// Uploads one file as a new object: with `replace` false the upload is conditional
    /// (If-None-Match: *), so an object that appeared meanwhile (another run's) is never replaced.
    pub fn upload_new(&self, file: &Path, to: &S3Uri, replace: bool) -> Result<()> {
        crate::data::runtime().block_on(async {
            let body = ByteStream::from_path(file)
                .await
                .map_err(|e| Error::io(file, std::io::Error::other(e)))?;
            let mut put = self
                .s3
                .put_object()
                .bucket(&to.bucket)
                .key(&to.key)
                .body(body);
            if !replace {
                put = put.if_none_match("*");
            }
            match put.send().await {
                Ok(_) => Ok(()),
                Err(e) if http_status(&e) == Some(412) => Err(Error::Output {
                    path: to.to_string().into(),
                    message: "appeared while this run was writing it (another run?); pass \
                                  --force to replace it"
                        .into(),
                }),
                Err(e) => Err(s3_error(&format!("uploading to {to}"), to, e)),
            }
        })
    }

    /// Downloads one object into `file`, atomically.
    pub fn download(&self, from: &S3Uri, file: &Path, force: bool) -> Result<()> {
        let mut out = AtomicFile::create(file, force)?;
        crate::data::runtime().block_on(async {
            let object = self
                .s3
                .get_object()
                .bucket(&from.bucket)
                .key(&from.key)
                .send()
                .await
                .map_err(|e| s3_error(&format!("downloading {from}"), from, e))?;
            let mut body = object.body;
            let std_file = out.file().try_clone().map_err(|e| Error::io(file, e))?;
            let mut writer = tokio::fs::File::from_std(std_file);
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| Error::Aws(format!("downloading {from}: {e}")))?
            {
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(file, e))?;
            }
            writer.flush().await.map_err(|e| Error::io(file, e))?;
            Ok::<(), Error>(())
        })?;
        out.commit(force)
    }

    /// The keys under a prefix, in key order.
    pub fn list(&self, prefix: &S3Uri) -> Result<Vec<S3Uri>> {
        crate::data::runtime().block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket(&prefix.bucket)
                .prefix(&prefix.key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_error(&format!("listing {prefix}"), prefix, e))?;
                for object in page.contents() {
                    if let Some(key) = object.key() {
                        keys.push(S3Uri {
                            bucket: prefix.bucket.clone(),
                            key: key.to_string(),
                        });
                    }
                }
            }
            keys.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(keys)
        })
    }

    /// Uploads a training job's local channel files under `<prefix>/<job>/input/<channel>/`
    /// and returns each channel's S3 prefix (S3 channels are kept as given).
    pub fn stage_channels(
        &self,
        job: &TrainingJob,
        prefix: &S3Uri,
        report: &mut dyn FnMut(&str),
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for channel in &job.channels {
            let uri = match &channel.data {
                DataLocation::S3(uri) => uri.clone(),
                DataLocation::Files(files) => {
                    let dir = prefix.join(&format!("{}/input/{}/", job.name, channel.name));
                    for file in files {
                        let name = file
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "data".into());
                        let to = dir.join(&name);
                        report(&format!("uploading {} to {to}", file.display()));
                        self.upload(file, &to)?;
                    }
                    dir.to_string()
                }
            };
            out.push((channel.name.clone(), uri));
        }
        Ok(out)
    }

    /// CreateTrainingJob for our container; returns the job's ARN.
    pub fn create_training_job(
        &self,
        job: &TrainingJob,
        image: &str,
        role: &str,
        channels: &[(String, String)],
        output: &S3Uri,
    ) -> Result<String> {
        let metric_definitions: Vec<sm::MetricDefinition> = METRIC_DEFINITIONS
            .iter()
            .map(|(name, regex)| {
                sm::MetricDefinition::builder()
                    .name(*name)
                    .regex(*regex)
                    .build()
            })
            .collect();
        let algorithm = sm::AlgorithmSpecification::builder()
            .training_image(image)
            .training_input_mode(sm::TrainingInputMode::File)
            .set_metric_definitions(Some(metric_definitions))
            .build();
        let mut request = self
            .sagemaker
            .create_training_job()
            .training_job_name(&job.name)
            .role_arn(role)
            .algorithm_specification(algorithm)
            .set_hyper_parameters(Some(job.hyperparameters.clone().into_iter().collect()))
            .output_data_config(
                sm::OutputDataConfig::builder()
                    .s3_output_path(output.to_string())
                    .build(),
            )
            .resource_config(
                sm::ResourceConfig::builder()
                    .instance_type(sm::TrainingInstanceType::from(job.instance_type.as_str()))
                    .instance_count(job.instance_count as i32)
                    .volume_size_in_gb(job.volume_size_gb as i32)
                    .build(),
            )
            .stopping_condition(
                sm::StoppingCondition::builder()
                    .max_runtime_in_seconds(job.max_runtime.as_secs().min(i32::MAX as u64) as i32)
                    .build(),
            );
        for (name, uri) in channels {
            let content_type = job
                .channels
                .iter()
                .find(|c| &c.name == name)
                .and_then(|c| c.content_type.clone());
            let source = sm::S3DataSource::builder()
                .s3_data_type(sm::S3DataType::S3Prefix)
                .s3_uri(uri)
                .s3_data_distribution_type(sm::S3DataDistribution::FullyReplicated)
                .build();
            request = request.input_data_config(
                sm::Channel::builder()
                    .channel_name(name)
                    .data_source(sm::DataSource::builder().s3_data_source(source).build())
                    .set_content_type(content_type)
                    .input_mode(sm::TrainingInputMode::File)
                    .build(),
            );
        }
        crate::data::runtime().block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| aws_error(&format!("creating training job {}", job.name), e))?;
            Ok(response.training_job_arn().unwrap_or_default().to_string())
        })
    }

    /// Whether the job list, filtered by name, holds no training job named `name` exactly.
    async fn training_job_absent(&self, name: &str) -> bool {
        let request = self.sagemaker.list_training_jobs().name_contains(name);
        let mut pages = request.into_paginator().send();
        none_listed(async || {
            let page = pages.next().await?;
            Some(page.ok().map(|page| {
                page.training_job_summaries()
                    .iter()
                    .any(|j| j.training_job_name() == Some(name))
            }))
        })
        .await
    }

    pub fn describe_training_job(&self, name: &str) -> Result<TrainingStatus> {
        crate::data::runtime().block_on(async {
            let d = match self
                .sagemaker
                .describe_training_job()
                .training_job_name(name)
                .send()
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    let absent = self.training_job_absent(name);
                    return Err(describe_error("training", name, e, absent).await);
                }
            };
            Ok(TrainingStatus {
                status: d
                    .training_job_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                secondary: d
                    .secondary_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                failure_reason: d
                    .failure_reason()
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
                model_artifacts: d
                    .model_artifacts()
                    .and_then(|m| m.s3_model_artifacts())
                    .map(str::to_string),
                transitions: d
                    .secondary_status_transitions()
                    .iter()
                    .map(|t| {
                        (
                            t.status()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            t.status_message().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                training_seconds: d.training_time_in_seconds(),
            })
        })
    }

    /// Polls DescribeTrainingJob every `interval` until the job ends; `on_change` hears each
    /// new (status, secondary status) and the time since waiting began.
    pub fn wait_training(
        &self,
        name: &str,
        interval: Duration,
        on_change: &mut dyn FnMut(&TrainingStatus, Duration),
    ) -> Result<TrainingStatus> {
        poll_until_finished(
            interval,
            || self.describe_training_job(name),
            |s| (s.status.clone(), s.secondary.clone()),
            TrainingStatus::finished,
            on_change,
        )
    }

    /// CreateModel: our image serving the model.tar.gz at `model_data`.
    pub fn create_model(
        &self,
        name: &str,
        image: &str,
        role: &str,
        model_data: &S3Uri,
    ) -> Result<()> {
        let container = sm::ContainerDefinition::builder()
            .image(image)
            .model_data_url(model_data.to_string())
            .mode(sm::ContainerMode::SingleModel)
            .build();
        crate::data::runtime().block_on(async {
            self.sagemaker
                .create_model()
                .model_name(name)
                .execution_role_arn(role)
                .primary_container(container)
                .send()
                .await
                .map_err(|e| aws_error(&format!("creating model {name}"), e))?;
            Ok(())
        })
    }

    /// CreateTransformJob: CSV split by line, MultiRecord payloads, DataProcessing as planned.
    pub fn create_transform_job(
        &self,
        job: &TransformJob,
        input: &S3Uri,
        output: &S3Uri,
    ) -> Result<String> {
        let dp = &job.data_processing;
        let request = self
            .sagemaker
            .create_transform_job()
            .transform_job_name(&job.name)
            .model_name(&job.model_name)
            .batch_strategy(sm::BatchStrategy::from(job.batch_strategy.as_api()))
            .max_payload_in_mb(job.max_payload_mb as i32)
            .max_concurrent_transforms(job.max_concurrent as i32)
            .transform_input(
                sm::TransformInput::builder()
                    .data_source(
                        sm::TransformDataSource::builder()
                            .s3_data_source(
                                sm::TransformS3DataSource::builder()
                                    .s3_data_type(sm::S3DataType::S3Prefix)
                                    .s3_uri(input.to_string())
                                    .build(),
                            )
                            .build(),
                    )
                    .content_type("text/csv")
                    .split_type(sm::SplitType::Line)
                    .build(),
            )
            .transform_output(
                sm::TransformOutput::builder()
                    .s3_output_path(output.to_string())
                    .accept("text/csv")
                    .assemble_with(sm::AssemblyType::Line)
                    .build(),
            )
            .transform_resources(
                sm::TransformResources::builder()
                    .instance_type(sm::TransformInstanceType::from(job.instance_type.as_str()))
                    .instance_count(job.instance_count as i32)
                    .build(),
            )
            .data_processing(
                sm::DataProcessing::builder()
                    .input_filter(dp.input_filter.to_string())
                    .join_source(sm::JoinSource::from(dp.join_source.as_api()))
                    .output_filter(dp.output_filter.to_string())
                    .build(),
            );
        crate::data::runtime().block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| aws_error(&format!("creating transform job {}", job.name), e))?;
            Ok(response.transform_job_arn().unwrap_or_default().to_string())
        })
    }

    /// Whether the job list, filtered by name, holds no transform job named `name` exactly.
    async fn transform_job_absent(&self, name: &str) -> bool {
        let request = self.sagemaker.list_transform_jobs().name_contains(name);
        let mut pages = request.into_paginator().send();
        none_listed(async || {
            let page = pages.next().await?;
            Some(page.ok().map(|page| {
                page.transform_job_summaries()
                    .iter()
                    .any(|j| j.transform_job_name() == Some(name))
            }))
        })
        .await
    }

    pub fn describe_transform_job(&self, name: &str) -> Result<TransformStatus> {
        crate::data::runtime().block_on(async {
            let d = match self
                .sagemaker
                .describe_transform_job()
                .transform_job_name(name)
                .send()
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    let absent = self.transform_job_absent(name);
                    return Err(describe_error("transform", name, e, absent).await);
                }
            };
            Ok(TransformStatus {
                status: d
                    .transform_job_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                failure_reason: d
                    .failure_reason()
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
                output_path: d
                    .transform_output()
                    .and_then(|o| o.s3_output_path())
                    .map(str::to_string),
                data_processing: d.data_processing().map(|p| {
                    (
                        p.input_filter().unwrap_or("$").to_string(),
                        p.join_source()
                            .map(|j| j.as_str().to_string())
                            .unwrap_or_else(|| "None".into()),
                        p.output_filter().unwrap_or("$").to_string(),
                    )
                }),
            })
        })
    }

    pub fn wait_transform(
        &self,
        name: &str,
        interval: Duration,
        on_change: &mut dyn FnMut(&TransformStatus, Duration),
    ) -> Result<TransformStatus> {
        poll_until_finished(
            interval,
            || self.describe_transform_job(name),
            |s| s.status.clone(),
            TransformStatus::finished,
            on_change,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris() {
        let u = S3Uri::parse("s3://bucket/some/prefix").unwrap();
        assert_eq!(u.bucket, "bucket");
        assert_eq!(u.key, "some/prefix");
        assert_eq!(
            u.join("job/output").to_string(),
            "s3://bucket/some/prefix/job/output"
        );
        let root = S3Uri::parse("s3://bucket").unwrap();
        assert_eq!(root.join("x").to_string(), "s3://bucket/x");
        assert_eq!(
            S3Uri::parse("s3://b/p/").unwrap().join("x").to_string(),
            "s3://b/p/x"
        );
        assert!(S3Uri::parse("https://b/p").is_err());
        assert!(S3Uri::parse("s3:///p").is_err());
    }
}
