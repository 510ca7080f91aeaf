//! `audience synth`: write a deterministic synthetic promotion history.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Progress;

pub const ABOUT: &str = "Write a synthetic promotion history (for benchmarks and demos)";

pub const LONG_ABOUT: &str = "\
Write a deterministic synthetic promotion history: customer_id, eight numeric attributes, seven
categorical ones (3 to 1,000 levels, some Zipf-distributed), missing values, and a `converted`
label (about 5% positive) that depends on interactions. The same --seed gives the same file on
every machine. CSV, or Parquet for a .parquet output.";

pub const EXAMPLES: &str = "\
Examples:
  audience synth --rows 1000000 --output synth_1m.csv
  audience synth --rows 10000000 --seed 7 --output synth_10m.parquet
  audience compare --data synth_1m.csv --label converted --id customer_id rules.sql";

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of rows
    #[arg(long, value_name = "N")]
    pub rows: u64,

    /// Random seed
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Output file: .parquet writes Parquet, anything else CSV
    #[arg(
        long = "output",
        short = 'o',
        visible_alias = "out",
        value_name = "PATH"
    )]
    pub out: PathBuf,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let mut progress = Progress::new(args.quiet, Some(args.rows), "writing");
    audience::synth::write_synth(&args.out, args.rows, args.seed, args.force, &mut |done| {
        progress.update(done, || "rows".to_string())
    })?;
    progress.finish();
    Ok(())
}
