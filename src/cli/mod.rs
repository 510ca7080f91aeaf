//! One module per subcommand, each holding its help text and its run function; this module holds
//! what they share: the configuration flags and progress display.

pub mod columns;
pub mod compare;
pub mod completions;
pub mod container;
pub mod init;
pub mod sagemaker;
pub mod score;
pub mod select;
pub mod synth;
pub mod train;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use audience::config::{Config, ConfigOrigin, SplitMethod, find_config};
use audience::data::{self, History, HistorySource};
use audience::remote::Remote;

/// The audience.toml of the current folder or the nearest above it (as cargo finds Cargo.toml),
/// or the defaults, remembering where it looked.
pub fn found_config() -> Result<Config> {
    let here = std::env::current_dir().context("cannot read the current folder")?;
    Ok(match find_config(&here) {
        Some(path) => Config::load(&path)?,
        None => Config {
            origin: ConfigOrigin::NotFound(here),
            ..Config::default()
        },
    })
}

/// Flags that override `audience.toml` (flags win).
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigArgs {
    /// Configuration file [default: audience.toml in this folder or the nearest above it]
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Promotion history, CSV or Parquet: a path or s3://bucket/key (data.path)
    #[arg(long, short = 'd', value_name = "PATH", help_heading = "Data")]
    pub data: Option<PathBuf>,
    /// Labels in a separate file, same row order (data.labels_path)
    #[arg(long, value_name = "PATH", help_heading = "Data")]
    pub labels: Option<PathBuf>,
    /// CSV delimiter; detected when absent (data.delimiter)
    #[arg(long, value_name = "CHAR", help_heading = "Data")]
    pub delimiter: Option<String>,
    /// Id column; `row_id` (0-based file order) is made when absent (data.id)
    #[arg(long, value_name = "COLUMN", help_heading = "Data")]
    pub id: Option<String>,
    /// Label column (data.label)
    #[arg(long, value_name = "COLUMN", help_heading = "Data")]
    pub label: Option<String>,
    /// Label values meaning converted; repeatable (data.positive) [default: 1, true, yes, y]
    #[arg(long, value_name = "VALUE", help_heading = "Data")]
    pub positive: Vec<String>,
    /// Label values meaning not converted; repeatable (data.negative) [default: 0, false, no, n]
    #[arg(long, value_name = "VALUE", help_heading = "Data")]
    pub negative: Vec<String>,
    /// Column never used as a feature; repeatable, adds to data.exclude
    #[arg(long, value_name = "COLUMN", help_heading = "Data")]
    pub exclude: Vec<String>,
    /// Column treated as categorical; repeatable, adds to data.categorical
    #[arg(long, value_name = "COLUMN", help_heading = "Data")]
    pub categorical: Vec<String>,
    /// Field text meaning "missing" besides an empty field, e.g. n/a; repeatable, adds to data.na_values
    #[arg(long = "na-value", value_name = "TEXT", help_heading = "Data")]
    pub na_values: Vec<String>,
    /// Table name rules select from (data.table) [default: history]
    #[arg(long, value_name = "NAME", help_heading = "Data")]
    pub table: Option<String>,

    /// Share of rows held out for evaluation (split.test_fraction) [default: 0.3]
    #[arg(long, value_name = "FRACTION", help_heading = "Split")]
    pub test_fraction: Option<f64>,
    /// Random seed of the split and the model (split.seed) [default: 42]
    #[arg(long, help_heading = "Split")]
    pub seed: Option<u64>,
    /// Hold out by time instead: rows with COLUMN >= CUTOFF (split.time_column, split.cutoff)
    #[arg(long, value_names = ["COLUMN", "CUTOFF"], num_args = 2, help_heading = "Split")]
    pub time_split: Option<Vec<String>>,
    /// strftime pattern of a text time column not in ISO 8601, e.g. %m/%d/%Y (split.time_format)
    #[arg(long, value_name = "PATTERN", help_heading = "Split")]
    pub time_format: Option<String>,

    /// Leaves per tree (model.num_leaves) [default: 31]
    #[arg(long, help_heading = "Model")]
    pub num_leaves: Option<u32>,
    /// Maximum boosting rounds (model.num_rounds) [default: 200]
    #[arg(long, help_heading = "Model")]
    pub num_rounds: Option<u32>,
    /// Learning rate (model.learning_rate) [default: 0.05]
    #[arg(long, help_heading = "Model")]
    pub learning_rate: Option<f64>,
    /// Rounds without improvement before stopping; 0 = off (model.early_stopping_rounds) [default: 20]
    #[arg(long, help_heading = "Model")]
    pub early_stopping_rounds: Option<u32>,
    /// Any LightGBM parameter as KEY=VALUE; repeatable (model.params)
    #[arg(long = "param", value_name = "KEY=VALUE", help_heading = "Model")]
    pub params: Vec<String>,
}

impl ConfigArgs {
    /// The configuration file (if any) with the flags applied on top, checked.
    pub fn resolve(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => {
                if !path.exists() {
                    bail!("{}: configuration file not found", path.display());
                }
                Config::load(path)?
            }
            None => found_config()?,
        };
        let d = &mut config.data;
        if let Some(v) = &self.data {
            d.path = Some(v.clone());
            // The configured delimiter belongs to the configured file: detect the new one's.
            d.delimiter = None;
        }
        if let Some(v) = &self.labels {
            d.labels_path = Some(v.clone());
        }
        if let Some(v) = &self.delimiter {
            d.delimiter = Some(v.clone());
        }
        if let Some(v) = &self.id {
            d.id = Some(v.clone());
        }
        if let Some(v) = &self.label {
            d.label = Some(v.clone());
        }
        if !self.positive.is_empty() {
            d.positive = Some(self.positive.clone());
        }
        if !self.negative.is_empty() {
            d.negative = Some(self.negative.clone());
        }
        d.exclude.extend(self.exclude.iter().cloned());
        d.categorical.extend(self.categorical.iter().cloned());
        d.na_values.extend(self.na_values.iter().cloned());
        if let Some(v) = &self.table {
            d.table = v.clone();
        }
        let s = &mut config.split;
        if let Some(v) = self.test_fraction {
            s.test_fraction = v;
        }
        if let Some(v) = self.seed {
            s.seed = v;
        }
        if let Some(v) = &self.time_split {
            s.method = SplitMethod::Time;
            s.time_column = Some(v[0].clone());
            s.cutoff = Some(v[1].clone());
        }
        if let Some(v) = &self.time_format {
            s.time_format = Some(v.clone());
        }
        let m = &mut config.model;
        if let Some(v) = self.num_leaves {
            m.num_leaves = v;
        }
        if let Some(v) = self.num_rounds {
            m.num_rounds = v;
        }
        if let Some(v) = self.learning_rate {
            m.learning_rate = v;
        }
        if let Some(v) = self.early_stopping_rounds {
            m.early_stopping_rounds = v;
        }
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--param {p:?}: expected KEY=VALUE"))?;
            m.params.insert(
                k.trim().to_string(),
                toml::Value::String(v.trim().to_string()),
            );
        }
        config.validate()?;
        Ok(config)
    }
}

/// The files a configuration makes a run read (the configuration itself, the history, its
/// labels): no output may be one of them.
pub fn config_inputs(args: &ConfigArgs, config: &Config) -> audience::output::Inputs {
    let mut inputs = audience::output::Inputs::default();
    match &config.origin {
        ConfigOrigin::File(path) => inputs.add(path),
        _ => {
            if let Some(path) = &args.config {
                inputs.add(path)
            }
        }
    }
    for path in [&config.data.path, &config.data.labels_path]
        .into_iter()
        .flatten()
    {
        inputs.add(path);
    }
    inputs
}

/// The run's s3:// files, saying on stderr (unless quiet) which object is being fetched.
pub fn remote_files(quiet: bool) -> Remote {
    Remote::new().on_fetch(move |name| {
        if !quiet {
            eprintln!("Fetching {name}");
        }
    })
}

/// Notes the configuration's s3:// history and labels as inputs of the run (no output may be
/// one of them), before they are fetched.
pub fn expect_config_inputs(remote: &mut Remote, config: &Config) {
    for path in [&config.data.path, &config.data.labels_path]
        .into_iter()
        .flatten()
    {
        remote.expect_input(path);
    }
}

/// Replaces the configuration's s3:// history and labels by local copies (errors still name the
/// s3:// addresses).
pub fn fetch_config_inputs(remote: &mut Remote, config: &mut Config) -> Result<()> {
    for path in [&mut config.data.path, &mut config.data.labels_path]
        .into_iter()
        .flatten()
    {
        *path = remote.input(path)?;
    }
    Ok(())
}

/// Loads the configured history (table, labels file, labels, ids).
pub fn load_history(config: &Config) -> Result<History> {
    let source = HistorySource::from_config(config, config.data_path()?)?;
    Ok(data::load_history(&source)?)
}

/// Progress on stderr: a live bar on a terminal, a line now and then otherwise, nothing if quiet.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    length: Option<u64>,
    quiet: bool,
    last_line: std::time::Instant,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(quiet: bool, length: Option<u64>, what: &str) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = match length {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            // The bar takes what the terminal's width leaves (indicatif reads it at each draw);
            // the message is cut to fit rather than wrapped. No ETA: the first rounds and the
            // first batches are slower than the rest, and an early estimate misleads.
            let template = if length.is_some() {
                "{prefix} [{wide_bar}] {pos}/{len} {wide_msg}"
            } else {
                "{prefix} {spinner} {human_pos} {wide_msg}"
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            // A spinner that moves while a long step gives no news.
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            length,
            quiet,
            last_line: std::time::Instant::now(),
            started: std::time::Instant::now(),
        }
    }

    /// A spinner with a fixed message for a step that reports no progress of its own (reading a
    /// table); without a terminal, the message once, at once.
    pub fn step(quiet: bool, what: &str, message: &str) -> Progress {
        let progress = Progress::new(quiet, None, what);
        match &progress.bar {
            Some(bar) => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{prefix} {spinner} {wide_msg}")
                        .expect("valid template"),
                );
                bar.set_message(message.to_string());
            }
            None if !quiet => eprintln!("{what} {message}"),
            None => {}
        }
        progress
    }

    /// Moves to `position` with a message; without a terminal, prints a line at most every 2 s.
    pub fn update(&mut self, position: u64, message: impl FnOnce() -> String) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message());
            }
            None => {
                if self.last_line.elapsed().as_secs_f64() >= 2.0 {
                    let elapsed = self.started.elapsed().as_secs_f64();
                    let eta = match self.length {
                        Some(total) if position > 0 && position < total => format!(
                            ", ETA {:.0} s",
                            elapsed / position as f64 * (total - position) as f64
                        ),
                        _ => String::new(),
                    };
                    let of = self.length.map_or(String::new(), |t| format!("/{t}"));
                    eprintln!("  {position}{of} {} ({elapsed:.0} s{eta})", message());
                    self.last_line = std::time::Instant::now();
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A status line on stderr unless quiet.
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

/// The line that starts training: shared by `train` and `compare`.
pub fn training_line(rows: usize, positives: usize, path: &std::path::Path) -> String {
    format!(
        "Training on {rows} rows ({positives} conversions) from {}",
        audience::remote::shown(path)
    )
}

/// A training round's progress message: shared by `train` and `compare`.
pub fn round_message(p: &audience::model::train::RoundProgress) -> String {
    format!(
        "rounds; early-stopping AUC {} (best round {})",
        p.early_stopping_auc
            .map_or("n/a".into(), |a| format!("{a:.4}")),
        p.best_round
    )
}

/// Whether to colour terminal output: a TTY, and NO_COLOR unset or empty.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The width to lay the report out in: the terminal's own when standard output is one, else
/// `COLUMNS`, else 100 columns.
pub fn terminal_width() -> u16 {
    let stdout = std::io::stdout();
    if stdout.is_terminal()
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(&stdout)
        && w > 0
    {
        return w;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(audience::report::DEFAULT_WIDTH)
}
