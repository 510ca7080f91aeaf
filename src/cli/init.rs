//! `audience init DATA`: a commented audience.toml and an example rule for a data file.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use audience::describe::starter_config;
use audience::output;

pub const ABOUT: &str = "Start a configuration (audience.toml) and an example rule for a data file";

pub const LONG_ABOUT: &str = "\
Write audience.toml for DATA in the current folder, commented, from what the data shows: the
delimiter, the id column (every value distinct), the label (a column of two values, named like an
outcome where one is), the text columns (categorical features), numeric columns with few values
that may be codes, and an exclude list left for you, with the columns whose names suggest they
were recorded after the promotion. Also writes rules/example.sql. Refuses to replace either file.";

pub const EXAMPLES: &str = "\
Examples:
  audience init sessions.csv && audience columns && audience compare rules/*.sql";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The promotion history, CSV or Parquet
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
}

pub fn run(args: InitArgs) -> Result<()> {
    let config_path = PathBuf::from(audience::config::DEFAULT_CONFIG_FILE);
    let rule_path = PathBuf::from("rules/example.sql");
    for p in [&config_path, &rule_path] {
        if std::fs::symlink_metadata(p).is_ok() {
            bail!(
                "{}: already exists; init never replaces a file",
                p.display()
            );
        }
    }
    let shown = args.data.display().to_string();
    let (config, rule) = starter_config(&args.data, &shown)?;
    std::fs::create_dir_all("rules")?;
    output::write_atomic(&config_path, config.as_bytes(), false)?;
    output::write_atomic(&rule_path, rule.as_bytes(), false)?;
    eprintln!(
        "Wrote {} and {}: read them, then `audience columns` and `audience compare rules/*.sql`",
        config_path.display(),
        rule_path.display()
    );
    Ok(())
}
