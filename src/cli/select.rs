//! `audience select`: the model's audience of a rule's size on new candidates, ready to launch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use audience::config::Config;
use audience::output::Inputs;
use audience::rules::load_rule;
use audience::select::{AudienceSize, Expected, SelectRequest, read_report, select};

use super::Progress;
use super::score::{ModelArgs, ScoringArgs};

pub const ABOUT: &str = "Pick the model's audience of a rule's size from new candidates";

pub const LONG_ABOUT: &str = "\
Pick the model's audience to launch instead of a rule's.

Runs RULE on the candidates to learn its size n (or takes --size N, or --share P of the
candidates), scores every candidate with the model, and writes the n best: the id, score, rank
(1 = best) and in_rule (whether the rule picks them too), in rank order. People of equal score are
ordered by a seeded hash of their id, as `score` orders them, so the audience is exactly what
`score --top n` keeps; when the cut falls among equal scores, the number tied there is printed.

Prints n, how many people the rule and the model share, and the expected conversions of each
audience from the scores, stated only when the model's scores are calibrated: the people-weighted
mean |mean score - observed rate| over deciles of held-out rows (measured when the model was
trained, or on the --report's evaluation rows when that report judged this very model) is at most
1 point, or a quarter of the base rate where that is larger. With --report (a compare report in
JSON), prints the rule's verdict there.

CSV or Parquet in and out (by extension). The candidates are streamed: memory holds the rule's
ids (16 bytes each) and the n people selected, not the file. With a model whose id is row_id (no
id column), the rule needs the table loaded, as the row numbers are not in the file.";

pub const EXAMPLES: &str = "\
Examples:
  audience select rules/young_professionals.sql --data candidates.csv --output audience.csv
  audience select rules/young_professionals.sql --data candidates.csv --output audience.csv --report report.json
  audience select --size 5000 --data candidates.parquet --output audience.parquet
  audience select rules/fresh_contacts.sql --share 0.1 --data candidates.csv -o audience.csv";

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// The rule whose audience the model's replaces (a .sql file, or s3://bucket/key)
    #[arg(value_name = "RULE", required_unless_present_any = ["size", "share"])]
    pub rule: Option<PathBuf>,

    /// Candidates, CSV or Parquet: a path or s3://bucket/key
    #[arg(long, short, value_name = "PATH")]
    pub data: PathBuf,

    /// Where to write the audience (a path or s3://bucket/key); .parquet writes Parquet, anything else CSV
    #[arg(long, short, value_name = "PATH")]
    pub output: PathBuf,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Audience of N people instead of the rule's size
    #[arg(long, value_name = "N", conflicts_with = "share")]
    pub size: Option<u64>,

    /// Audience of a share P (0 to 1] of the candidates instead of the rule's size
    #[arg(long, value_name = "P")]
    pub share: Option<f64>,

    /// A compare report in JSON, for the rule's verdict
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Configuration file, for data.table and the rule limits [default: audience.toml in this folder or the nearest above it]
    #[arg(long, short, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub scoring: ScoringArgs,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: SelectArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) if !path.exists() => bail!("{}: configuration file not found", path.display()),
        Some(path) => Config::load(path)?,
        None => super::found_config()?,
    };
    let mut inputs = Inputs::default();
    if let audience::config::ConfigOrigin::File(path) = &config.origin {
        inputs.add(path);
    }
    let mut remote = super::remote_files(args.quiet);
    let rule = match &args.rule {
        Some(path) => {
            remote.expect_input(path);
            let path = remote.input(path)?;
            inputs.add(&path);
            Some(load_rule(&path, &config.data.table)?)
        }
        None => None,
    };
    remote.expect_input(&args.data);
    let output = remote.output(&args.output, args.force)?;
    let report = match &args.report {
        Some(path) => {
            inputs.add(path);
            Some(read_report(path)?)
        }
        None => None,
    };
    let bundle = args.model.load()?;
    let candidates = remote.input(&args.data)?;
    let size = match (args.size, args.share) {
        (Some(n), _) => AudienceSize::Count(n),
        (None, Some(p)) if p > 0.0 && p <= 1.0 => AudienceSize::Share(p),
        (None, Some(p)) => bail!("--share must be in (0, 1], got {p}"),
        (None, None) => AudienceSize::OfRule,
    };
    let tie_seed = args.scoring.tie_seed(&bundle);
    let request = SelectRequest {
        bundle: &bundle,
        candidates: &candidates,
        rule: rule.as_ref(),
        table: &config.data.table,
        size,
        output: &output,
        force: args.force,
        delimiter: args.scoring.delimiter()?,
        engine: args.scoring.engine(),
        tie_seed,
        batch_rows: args.scoring.batch_rows,
        limits: config.compare.limits(),
        report: report.as_ref(),
        inputs,
    };
    let mut progress = Progress::new(args.quiet, None, "scoring");
    let summary = select(&request, &mut |rows| {
        progress.update(rows, || "candidates".to_string())
    })?;
    progress.finish();
    remote.finish()?;

    if summary.unseen.total() > 0 {
        eprintln!(
            "warning: {} value(s) of categorical features were not seen in training and were scored as missing",
            summary.unseen.total()
        );
    }
    let name = rule.as_ref().map(|r| r.name.as_str());
    let mut out = String::new();
    out.push_str(&format!(
        "Wrote the model's {} best of {} candidates to {}\n",
        summary.size,
        summary.candidates,
        audience::remote::shown(&output)
    ));
    if let (Some(name), Some(rule_size), Some(shared)) = (name, summary.rule_size, summary.shared) {
        out.push_str(&format!(
            "Rule {name}: {rule_size} candidates; {shared} of them are in the model's audience too ({} only the rule picks, {} only the model)\n",
            rule_size - shared.min(rule_size),
            summary.size - shared.min(summary.size)
        ));
    }
    if let Some((score, tied, kept)) = summary.tied_at_cut {
        out.push_str(&format!(
            "Ties: {tied} candidates share the score {score} at the cut; {kept} of them were selected, by a seeded hash of the id (--seed {tie_seed})\n"
        ));
    }
    match &summary.expected {
        Expected::Stated {
            model,
            rule,
            calibration_error,
            tolerance,
            measured_on,
        } => {
            out.push_str(&format!(
                "Expected conversions, from the scores: the model's audience {model:.1}"
            ));
            if let Some(r) = rule {
                out.push_str(&format!(", the rule's {r:.1}"));
            }
            out.push_str(&format!(
                " (expected, not observed: the scores are within {:.2} points of the observed rates on {measured_on}; tolerance {:.2})\n",
                calibration_error * 100.0,
                tolerance * 100.0
            ));
        }
        Expected::NotStated { reason } => {
            out.push_str(&format!("Expected conversions not stated: {reason}\n"));
        }
    }
    if let Some(v) = &summary.verdict {
        let diff = match (v.rate_diff, v.rate_diff_ci) {
            (Some(d), Some((lo, hi))) => format!(
                ": model minus rule {:+.1} points (95% interval {:+.1} to {:+.1})",
                d * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "Last compare ({}): {}{diff}\n",
            v.evaluation,
            v.verdict.label()
        ));
    } else if summary.verdict_missing {
        out.push_str(&format!(
            "Last compare: the report has no rule named {:?}\n",
            name.unwrap_or_default()
        ));
    }
    print!("{out}");
    Ok(())
}
