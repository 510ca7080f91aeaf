//! What a SageMaker job is, independent of where it runs: the training job's hyperparameters and
//! channels, the transform job's batching and DataProcessing. The AWS backend turns these into
//! API requests; the local backend runs them itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::{Config, SplitMethod, param_value};
use crate::model::bundle::ModelBundle;
use crate::sagemaker::dataprocessing::{ColumnFilter, DataProcessing, JoinSource};
use crate::{Error, Result};

/// The hyperparameters that carry `config` to the container (`config_from_hyperparameters`
/// reads them back). Every setting is written, defaults included: the job's record on SageMaker
/// then says exactly what it trained with.
pub fn hyperparameters_from_config(config: &Config) -> BTreeMap<String, String> {
    let mut hp = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        hp.insert(k.to_string(), v);
    };
    let d = &config.data;
    if let Some(label) = &d.label {
        put("label", label.clone());
    }
    if let Some(id) = &d.id {
        put("id", id.clone());
    }
    if let Some(p) = &d.positive {
        put("positive", p.join(","));
    }
    if let Some(n) = &d.negative {
        put("negative", n.join(","));
    }
    if !d.exclude.is_empty() {
        put("exclude", d.exclude.join(","));
    }
    if !d.categorical.is_empty() {
        put("categorical", d.categorical.join(","));
    }
    if let Some(delimiter) = &d.delimiter {
        put("delimiter", delimiter.clone());
    }
    put("table", d.table.clone());
    let s = &config.split;
    put(
        "split_method",
        match s.method {
            SplitMethod::Random => "random",
            SplitMethod::Time => "time",
        }
        .into(),
    );
    if let Some(c) = &s.time_column {
        put("time_column", c.clone());
    }
    if let Some(c) = &s.cutoff {
        put("cutoff", c.clone());
    }
    if let Some(f) = &s.time_format {
        put("time_format", f.clone());
    }
    put("test_fraction", s.test_fraction.to_string());
    put(
        "early_stopping_fraction",
        s.early_stopping_fraction.to_string(),
    );
    put("seed", s.seed.to_string());
    let m = &config.model;
    put("num_leaves", m.num_leaves.to_string());
    put("num_rounds", m.num_rounds.to_string());
    put("learning_rate", m.learning_rate.to_string());
    put("early_stopping_rounds", m.early_stopping_rounds.to_string());
    for (k, v) in &m.params {
        put(k, param_value(v));
    }
    hp
}

/// A job name SageMaker accepts (`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`), unique to the
/// millisecond: `<prefix>-YYYYMMDD-HHMMSS-mmm`. Names are used once, and a job can take less than
/// a second (a small local training, a `--no-wait` submission), so whole seconds would let two
/// jobs started one after the other collide.
pub fn job_name(prefix: &str, now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    // 2026-11-25T18:36:31.042Z -> 20261125-183631-042
    let digits: String = stamp.chars().filter(|c| c.is_ascii_digit()).collect();
    format!(
        "{prefix}-{}-{}-{}",
        &digits[..8],
        &digits[8..14],
        &digits[14..17]
    )
}

/// Checks a job or model name against SageMaker's pattern, so a bad name fails before any upload.
pub fn check_job_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "job name {name:?}: SageMaker needs 1 to 63 letters, digits and hyphens, \
             starting and ending with a letter or digit"
        )))
    }
}

/// Where a channel's data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataLocation {
    /// Local files, uploaded (AWS) or copied (local) under the channel.
    Files(Vec<PathBuf>),
    /// An S3 prefix or object, used as given.
    S3(String),
}

impl DataLocation {
    pub fn from_arg(path: &Path) -> DataLocation {
        let text = path.to_string_lossy();
        if text.starts_with("s3://") {
            DataLocation::S3(text.into_owned())
        } else {
            DataLocation::Files(vec![path.to_path_buf()])
        }
    }
}

/// One input channel of a training job.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub data: DataLocation,
    pub content_type: Option<String>,
}

/// Content type of a data file by its extension (SageMaker passes it to the container in
/// inputdataconfig.json; ours reads the files by extension either way).
pub fn content_type_of(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" => Some("text/csv".into()),
        "parquet" | "pq" => Some("application/x-parquet".into()),
        _ => None,
    }
}

/// The channels for a configuration's history: `train` (labels in the file), or `x_train` and
/// `y_train` when the labels sit in a separate file (the original example's layout), plus the
/// optional validation data as `validation` (or `x_test`/`y_test`).
pub fn channels_for(
    data: &Path,
    labels: Option<&Path>,
    validation: Option<&Path>,
    validation_labels: Option<&Path>,
) -> Result<Vec<Channel>> {
    let channel = |name: &str, path: &Path| Channel {
        name: name.into(),
        content_type: content_type_of(path),
        data: DataLocation::from_arg(path),
    };
    let mut channels = Vec::new();
    match labels {
        None => {
            channels.push(channel("train", data));
            if let Some(v) = validation {
                if validation_labels.is_some() {
                    return Err(Error::Config(
                        "--validation-labels needs labels in a separate file for training too \
                         (data.labels_path)"
                            .into(),
                    ));
                }
                channels.push(channel("validation", v));
            }
        }
        Some(labels) => {
            channels.push(channel("x_train", data));
            channels.push(channel("y_train", labels));
            match (validation, validation_labels) {
                (Some(x), Some(y)) => {
                    channels.push(channel("x_test", x));
                    channels.push(channel("y_test", y));
                }
                (None, None) => {}
                _ => {
                    return Err(Error::Config(
                        "with labels in a separate file, give both --validation and \
                         --validation-labels, or neither"
                            .into(),
                    ));
                }
            }
        }
    }
    Ok(channels)
}

/// A training job as the user asked for it.
#[derive(Debug, Clone)]
pub struct TrainingJob {
    pub name: String,
    pub hyperparameters: BTreeMap<String, String>,
    pub channels: Vec<Channel>,
    pub instance_type: String,
    pub instance_count: u32,
    pub volume_size_gb: u32,
    pub max_runtime: Duration,
}

/// How a transform job batches records (SageMaker's defaults: MultiRecord, 6 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStrategy {
    MultiRecord,
    SingleRecord,
}

impl BatchStrategy {
    pub fn as_api(self) -> &'static str {
        match self {
            BatchStrategy::MultiRecord => "MultiRecord",
            BatchStrategy::SingleRecord => "SingleRecord",
        }
    }

    /// The value of SAGEMAKER_BATCH_STRATEGY the container sees.
    pub fn as_env(self) -> &'static str {
        match self {
            BatchStrategy::MultiRecord => "MULTI_RECORD",
            BatchStrategy::SingleRecord => "SINGLE_RECORD",
        }
    }
}

/// A batch-transform job: the input is CSV with a header line, split by line.
#[derive(Debug, Clone)]
pub struct TransformJob {
    pub name: String,
    pub model_name: String,
    pub batch_strategy: BatchStrategy,
    pub max_payload_mb: u32,
    pub max_concurrent: u32,
    pub data_processing: DataProcessing,
    pub instance_type: String,
    pub instance_count: u32,
}

/// The DataProcessing that sends only the model's features to the container, in the model's
/// order, and keeps the id beside each score (what the original example's
/// `output_filter="$[0,-1]"` was for). `header` is the candidate file's header line.
pub fn data_processing_for(bundle: &ModelBundle, header: &[String]) -> Result<DataProcessing> {
    let position = |name: &str| header.iter().position(|h| h == name);
    let mut features = Vec::with_capacity(bundle.features.features.len());
    for f in &bundle.features.features {
        let at = position(&f.name).ok_or_else(|| {
            Error::Config(format!(
                "the candidates have no column {:?}, a feature of the model",
                f.name
            ))
        })?;
        features.push(at as i64);
    }
    let id = position(&bundle.id.column).ok_or_else(|| {
        Error::Config(format!(
            "the candidates have no id column {:?}",
            bundle.id.column
        ))
    })?;
    // A contiguous run reads best as a slice; otherwise list the positions (in the model's
    // order, which the container relies on for records after the header).
    let contiguous = features.windows(2).all(|w| w[1] == w[0] + 1);
    let input = if features.is_empty() {
        return Err(Error::Config("the model has no features".into()));
    } else if contiguous && features.len() > 1 {
        format!("$[{}:{}]", features[0], features[features.len() - 1])
    } else {
        format!(
            "$[{}]",
            features
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let input_filter = ColumnFilter::parse(&input).map_err(|_| {
        Error::Config(format!(
            "the model's {} features are scattered over the candidate columns: SageMaker's \
             InputFilter is limited to 63 characters; put the feature columns side by side, \
             in the model's order",
            features.len()
        ))
    })?;
    Ok(DataProcessing {
        input_filter,
        join_source: JoinSource::Input,
        output_filter: ColumnFilter::parse(&format!("$[{id},-1]"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sagemaker::container::{Layout, config_from_hyperparameters};

    #[test]
    fn hyperparameters_carry_the_configuration() {
        let mut config = Config::default();
        config.data.label = Some("y".into());
        config.data.positive = Some(vec!["yes".into()]);
        config.data.negative = Some(vec!["no".into()]);
        config.data.exclude = vec!["duration".into(), "pdays".into()];
        config.data.delimiter = Some(";".into());
        config.split.test_fraction = 0.25;
        config.split.seed = 7;
        config.model.num_leaves = 15;
        config.model.learning_rate = 0.1;
        config
            .model
            .params
            .insert("min_data_in_leaf".into(), toml::Value::Integer(20));
        let hp = hyperparameters_from_config(&config);
        assert_eq!(hp["exclude"], "duration,pdays");
        assert_eq!(hp["min_data_in_leaf"], "20");
        let layout = Layout::Channels {
            train: vec![],
            validation: None,
        };
        let back = config_from_hyperparameters(&hp, &layout).unwrap();
        assert_eq!(back.data, config.data);
        assert_eq!(back.split, config.split);
        assert_eq!(back.model.num_leaves, 15);
        assert_eq!(back.model.learning_rate, 0.1);
        assert_eq!(param_value(&back.model.params["min_data_in_leaf"]), "20");
    }

    #[test]
    fn job_names() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_631_791);
        let name = job_name("audience-train", t);
        assert_eq!(name, "audience-train-20261125-183631-000");
        check_job_name(&name).unwrap();
        // Two jobs started within one second get different names.
        let later = job_name("audience-train", t + Duration::from_millis(42));
        assert_eq!(later, "audience-train-20261125-183631-042");
        let last = job_name("audience-score", t + Duration::from_nanos(999_999_999));
        assert_eq!(last, "audience-score-20261125-183631-999");
        check_job_name(&last).unwrap();
        for bad in ["", "-a", "a-", "a_b", &"x".repeat(64)] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn channels() {
        let c = channels_for(Path::new("h.csv"), None, Some(Path::new("v.parquet")), None).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].name, "validation");
        assert_eq!(c[1].content_type.as_deref(), Some("application/x-parquet"));
        let c = channels_for(
            Path::new("s3://b/x.csv"),
            Some(Path::new("y.csv")),
            None,
            None,
        )
        .unwrap();
        assert_eq!(c[0].data, DataLocation::S3("s3://b/x.csv".into()));
        assert_eq!(c[1].name, "y_train");
        assert!(
            channels_for(
                Path::new("x"),
                Some(Path::new("y")),
                Some(Path::new("v")),
                None
            )
            .is_err()
        );
    }
}

/// What staging a candidate file produced.
#[derive(Debug, Clone)]
pub struct StagedCandidates {
    pub header: Vec<String>,
    pub rows: usize,
}

/// Writes the candidate CSV `input` as a batch-transform input at `target`: comma-separated
/// with its header line, byte-order mark and CRLF gone, and the field text kept as written.
/// When the model's id is the generated `row_id` and the file has no such column, it is added
/// (0-based data row number, as `audience score` numbers rows), so every score keeps its id.
/// Fails naming the line of a ragged or unreadable row.
pub fn stage_candidates(
    input: &Path,
    bundle: &ModelBundle,
    delimiter: Option<u8>,
    target: &Path,
) -> Result<StagedCandidates> {
    use std::io::Write;
    let lower = input.to_string_lossy().to_ascii_lowercase();
    if lower.ends_with(".parquet") || lower.ends_with(".pq") {
        return Err(Error::data(
            input,
            "batch transform splits CSV by line: give the candidates as CSV",
        ));
    }
    let layout = crate::data::CsvLayout::sniff(input, delimiter)?;
    let add_row_id = bundle.id.generated && !layout.header.contains(&bundle.id.column);
    let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(false)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let mut out = crate::output::AtomicFile::create(target, true)?;
    let mut header = Vec::new();
    let mut rows = 0usize;
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(std::io::BufWriter::with_capacity(1 << 20, out.file()));
        let mut record = csv::StringRecord::new();
        let mut width = 0usize;
        let mut first = true;
        loop {
            let more = reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(rows as u64 + 2);
                Error::data(input, format!("line {line}: {e}"))
            })?;
            if !more {
                break;
            }
            if first {
                header = record
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        if i == 0 {
                            h.trim_start_matches('\u{feff}').to_string()
                        } else {
                            h.to_string()
                        }
                    })
                    .collect();
                width = header.len();
                if add_row_id {
                    header.insert(0, bundle.id.column.clone());
                }
                writer
                    .write_record(&header)
                    .map_err(|e| Error::io(target, std::io::Error::other(e)))?;
                first = false;
                continue;
            }
            if record.len() != width {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                return Err(Error::data(
                    input,
                    format!(
                        "line {line}: expected {width} fields, found {}",
                        record.len()
                    ),
                ));
            }
            let written = if add_row_id {
                let id = rows.to_string();
                writer.write_record(std::iter::once(id.as_str()).chain(record.iter()))
            } else {
                writer.write_record(&record)
            };
            written.map_err(|e| Error::io(target, std::io::Error::other(e)))?;
            rows += 1;
        }
        let mut inner = writer
            .into_inner()
            .map_err(|e| Error::io(target, std::io::Error::other(e.to_string())))?;
        inner.flush().map_err(|e| Error::io(target, e))?;
    }
    if header.is_empty() {
        return Err(Error::data(input, "the file is empty: no header line"));
    }
    out.commit(true)?;
    Ok(StagedCandidates { header, rows })
}
