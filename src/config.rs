//! `audience.toml`: the documented configuration. Every setting can also be given as a flag (the CLI
//! applies flags on top of what is loaded here, so flags win).
//!
//! Relative paths inside a configuration file are resolved against the file's own directory, so an
//! example folder with its own `audience.toml` works from anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The file looked for in the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "audience.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub split: SplitConfig,
    pub model: ModelConfig,
    pub compare: CompareConfig,
    /// Where the settings came from: the file read, or the folder whose ancestors were
    /// searched in vain (for messages).
    #[serde(skip)]
    pub origin: ConfigOrigin,
}

/// Where a configuration came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ConfigOrigin {
    /// Read from this file.
    File(PathBuf),
    /// No audience.toml in this folder or any above it.
    NotFound(PathBuf),
    /// Built in code (tests, the container).
    #[default]
    Defaults,
}

/// The audience.toml in `start` or the nearest folder above it, as cargo finds Cargo.toml.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(DEFAULT_CONFIG_FILE))
        .find(|candidate| candidate.is_file())
}

/// Limits on running each rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    /// Seconds a rule may run before it is stopped.
    pub rule_timeout: f64,
    /// Megabytes DataFusion's operators (joins, aggregates, sorts) may hold for one rule.
    pub rule_memory_mb: u64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        let limits = crate::rules::RuleLimits::default();
        CompareConfig {
            rule_timeout: limits.timeout.as_secs_f64(),
            rule_memory_mb: (limits.memory_bytes >> 20) as u64,
        }
    }
}

impl CompareConfig {
    pub fn limits(&self) -> crate::rules::RuleLimits {
        crate::rules::RuleLimits {
            timeout: std::time::Duration::from_secs_f64(self.rule_timeout),
            memory_bytes: usize::try_from(self.rule_memory_mb)
                .unwrap_or(usize::MAX >> 20)
                .saturating_mul(1 << 20),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The promotion history: CSV or Parquet.
    pub path: Option<PathBuf>,
    /// CSV field delimiter; detected from the header line when absent.
    pub delimiter: Option<String>,
    /// A column that identifies each person. When absent a `row_id` column (0-based file order) is made.
    pub id: Option<String>,
    /// The conversion column.
    pub label: Option<String>,
    /// Label values meaning "converted" (compared case-insensitively, trimmed).
    pub positive: Option<Vec<String>>,
    /// Label values meaning "did not convert". Any other value is an error.
    pub negative: Option<Vec<String>>,
    /// Labels in a separate file with the same row order (the original SageMaker example's layout).
    pub labels_path: Option<PathBuf>,
    /// Columns never used as features (for example, ones only known after the promotion).
    pub exclude: Vec<String>,
    /// Columns to treat as categorical even if they hold numbers. Text columns are categorical anyway.
    pub categorical: Vec<String>,
    /// Field texts that mean "missing" besides an empty field (for example "n/a", "NULL").
    pub na_values: Vec<String>,
    /// The table name that rules select from.
    pub table: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: None,
            delimiter: None,
            id: None,
            label: None,
            positive: None,
            negative: None,
            labels_path: None,
            exclude: Vec::new(),
            categorical: Vec::new(),
            na_values: Vec::new(),
            table: "history".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SplitMethod {
    /// Stratified random holdout.
    #[default]
    Random,
    /// Rows with `time_column < cutoff` train, the rest are held out.
    Time,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    pub method: SplitMethod,
    /// Share of rows held out for evaluation (random split).
    pub test_fraction: f64,
    pub seed: u64,
    /// For `method = "time"`: the column compared with `cutoff`.
    pub time_column: Option<String>,
    /// For `method = "time"`: rows at or after this value are held out.
    pub cutoff: Option<String>,
    /// For `method = "time"` on a text column not in ISO 8601: its strftime pattern
    /// (for example `%m/%d/%Y`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
    /// Share of the training rows set aside to decide when to stop boosting, so that the held-out
    /// rows judge a model that never saw them, not even to pick its number of trees.
    pub early_stopping_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            method: SplitMethod::Random,
            test_fraction: 0.3,
            seed: 42,
            time_column: None,
            cutoff: None,
            time_format: None,
            early_stopping_fraction: 0.2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub num_leaves: u32,
    pub num_rounds: u32,
    pub learning_rate: f64,
    /// Stop when the early-stopping AUC has not improved for this many rounds; 0 turns it off.
    pub early_stopping_rounds: u32,
    /// Any further LightGBM parameter, passed through as `key=value`.
    pub params: BTreeMap<String, toml::Value>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            num_leaves: 31,
            num_rounds: 200,
            learning_rate: 0.05,
            early_stopping_rounds: 20,
            params: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads a configuration file. Relative paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}:{}", path.display(), located(&text, &e))))?;
        config.origin = ConfigOrigin::File(path.to_path_buf());
        let base = path.parent().unwrap_or(Path::new(""));
        config.data.path = config.data.path.map(|p| resolve(base, p));
        config.data.labels_path = config.data.labels_path.map(|p| resolve(base, p));
        Ok(config)
    }

    /// Checks settings that serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<()> {
        let s = &self.split;
        if !(s.test_fraction > 0.0 && s.test_fraction < 1.0) {
            return Err(Error::Config(format!(
                "split.test_fraction must be between 0 and 1 (exclusive), got {}",
                s.test_fraction
            )));
        }
        if !(s.early_stopping_fraction >= 0.0 && s.early_stopping_fraction < 1.0) {
            return Err(Error::Config(format!(
                "split.early_stopping_fraction must be in [0, 1), got {}",
                s.early_stopping_fraction
            )));
        }
        if s.method == SplitMethod::Time && (s.time_column.is_none() || s.cutoff.is_none()) {
            return Err(Error::Config(
                "split.method = \"time\" needs split.time_column and split.cutoff".into(),
            ));
        }
        let m = &self.model;
        if m.num_leaves < 2 {
            return Err(Error::Config(format!(
                "model.num_leaves must be at least 2, got {}",
                m.num_leaves
            )));
        }
        if m.num_rounds == 0 {
            return Err(Error::Config("model.num_rounds must be at least 1".into()));
        }
        if m.learning_rate.is_nan() || m.learning_rate <= 0.0 {
            return Err(Error::Config(format!(
                "model.learning_rate must be positive, got {}",
                m.learning_rate
            )));
        }
        if let Some(d) = &self.data.delimiter {
            delimiter_byte(d)?;
        }
        let c = &self.compare;
        if !(c.rule_timeout > 0.0 && c.rule_timeout <= 86_400.0) {
            return Err(Error::Config(format!(
                "compare.rule_timeout must be between 0 and 86400 seconds, got {}",
                c.rule_timeout
            )));
        }
        if c.rule_memory_mb == 0 {
            return Err(Error::Config(
                "compare.rule_memory_mb must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The label column, or a clear error when none is configured.
    pub fn label(&self) -> Result<&str> {
        self.data.label.as_deref().ok_or_else(|| {
            Error::Config("no label column: set data.label in audience.toml or pass --label".into())
        })
    }

    /// The history file, or a clear error when none is configured.
    pub fn data_path(&self) -> Result<&Path> {
        self.data.path.as_deref().ok_or_else(|| {
            Error::Config(match &self.origin {
                ConfigOrigin::File(file) => format!(
                    "no data file: set data.path in {} or pass --data",
                    file.display()
                ),
                ConfigOrigin::NotFound(dir) => format!(
                    "no data file: no audience.toml in {} or any folder above it; pass --data, or start one with `audience init DATA`",
                    dir.display()
                ),
                ConfigOrigin::Defaults => "no data file: pass --data".into(),
            })
        })
    }
}

/// The single byte a CSV delimiter setting stands for (`"\t"` and `"tab"` both mean a tab).
pub fn delimiter_byte(text: &str) -> Result<u8> {
    match text {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        s => Err(Error::Config(format!(
            "data.delimiter must be a single ASCII character, got {s:?}"
        ))),
    }
}

/// A LightGBM parameter value from the TOML table, in the `key=value` form LightGBM parses.
pub fn param_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(param_value).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    let text = path.to_string_lossy();
    if path.is_absolute() || text.starts_with("s3://") || base.as_os_str().is_empty() {
        path
    } else {
        base.join(path)
    }
}

/// A TOML error as `line:column: message` (1-based, columns in characters), or ` message`.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            // A span starts on a token, so on a character boundary; if not, the line is still right.
            let mut start = span.start.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{line}:{column}: {message}")
        }
        None => format!(" {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_are_located_by_line_and_character() {
        let text = "[data]\n# déjà vu\npath = \"é.csv\"\nlabel = 3\n";
        let e = toml::from_str::<Config>(text).unwrap_err();
        assert!(
            located(text, &e).starts_with("4:9: invalid type"),
            "{}",
            located(text, &e)
        );
        let found = tempfile::tempdir().unwrap();
        std::fs::write(found.path().join(DEFAULT_CONFIG_FILE), "").unwrap();
        let deep = found.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(
            find_config(&deep),
            Some(found.path().join(DEFAULT_CONFIG_FILE))
        );
    }

    #[test]
    fn documented_example_parses() {
        let text = r#"
[data]
path = "examples/bank/bank-full.csv"
delimiter = ";"
id = "customer_id"
label = "y"
positive = ["yes"]
negative = ["no"]
exclude = ["duration"]
categorical = []
table = "history"

[split]
method = "random"
test_fraction = 0.3
seed = 42

[model]
num_leaves = 31
num_rounds = 200
learning_rate = 0.05
early_stopping_rounds = 20
params = { min_data_in_leaf = 20 }
"#;
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.data.label.as_deref(), Some("y"));
        assert_eq!(c.split.seed, 42);
        assert_eq!(param_value(&c.model.params["min_data_in_leaf"]), "20");
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[model]\nnum_leafs = 3\n").unwrap_err();
        assert!(err.message().contains("num_leafs"), "{err}");
    }

    #[test]
    fn ranges_are_checked() {
        let mut c = Config::default();
        c.split.test_fraction = 1.0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.model.num_leaves = 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn delimiters() {
        assert_eq!(delimiter_byte(";").unwrap(), b';');
        assert_eq!(delimiter_byte("tab").unwrap(), b'\t');
        assert!(delimiter_byte(";;").is_err());
    }
}
