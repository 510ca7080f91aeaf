//! `audience columns`: a table's columns as audience reads them, and the role of each.

use anyhow::Result;
use clap::{Args, ValueEnum};

use audience::describe::describe;

use super::ConfigArgs;

pub const ABOUT: &str = "Show a table's columns: type, missing, distinct, examples, role";

pub const LONG_ABOUT: &str = "\
Show the columns of the history (data.path, or --data) as audience reads them: each column's
type (number, text, boolean), how many values are missing, how many distinct values it holds,
three examples, and its role under the configuration: label, id, excluded, time, a numeric or
categorical feature, or why it is not a feature. Rules see the same names and types, so this is
the place to look before writing one (text is compared in single quotes, booleans with TRUE and
FALSE).";

pub const EXAMPLES: &str = "\
Examples:
  audience columns
  audience columns --data sessions.csv --label Revenue
  audience columns --format json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColumnsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ColumnsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Output format
    #[arg(long, short, value_enum, default_value_t = ColumnsFormat::Table)]
    pub format: ColumnsFormat,
}

pub fn run(args: ColumnsArgs) -> Result<()> {
    let mut config = args.config.resolve()?;
    let mut remote = super::remote_files(false);
    super::fetch_config_inputs(&mut remote, &mut config)?;
    let description = describe(config.data_path()?, &config)?;
    let text = match args.format {
        ColumnsFormat::Json => serde_json::to_string_pretty(&description)? + "\n",
        ColumnsFormat::Table => {
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::NOTHING)
                .set_width(super::terminal_width())
                .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
                .set_header(["column", "type", "missing", "distinct", "examples", "role"]);
            for c in &description.columns {
                table.add_row([
                    c.name.clone(),
                    c.kind.clone(),
                    c.nulls.to_string(),
                    c.distinct.to_string(),
                    c.examples.join(", "),
                    c.role.clone(),
                ]);
            }
            format!(
                "{}: {} rows, {} columns\n{table}\n",
                description.path,
                description.rows,
                description.columns.len()
            )
        }
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    Ok(())
}
