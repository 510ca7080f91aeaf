//! The SageMaker training container contract (reference/sagemaker-byoc.md): read
//! /opt/ml/input/config, train from the channels under /opt/ml/input/data, write the model bundle
//! to /opt/ml/model, report metrics in log lines, and on failure write the reason to
//! /opt/ml/output/failure.
//!
//! Two channel layouts are accepted:
//! - `train` (and optionally `validation`): CSV or Parquet files, one or many, holding the label
//!   column; the rest of audience.toml's settings come as hyperparameters.
//! - the original example's `x_train`, `y_train`, `x_test`, `y_test` (features and labels in
//!   separate files) with its hyperparameters `tree_num_leaves` and `num_round`: a drop-in for its
//!   training script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::Config;
use crate::data::{self, HistorySource, Table};
use crate::model::bundle::ModelBundle;
use crate::model::train::{Cluster, RoundProgress};
use crate::model::{self, TrainingRun};
use crate::split::{self, Split};
use crate::{Error, Result};

/// The environment variable that moves the /opt/ml root (for tests and local emulation).
pub const ROOT_ENV: &str = "AUDIENCE_OPT_ML";

/// The /opt/ml tree of a SageMaker job.
#[derive(Debug, Clone)]
pub struct OptMl {
    pub root: PathBuf,
}

/// `resourceconfig.json`: which host this is among the job's hosts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ResourceConfig {
    pub current_host: String,
    pub hosts: Vec<String>,
    #[serde(default)]
    pub network_interface_name: Option<String>,
}

impl OptMl {
    /// `$AUDIENCE_OPT_ML`, or /opt/ml.
    pub fn from_env() -> OptMl {
        OptMl {
            root: std::env::var_os(ROOT_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/opt/ml")),
        }
    }

    pub fn config_file(&self, name: &str) -> PathBuf {
        self.root.join("input/config").join(name)
    }

    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.root.join("input/data").join(channel)
    }

    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    pub fn failure_file(&self) -> PathBuf {
        self.root.join("output/failure")
    }

    /// `hyperparameters.json` with every value unquoted (see `hyperparameter_value`); the
    /// SageMaker SDK's own `sagemaker_*` entries are dropped. A missing file means none.
    pub fn hyperparameters(&self) -> Result<BTreeMap<String, String>> {
        let path = self.config_file("hyperparameters.json");
        if !path.exists() {
            return Ok(BTreeMap::new());
        }
        let raw: BTreeMap<String, serde_json::Value> = read_json(&path)?;
        Ok(raw
            .into_iter()
            .filter(|(k, _)| !k.starts_with("sagemaker_"))
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => hyperparameter_value(&s),
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect())
    }

    /// The channel names of `inputdataconfig.json` (or, without it, the folders under
    /// input/data).
    pub fn channels(&self) -> Result<Vec<String>> {
        let path = self.config_file("inputdataconfig.json");
        if path.exists() {
            let config: BTreeMap<String, serde_json::Value> = read_json(&path)?;
            return Ok(config.into_keys().collect());
        }
        let dir = self.root.join("input/data");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// `resourceconfig.json`, or a single host `algo-1` when absent.
    pub fn resource_config(&self) -> Result<ResourceConfig> {
        let path = self.config_file("resourceconfig.json");
        if !path.exists() {
            return Ok(ResourceConfig {
                current_host: "algo-1".into(),
                hosts: vec!["algo-1".into()],
                network_interface_name: None,
            });
        }
        read_json(&path)
    }

    /// The data files of a channel: every regular file below its folder (S3 keys keep their
    /// sub-folders), hidden files aside, in path order.
    pub fn channel_files(&self, channel: &str) -> Result<Vec<PathBuf>> {
        let dir = self.channel_dir(channel);
        let mut files = Vec::new();
        collect_files(&dir, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(Error::data(
                &dir,
                format!("channel {channel:?} holds no data file"),
            ));
        }
        Ok(files)
    }

    /// Records a failure where SageMaker reads it (its first 1024 characters become the job's
    /// FailureReason).
    pub fn write_failure(&self, message: &str) -> std::io::Result<()> {
        let path = self.failure_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, message)
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::data(path, format!("malformed JSON: {e}")))
}

/// A hyperparameter value as SageMaker delivers it: always a string, which the SDK's framework
/// estimators JSON-encode (`"\"gbdt\""`, `"31"`). A string that is itself a JSON string literal
/// is unquoted; anything else is taken as it is.
pub fn hyperparameter_value(raw: &str) -> String {
    let trimmed = raw.trim();
    if trimmed.len() >= 2
        && trimmed.starts_with('"')
        && trimmed.ends_with('"')
        && let Ok(serde_json::Value::String(s)) = serde_json::from_str(trimmed)
    {
        return s;
    }
    trimmed.to_string()
}

/// Which channels the job was given.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `train` and an optional `validation` channel.
    Channels {
        train: Vec<PathBuf>,
        validation: Option<Vec<PathBuf>>,
    },
    /// The original example's four channels.
    OriginalExample {
        x_train: Vec<PathBuf>,
        y_train: Vec<PathBuf>,
        x_test: Vec<PathBuf>,
        y_test: Vec<PathBuf>,
    },
}

impl Layout {
    pub fn detect(opt: &OptMl) -> Result<Layout> {
        let channels = opt.channels()?;
        let has = |c: &str| channels.iter().any(|n| n == c);
        if has("x_train") && has("y_train") {
            for c in ["x_test", "y_test"] {
                if !has(c) {
                    return Err(Error::Config(format!(
                        "channels x_train and y_train need {c} too (the original example's four channels)"
                    )));
                }
            }
            return Ok(Layout::OriginalExample {
                x_train: opt.channel_files("x_train")?,
                y_train: opt.channel_files("y_train")?,
                x_test: opt.channel_files("x_test")?,
                y_test: opt.channel_files("y_test")?,
            });
        }
        let train = if has("train") {
            "train"
        } else if has("training") {
            "training"
        } else {
            return Err(Error::Config(format!(
                "no training channel: give a `train` channel (or x_train, y_train, x_test, y_test); got {}",
                if channels.is_empty() {
                    "none".to_string()
                } else {
                    channels.join(", ")
                }
            )));
        };
        Ok(Layout::Channels {
            train: opt.channel_files(train)?,
            validation: if has("validation") {
                Some(opt.channel_files("validation")?)
            } else {
                None
            },
        })
    }
}

/// The configuration a job's hyperparameters describe: audience.toml's settings by their key
/// names (`label`, `id`, `exclude`, `num_leaves`, ...; lists comma-separated), the original
/// example's `tree_num_leaves` and `num_round`, and any other key passed to LightGBM.
pub fn config_from_hyperparameters(
    hyperparameters: &BTreeMap<String, String>,
    layout: &Layout,
) -> Result<Config> {
    let mut config = Config::default();
    if matches!(layout, Layout::OriginalExample { .. }) {
        // The original script: lgb.train(params, data, num_round) with no early stopping.
        config.model.num_rounds = 10;
        config.model.early_stopping_rounds = 0;
        config.data.label = Some("label".into());
    }
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let number = |k: &str, v: &str| -> Result<f64> {
        v.parse::<f64>()
            .map_err(|_| Error::Config(format!("hyperparameter {k} = {v:?} is not a number")))
    };
    let whole = |k: &str, v: &str| -> Result<u32> {
        v.parse::<u32>()
            .map_err(|_| Error::Config(format!("hyperparameter {k} = {v:?} is not a whole number")))
    };
    for (key, value) in hyperparameters {
        let v = value.as_str();
        match key.as_str() {
            "label" => config.data.label = Some(v.into()),
            "id" => config.data.id = Some(v.into()),
            "positive" => config.data.positive = Some(list(v)),
            "negative" => config.data.negative = Some(list(v)),
            "exclude" => config.data.exclude = list(v),
            "categorical" => config.data.categorical = list(v),
            "delimiter" => config.data.delimiter = Some(v.into()),
            "table" => config.data.table = v.into(),
            "split_method" => {
                config.split.method = match v {
                    "random" => crate::config::SplitMethod::Random,
                    "time" => crate::config::SplitMethod::Time,
                    _ => {
                        return Err(Error::Config(format!(
                            "hyperparameter split_method = {v:?}: expected random or time"
                        )));
                    }
                }
            }
            "time_column" => config.split.time_column = Some(v.into()),
            "cutoff" => config.split.cutoff = Some(v.into()),
            "time_format" => config.split.time_format = Some(v.into()),
            "test_fraction" => config.split.test_fraction = number(key, v)?,
            "early_stopping_fraction" => config.split.early_stopping_fraction = number(key, v)?,
            "seed" => config.split.seed = whole(key, v)?.into(),
            "num_leaves" | "tree_num_leaves" => config.model.num_leaves = whole(key, v)?,
            "num_rounds" | "num_round" => config.model.num_rounds = whole(key, v)?,
            "learning_rate" => config.model.learning_rate = number(key, v)?,
            "early_stopping_rounds" => config.model.early_stopping_rounds = whole(key, v)?,
            // The original script's other arguments are paths the container knows already.
            "model_dir" | "distributed_port" => {}
            _ => {
                config
                    .model
                    .params
                    .insert(key.clone(), toml::Value::String(v.into()));
            }
        }
    }
    config.validate()?;
    Ok(config)
}

/// The rows of a job as one history, and which of them are held out.
pub struct JobData {
    pub history: data::History,
    pub split: Split,
}

/// Loads a job's channels and decides its split: a `validation` channel (or the original
/// example's x_test/y_test) is the holdout; otherwise the configured split applies.
pub fn load_job_data(layout: &Layout, config: &Config) -> Result<JobData> {
    let label = config.label()?;
    // Channels hold several files: `path` is unused, the files are loaded below.
    let source = HistorySource::from_config(config, Path::new(""))?;
    let options = data::history_load_options(&source);
    let labelled = |features: &[PathBuf], labels: &[PathBuf]| -> Result<Table> {
        let table = data::load_tables(features, &options)?;
        let labels = data::load_tables(labels, &options)?;
        data::attach_labels(table, &labels, label)
    };
    let (train, holdout, files): (Table, Option<Table>, Vec<PathBuf>) = match layout {
        Layout::Channels { train, validation } => {
            let mut files = train.clone();
            files.extend(validation.iter().flatten().cloned());
            (
                data::load_tables(train, &options)?,
                validation
                    .as_ref()
                    .map(|v| data::load_tables(v, &options))
                    .transpose()?,
                files,
            )
        }
        Layout::OriginalExample {
            x_train,
            y_train,
            x_test,
            y_test,
        } => {
            let files = [x_train, y_train, x_test, y_test]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            (
                labelled(x_train, y_train)?,
                Some(labelled(x_test, y_test)?),
                files,
            )
        }
    };
    let train_rows = train.num_rows();
    let table = match holdout {
        Some(h) => data::concat_tables(vec![train, h])?,
        None => train,
    };
    let total = table.num_rows();
    let sha256 = data::files_sha256(&files)?;
    let history = data::history_from_table(table, &source, sha256, None)?;
    let split = if train_rows < total {
        let training: Vec<usize> = (0..train_rows).collect();
        let early_fraction = if config.model.early_stopping_rounds == 0 {
            0.0
        } else {
            config.split.early_stopping_fraction
        };
        let (fit, early_stopping) = split::stratified(
            &training,
            &history.labels,
            early_fraction,
            config.split.seed.wrapping_add(1),
        );
        Split {
            fit,
            early_stopping,
            holdout: (train_rows..total).collect(),
            time_ranges: None,
        }
    } else {
        model::plan_split(&history, config)?
    };
    Ok(JobData { history, split })
}

/// Runs a training job: configuration from hyperparameters, data from channels, the model
/// bundle into /opt/ml/model. `log` receives the lines SageMaker's MetricDefinitions match.
pub fn train_job(
    opt: &OptMl,
    progress: &mut dyn FnMut(RoundProgress) -> bool,
    log: &mut dyn FnMut(&str),
) -> Result<TrainingRun> {
    let hyperparameters = opt.hyperparameters()?;
    let layout = Layout::detect(opt)?;
    let config = config_from_hyperparameters(&hyperparameters, &layout)?;
    let resources = opt.resource_config()?;
    let cluster = cluster_for(&resources, &hyperparameters)?;
    let job = load_job_data(&layout, &config)?;
    log(&format!(
        "audience: {} rows ({} conversions): {} fit, {} early stopping, {} held out",
        job.history.table.num_rows(),
        job.history.positives(),
        job.split.fit.len(),
        job.split.early_stopping.len(),
        job.split.holdout.len()
    ));
    if let Some(c) = &cluster {
        log(&format!(
            "audience: data-parallel training, host {} of {} ({}), {} fit rows on this host",
            c.rank + 1,
            c.num_machines,
            resources.current_host,
            (c.rank..job.split.fit.len())
                .step_by(c.num_machines)
                .count()
        ));
    }
    let run = model::train_on_split(&job.history, &config, job.split, cluster.as_ref(), progress)?;
    let metrics = &run.manifest.metrics;
    let mut line = |name: &str, value: Option<f64>| match value {
        Some(v) => log(&format!("{name}: {v:.6}")),
        None => log(&format!("{name}: undefined")),
    };
    line("train-auc", metrics.fit.auc);
    line("train-logloss", metrics.fit.log_loss);
    if let Some(e) = &metrics.early_stopping {
        line("early-stopping-auc", e.auc);
    }
    if let Some(h) = &metrics.holdout {
        line("validation-auc", h.auc);
        line("validation-logloss", h.log_loss);
    }
    // SageMaker merges every host's /opt/ml/model: the first host writes the (identical) model.
    if cluster.as_ref().is_none_or(|c| c.rank == 0) {
        write_bundle_into(&opt.model_dir(), &run)?;
    } else {
        log("audience: the first host writes the model");
    }
    Ok(run)
}

/// The port LightGBM's hosts listen on for each other, unless `distributed_port` says otherwise.
pub const DEFAULT_DISTRIBUTED_PORT: u16 = 12400;

/// This host's place among the job's hosts, for more than one. Hosts are found by name through
/// DNS (SageMaker's algo-1, algo-2, ...), or from AUDIENCE_HOST_ADDRESSES
/// (`algo-1=127.0.0.1:40001,...`), which the local backend sets since its hosts share loopback.
pub fn cluster_for(
    resources: &ResourceConfig,
    hyperparameters: &BTreeMap<String, String>,
) -> Result<Option<Cluster>> {
    use std::net::ToSocketAddrs;
    if resources.hosts.len() < 2 {
        return Ok(None);
    }
    let rank = resources
        .hosts
        .iter()
        .position(|h| *h == resources.current_host)
        .ok_or_else(|| {
            Error::Config(format!(
                "resourceconfig.json: current_host {:?} is not among hosts {:?}",
                resources.current_host, resources.hosts
            ))
        })?;
    let port = match hyperparameters.get("distributed_port") {
        Some(p) => p.parse::<u16>().map_err(|_| {
            Error::Config(format!(
                "hyperparameter distributed_port = {p:?} is not a port"
            ))
        })?,
        None => DEFAULT_DISTRIBUTED_PORT,
    };
    let mapped = match std::env::var(crate::sagemaker::local::HOST_ADDRESSES_ENV) {
        Ok(text) => crate::sagemaker::local::host_addresses(&text)?,
        Err(_) => BTreeMap::new(),
    };
    let mut addresses = Vec::with_capacity(resources.hosts.len());
    for host in &resources.hosts {
        let address = match mapped.get(host) {
            Some(a) => *a,
            None => (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.find(|a| a.is_ipv4()))
                .ok_or_else(|| {
                    Error::Config(format!("cannot resolve the address of host {host:?}"))
                })?,
        };
        addresses.push(address);
    }
    Ok(Some(Cluster {
        machines: addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
        local_port: addresses[rank].port(),
        num_machines: addresses.len(),
        rank,
        timeout_minutes: 5,
    }))
}

/// Writes the bundle's files into an existing directory (SageMaker owns /opt/ml/model itself).
pub fn write_bundle_into(dir: &Path, run: &TrainingRun) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    ModelBundle::write_into(dir, &run.manifest, &run.model_text)
}

/// The MetricDefinitions that match the lines `train_job` logs (Name, Regex).
pub const METRIC_DEFINITIONS: [(&str, &str); 5] = [
    ("train:auc", r"train-auc: ([0-9.]+)"),
    ("train:logloss", r"train-logloss: ([0-9.]+)"),
    ("early-stopping:auc", r"early-stopping-auc: ([0-9.]+)"),
    ("validation:auc", r"validation-auc: ([0-9.]+)"),
    ("validation:logloss", r"validation-logloss: ([0-9.]+)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperparameter_values_are_unquoted() {
        assert_eq!(hyperparameter_value("31"), "31");
        assert_eq!(hyperparameter_value("\"31\""), "31");
        assert_eq!(hyperparameter_value("\"gbdt\""), "gbdt");
        assert_eq!(hyperparameter_value("gbdt"), "gbdt");
        assert_eq!(hyperparameter_value("\"a \\\"b\\\"\""), "a \"b\"");
    }

    #[test]
    fn original_example_hyperparameters() {
        let layout = Layout::OriginalExample {
            x_train: vec![],
            y_train: vec![],
            x_test: vec![],
            y_test: vec![],
        };
        let hp: BTreeMap<String, String> = [
            ("tree_num_leaves", "31"),
            ("num_round", "5"),
            ("bagging_fraction", "0.8"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = config_from_hyperparameters(&hp, &layout).unwrap();
        assert_eq!(c.model.num_leaves, 31);
        assert_eq!(c.model.num_rounds, 5);
        assert_eq!(c.model.early_stopping_rounds, 0);
        assert_eq!(c.data.label.as_deref(), Some("label"));
        assert_eq!(
            crate::config::param_value(&c.model.params["bagging_fraction"]),
            "0.8"
        );
        let bad: BTreeMap<String, String> = [("num_round".to_string(), "five".to_string())]
            .into_iter()
            .collect();
        assert!(config_from_hyperparameters(&bad, &layout).is_err());
    }
}
