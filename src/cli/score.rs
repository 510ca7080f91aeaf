//! `audience score`: score candidate users with a model bundle, streaming the file in batches.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use audience::config::delimiter_byte;
use audience::model::bundle::{Engine, ModelBundle};
use audience::model::score::{Keep, ScoreOptions, score_file};

use super::Progress;

pub const ABOUT: &str = "Score candidate users with a trained model";

pub const LONG_ABOUT: &str = "\
Score candidate users with a trained model bundle.

Writes one row per input row, in input order: the id (under its own column name, or row_id),
score (probability of conversion), percentile and decile (1 = best; ranked by score), and any
--keep columns. People of equal score are ordered by a seeded hash of their id (--seed), so a
--top cut that falls among them picks the same people on every run, whatever the file order; the
number of rows tied at the cut is printed. CSV or Parquet, chosen by the output's extension.
The input is streamed in batches and ranks are found from a spool file, so memory does not grow
with the input's size.

The data must have every feature column of the model (extra columns are ignored). Category
values never seen in training are scored as LightGBM does (as missing) and counted in a warning.

--model also takes a bare LightGBM model.txt, such as one saved by Python's lightgbm: features are
matched by name, categories mapped through its pandas_categorical line when present (as pandas
does), otherwise categorical columns are read as LightGBM's integer codes.

Scores come from audience's own evaluator, exact to LightGBM's prediction (tested to 1e-12 on a
zoo of models), on every core: batches of rows with every split a bitmask of 128 rows, a handful
of rows through the trees compiled to machine code when the model loads; --engine compiled
sends every row through the compiled trees, --engine walk walks the node arrays instead (no
compile step, for small inputs), and --engine lightgbm uses LightGBM's C API.";

pub const EXAMPLES: &str = "\
Examples:
  audience score --model model/ --data candidates.csv --output scores.csv
  audience score --model model/ --data candidates.parquet --output scores.parquet --keep email
  audience score --model model/ --data candidates.csv --output best.csv --top 5000
  audience score --model model/ --data candidates.csv --output best.csv --top-percent 10
  audience score --model python_model.txt --id customer_id --data candidates.csv --output scores.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// audience's evaluator: batches as bitmasks, a few rows through the trees compiled at load
    Native,
    /// audience's evaluator, every row through the trees compiled at load (no bitmasks)
    Compiled,
    /// audience's evaluator walking the node arrays (no compile step)
    Walk,
    /// LightGBM's C API
    Lightgbm,
}

/// The model that scores: shared by `score` and `select`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model bundle directory (from `audience train`), or a bare LightGBM model.txt
    #[arg(
        long = "model",
        short = 'm',
        value_name = "DIR|FILE",
        default_value = "model"
    )]
    pub path: PathBuf,

    /// Id column to write, for a bare model.txt [default: row_id, the 0-based row number]
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
}

impl ModelArgs {
    /// Loads the model; --id only names a bare model.txt's id, a bundle knows its own.
    pub fn load(&self) -> Result<ModelBundle> {
        let bundle = ModelBundle::load(&self.path, self.id.as_deref())?;
        if bundle.manifest.is_some() && self.id.is_some() {
            bail!(
                "--id is for a bare model.txt; a bundle's id column is {:?}",
                bundle.id.column
            );
        }
        Ok(bundle)
    }
}

/// How candidates are read and scored: shared by `score` and `select`.
#[derive(Debug, Args)]
pub struct ScoringArgs {
    /// Evaluator: audience's own (exact, fastest) or LightGBM's C API
    #[arg(long, value_enum, default_value_t = EngineArg::Native)]
    pub engine: EngineArg,

    /// CSV delimiter of the input; detected when absent
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,

    /// Seed of the hash that orders people of equal score [default: the model's split.seed, or 42]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Rows per batch
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub batch_rows: usize,
}

impl ScoringArgs {
    pub fn delimiter(&self) -> Result<Option<u8>> {
        Ok(self.delimiter.as_deref().map(delimiter_byte).transpose()?)
    }

    pub fn engine(&self) -> Engine {
        match self.engine {
            EngineArg::Native => Engine::Native,
            EngineArg::Compiled => Engine::Compiled,
            EngineArg::Walk => Engine::Walk,
            EngineArg::Lightgbm => Engine::LightGbm,
        }
    }

    /// The tie seed: --seed, else the bundle's split.seed, else the default.
    pub fn tie_seed(&self, bundle: &ModelBundle) -> u64 {
        self.seed.unwrap_or_else(|| {
            bundle
                .manifest
                .as_ref()
                .map_or(audience::config::SplitConfig::default().seed, |m| {
                    m.split.seed
                })
        })
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Candidates to score, CSV or Parquet: a path or s3://bucket/key
    #[arg(long, short, value_name = "PATH")]
    pub data: PathBuf,

    /// Output file (a path or s3://bucket/key); .parquet writes Parquet, anything else CSV
    #[arg(
        long = "output",
        short = 'o',
        visible_alias = "out",
        value_name = "PATH"
    )]
    pub out: PathBuf,

    /// Input column to copy to the output; repeatable
    #[arg(long, value_name = "COLUMN")]
    pub keep: Vec<String>,

    /// Keep only the N best rows
    #[arg(long, value_name = "N", conflicts_with = "top_percent")]
    pub top: Option<u64>,

    /// Keep only the best P percent of rows
    #[arg(long, value_name = "P")]
    pub top_percent: Option<f64>,

    #[command(flatten)]
    pub scoring: ScoringArgs,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let keep = match (args.top, args.top_percent) {
        (Some(n), _) => Keep::Top(n),
        (None, Some(p)) if (0.0..=100.0).contains(&p) && p > 0.0 => Keep::TopPercent(p),
        (None, Some(p)) => bail!("--top-percent must be in (0, 100], got {p}"),
        (None, None) => Keep::All,
    };
    let mut remote = super::remote_files(args.quiet);
    remote.expect_input(&args.data);
    let out = remote.output(&args.out, args.force)?;
    let inputs = audience::output::Inputs::of([args.data.as_path(), args.model.path.as_path()]);
    audience::output::check_file_output(&out, args.force, &inputs)?;
    let bundle = args.model.load()?;
    let data = remote.input(&args.data)?;
    let options = ScoreOptions {
        delimiter: args.scoring.delimiter()?,
        keep_columns: args.keep.clone(),
        keep,
        force: args.force,
        batch_rows: args.scoring.batch_rows,
        engine: args.scoring.engine(),
        tie_seed: args.scoring.tie_seed(&bundle),
    };
    let mut progress = Progress::new(args.quiet, None, "scoring");
    let summary = score_file(&bundle, &data, &out, &options, &mut |rows| {
        progress.update(rows, || "rows".to_string())
    })?;
    progress.finish();
    remote.finish()?;
    if summary.unseen.total() > 0 {
        let detail: Vec<String> = summary
            .unseen
            .by_feature
            .iter()
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        eprintln!(
            "warning: {} value(s) of categorical features were not seen in training and were scored as missing ({})",
            summary.unseen.total(),
            detail.join(", ")
        );
    }
    if let Some((score, tied, kept)) = summary.tied_at_top {
        eprintln!(
            "note: {tied} rows share the score {score} at the --top cut; {kept} of them were kept, chosen by a seeded hash of the id (--seed to change it)"
        );
    }
    if !args.quiet {
        eprintln!(
            "Scored {} rows; wrote {} to {}",
            summary.rows_in,
            summary.rows_out,
            audience::remote::shown(&out)
        );
    }
    Ok(())
}
