//! `audience compare`: every rule against the model's audience of the same size.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use audience::compare::{self, EvaluationSource, Event};
use audience::model::bundle::ModelBundle;
use audience::output;
use audience::report::ReportFormat;
use audience::rules::{expand_rule_paths, load_rule};

use super::{ConfigArgs, Progress, terminal_width, use_color};

pub const ABOUT: &str = "Put each SQL rule against the model's audience of the same size";

pub const LONG_ABOUT: &str = "\
Put each SQL rule against the model's top-N audience of the same size, on held-out data.

Each rule file holds one read-only SELECT over the history table (data.table, default `history`)
that returns the id column (or *). By default the history is split as audience.toml says, the model
is trained on the training rows and every rule and the model are judged on the held-out rows E.
With --model and --eval, an existing model is judged on the given table instead.

Rules run where they would in production: with a random holdout, over the whole history, each
audience then counted on E; with a time split or --eval, over E. A rule that reads the label is an
error; one that reads an excluded column gets a note.

For a rule with n people in E, the model's audience is the n highest-scoring people of E; where
the cut falls among equal scores, the model's figures are the expected values over them (pro
rata), not an order. Reported: conversions, conversion rate and lift of both; extra conversions;
overlap; a 95% paired-bootstrap interval of the rate difference (the model's audience re-picked in
every resample) and a verdict (none below 30 people or 5 conversions: too small); the rule's ROC
point and AUC; how many people the model reaches at the rule's rate. Then the model's AUC (DeLong
95% interval), log loss and decile table. Judging a model on rows it trained on, and features that
look like the outcome, are flagged as warnings.";

pub const EXAMPLES: &str = "\
Examples:
  audience compare rules/*.sql                     # train on the split, judge on the holdout
  audience compare rules/*.sql --format json --output report.json
  audience compare rules/*.sql --format markdown --output report.md --force
  audience compare rules/*.sql --output report.html  # one page to share: charts, no network
  audience compare rules/*.sql --audiences audiences/ # who each rule and the model pick
  audience compare --model model/ --eval new_campaign.csv rules/*.sql";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Csv,
    Markdown,
    Html,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Rule files, local or s3://bucket/key (globs are expanded, so a quoted 'rules/*.sql' or 's3://bucket/rules/*.sql' works too)
    #[arg(value_name = "RULES", default_value = "rules/*.sql")]
    pub rules: Vec<String>,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Judge this existing model bundle (or bare LightGBM model.txt) instead of training one (needs --eval)
    #[arg(long, short, value_name = "DIR", requires = "eval")]
    pub model: Option<PathBuf>,

    /// Evaluation table for --model (a path or s3://bucket/key): all of its rows are E
    #[arg(long, value_name = "PATH", requires = "model")]
    pub eval: Option<PathBuf>,

    /// Labels of the evaluation table in a separate file, same row order
    #[arg(long, value_name = "PATH", requires = "eval")]
    pub eval_labels: Option<PathBuf>,

    /// Report format [default: table, or from --output's extension]
    #[arg(long, short, value_enum)]
    pub format: Option<FormatArg>,

    /// Write the report to this file (a path or s3://bucket/key) instead of standard output, in the format its extension
    /// says (.json, .csv, .md, .html; `-` is the terminal table); repeatable
    #[arg(long, short, value_name = "PATH")]
    pub output: Vec<PathBuf>,

    /// Keep the model compare trains as a bundle in this directory (as `train --output` writes)
    #[arg(long, value_name = "DIR")]
    pub save_model: Option<PathBuf>,

    /// Also write, per rule, who the rule and the model pick on the evaluation rows:
    /// DIR/<rule>.csv with id, part (both, rule_only, model_only), in_rule, in_model, score,
    /// converted and model_rank
    #[arg(long, value_name = "DIR")]
    pub audiences: Option<PathBuf>,

    /// Replace an existing output file (and audience files)
    #[arg(long)]
    pub force: bool,

    /// Colour in the terminal table: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// The format an output's extension names (the table for any other).
fn format_of(path: &std::path::Path) -> FormatArg {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => FormatArg::Json,
        Some("csv") => FormatArg::Csv,
        Some("md") | Some("markdown") => FormatArg::Markdown,
        Some("html") | Some("htm") => FormatArg::Html,
        _ => FormatArg::Table,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

pub fn run(args: CompareArgs) -> Result<()> {
    let mut config = args.config.resolve()?;
    let mut remote = super::remote_files(args.quiet);
    // Each output's format from its extension (`-` is standard output: the table); --format
    // sets it when there is one output, or none.
    if args.format.is_some() && args.output.len() > 1 {
        bail!(
            "--format names one format, but {} outputs were given: their extensions choose each one's",
            args.output.len()
        );
    }
    let outputs: Vec<(Option<PathBuf>, FormatArg)> = if args.output.is_empty() {
        vec![(None, args.format.unwrap_or(FormatArg::Table))]
    } else {
        args.output
            .iter()
            .map(|path| {
                let stdout = path.as_os_str() == "-";
                let format = args.format.unwrap_or(if stdout {
                    FormatArg::Table
                } else {
                    format_of(path)
                });
                (if stdout { None } else { Some(path.clone()) }, format)
            })
            .collect()
    };
    if outputs.iter().filter(|(p, _)| p.is_none()).count() > 1 {
        bail!("standard output (-) is given more than once");
    }
    // Every rule is read and checked before any data is touched.
    let files = expand_rule_paths(&remote.rule_inputs(&args.rules)?)?;
    super::expect_config_inputs(&mut remote, &config);
    for path in args.eval.iter().chain(&args.eval_labels) {
        remote.expect_input(path);
    }
    let mut inputs = super::config_inputs(&args.config, &config);
    for p in files
        .iter()
        .chain(&args.model)
        .chain(&args.eval)
        .chain(&args.eval_labels)
    {
        inputs.add(p);
    }
    let mut seen = std::collections::BTreeSet::new();
    for path in outputs.iter().filter_map(|(p, _)| p.as_ref()) {
        if !seen.insert(path.clone()) {
            bail!("{}: given as --output twice", path.display());
        }
    }
    // An s3:// output is written to a local file and uploaded once the run has succeeded.
    let outputs = outputs
        .into_iter()
        .map(|(path, format)| {
            Ok((
                path.map(|p| remote.output(&p, args.force)).transpose()?,
                format,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    for path in outputs.iter().filter_map(|(p, _)| p.as_ref()) {
        output::check_file_output(path, args.force, &inputs)?;
    }
    if let Some(dir) = &args.save_model {
        if args.model.is_some() {
            bail!("--save-model keeps the model compare trains; with --model there is none");
        }
        output::check_bundle_output(dir, args.force, &inputs)?;
    }
    let rules = files
        .iter()
        .map(|f| load_rule(f, &config.data.table))
        .collect::<audience::Result<Vec<_>>>()?;
    // Audience files that would be refused are refused now, not after training.
    if let Some(dir) = &args.audiences {
        for rule in &rules {
            output::check_file_output_in_created_folder(
                &dir.join(format!("{}.csv", rule.name)),
                args.force,
                &inputs,
            )?;
        }
    }
    super::fetch_config_inputs(&mut remote, &mut config)?;
    let eval = args.eval.as_deref().map(|p| remote.input(p)).transpose()?;
    let eval_labels = args
        .eval_labels
        .as_deref()
        .map(|p| remote.input(p))
        .transpose()?;
    let source = match (&args.model, &eval) {
        (Some(model), Some(eval)) => EvaluationSource::Existing {
            model,
            eval,
            eval_labels: eval_labels.as_deref(),
        },
        _ => EvaluationSource::Holdout,
    };

    // Each phase shows its own progress from its first moment: a spinner while the rows are
    // read, the rounds while training, the rules while they run.
    let mut loading: Option<Progress> = None;
    let mut training: Option<Progress> = None;
    let mut rules_progress: Option<Progress> = None;
    let rounds = u64::from(config.model.num_rounds);
    let result = compare::compare(&config, &rules, source, &mut |event| match event {
        Event::Loading { path } => {
            loading = Some(Progress::step(
                args.quiet,
                "Reading",
                &audience::remote::shown(path),
            ));
        }
        Event::Training {
            rows,
            positives,
            path,
        } => {
            if let Some(p) = loading.take() {
                p.finish();
            }
            let progress = training.insert(Progress::new(args.quiet, Some(rounds), "training"));
            progress.note(&super::training_line(rows, positives, path));
        }
        Event::Round(p) => {
            if let Some(progress) = &mut training {
                progress.update(p.round as u64, || super::round_message(p));
            }
        }
        Event::Trained { notes } => {
            if let Some(progress) = &training {
                progress.finish();
                for note in notes {
                    progress.note(&format!("note: {note}"));
                }
            }
        }
        Event::Rule { index, total, name } => {
            if let Some(p) = loading.take() {
                p.finish();
            }
            let progress = rules_progress
                .get_or_insert_with(|| Progress::new(args.quiet, Some(total as u64), "rules"));
            progress.update(index as u64, || name.to_string());
        }
        Event::Bootstrap => {
            if let Some(p) = &rules_progress {
                p.finish();
            }
        }
    });
    // Cleared whether the run succeeded or not, so an error is not printed beside a bar.
    for p in [&loading, &training, &rules_progress].into_iter().flatten() {
        p.finish();
    }
    let comparison = result?;
    if let Some(dir) = &args.audiences {
        let written = comparison.people.write(dir, args.force, &inputs)?;
        if !args.quiet {
            eprintln!(
                "Audiences of {} rule(s) written to {}",
                written.len(),
                dir.display()
            );
        }
    }
    if let (Some(dir), Some(training)) = (&args.save_model, &comparison.training) {
        ModelBundle::write(dir, &training.manifest, &training.model_text, args.force)?;
        if !args.quiet {
            eprintln!("Model bundle written to {}", dir.display());
        }
    }
    let report = comparison.report;
    let mut written = Vec::new();
    for (path, format) in &outputs {
        let format = match format {
            FormatArg::Table => ReportFormat::Table,
            FormatArg::Json => ReportFormat::Json,
            FormatArg::Csv => ReportFormat::Csv,
            FormatArg::Markdown => ReportFormat::Markdown,
            FormatArg::Html => ReportFormat::Html,
        };
        let color = match args.color {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => path.is_none() && use_color(),
        };
        let text = report.render(format, color, terminal_width());
        match path {
            Some(path) => {
                output::write_atomic(path, text.as_bytes(), args.force)?;
                written.push(path);
            }
            None => std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?,
        }
    }
    remote.finish()?;
    if !args.quiet {
        for path in written {
            eprintln!("Report written to {}", audience::remote::shown(path));
        }
    }
    Ok(())
}
