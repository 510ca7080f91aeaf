//! `audience compare`: every rule against the model's audience of the same size.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};

use audience::data::{self, HistorySource, Ids, Table};
use audience::metrics::{self, compare_rule, id_keys, ranking};
use audience::model::bundle::{Engine, ModelBundle};
use audience::model::score::score_batch;
use audience::output;
use audience::report::{
    CompareReport, Evaluation, ModelSummary, ReportFormat, RuleReport, SCHEMA_VERSION,
};
use audience::rules::{RuleRunner, expand_rule_paths, load_rule};

use super::{ConfigArgs, Progress, load_history, terminal_width, use_color};

pub const ABOUT: &str = "Put each SQL rule against the model's audience of the same size";

pub const LONG_ABOUT: &str = "\
Put each SQL rule against the model's top-N audience of the same size, on held-out data.

Each rule file holds one read-only SELECT over the history table (data.table, default `history`)
that returns the id column (or *). By default the history is split as audience.toml says, the model
is trained on the training rows and every rule and the model are judged on the held-out rows E.
With --model and --eval, an existing model is judged on the given table instead.

For a rule selecting n people of E, the model's audience is the n highest-scoring people of E
(ties broken by id). Reported: conversions, conversion rate and lift of both; extra conversions;
overlap; a 95% paired-bootstrap interval of the rate difference and a verdict; the rule's ROC point
and AUC; how many people the model reaches at the rule's rate. Then the model's AUC (DeLong 95%
interval), log loss and decile table.";

pub const EXAMPLES: &str = "\
Examples:
  audience compare rules/*.sql                     # train on the split, judge on the holdout
  audience compare rules/*.sql --format json --output report.json
  audience compare rules/*.sql --format markdown --output report.md --force
  audience compare --model model/ --eval new_campaign.csv rules/*.sql";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Rule files (globs are expanded, so a quoted 'rules/*.sql' works too)
    #[arg(value_name = "RULES", default_value = "rules/*.sql")]
    pub rules: Vec<String>,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Judge this existing model bundle (or bare LightGBM model.txt) instead of training one (needs --eval)
    #[arg(long, value_name = "DIR", requires = "eval")]
    pub model: Option<PathBuf>,

    /// Evaluation table for --model: all of its rows are E
    #[arg(long, value_name = "PATH", requires = "model")]
    pub eval: Option<PathBuf>,

    /// Labels of the evaluation table in a separate file, same row order
    #[arg(long, value_name = "PATH", requires = "eval")]
    pub eval_labels: Option<PathBuf>,

    /// Report format [default: table, or from --output's extension]
    #[arg(long, short, value_enum)]
    pub format: Option<FormatArg>,

    /// Write the report to this file instead of standard output
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// The evaluation rows with everything the comparison needs.
struct EvalSet {
    table: Table,
    labels: Vec<u8>,
    ids: Ids,
    id_column: String,
    scores: Vec<f64>,
    evaluation: Evaluation,
    notes: Vec<String>,
}

pub fn run(args: CompareArgs) -> Result<()> {
    let config = args.config.resolve()?;
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(path)) => match path.extension().and_then(|e| e.to_str()) {
            Some("json") => FormatArg::Json,
            Some("csv") => FormatArg::Csv,
            Some("md") | Some("markdown") => FormatArg::Markdown,
            _ => FormatArg::Table,
        },
        (None, None) => FormatArg::Table,
    };
    if let Some(path) = &args.output {
        output::check_overwrite(path, args.force)?;
    }
    // Every rule is read and checked before any data is touched.
    let files = expand_rule_paths(&args.rules)?;
    let rules = files
        .iter()
        .map(|f| load_rule(f, &config.data.table))
        .collect::<audience::Result<Vec<_>>>()?;

    let eval = match (&args.model, &args.eval) {
        (Some(model), Some(eval)) => {
            judge_existing(model, eval, args.eval_labels.as_deref(), &config)?
        }
        _ => train_and_hold_out(&config, args.quiet)?,
    };

    let progress = Progress::new(args.quiet, None, "rules");
    let runner = RuleRunner::new(&eval.table, &config.data.table, &eval.id_column, &eval.ids)?;
    let order = ranking(&eval.scores, &id_keys(eval.ids.iter()));
    let mut reports = Vec::new();
    for rule in &rules {
        let audience = runner.run(rule)?;
        let mut in_rule = vec![false; eval.labels.len()];
        for &r in &audience.rows {
            in_rule[r] = true;
        }
        let comparison = compare_rule(&in_rule, &order, &eval.labels, config.split.seed);
        reports.push(RuleReport::new(
            rule.name.clone(),
            rule.file.display().to_string(),
            comparison,
        ));
    }
    progress.finish();

    let positives = eval.labels.iter().filter(|&&y| y == 1).count();
    let auc = metrics::auc_with_ci(&eval.scores, &eval.labels);
    let note = if positives == 0 {
        Some("AUC is undefined: the evaluation rows hold no conversions".to_string())
    } else if positives == eval.labels.len() {
        Some("AUC is undefined: every evaluation row converted".to_string())
    } else {
        None
    };
    let report = CompareReport {
        schema_version: SCHEMA_VERSION,
        tool: format!("audience {}", env!("CARGO_PKG_VERSION")),
        evaluation: eval.evaluation,
        model: ModelSummary {
            auc: auc.map(|a| a.0),
            auc_ci: auc.and_then(|a| a.1),
            log_loss: metrics::log_loss(&eval.scores, &eval.labels),
            eval_rows: eval.labels.len(),
            positives,
            base_rate: metrics::base_rate(&eval.labels),
            note,
        },
        rules: reports,
        deciles: metrics::decile_table(&order, &eval.scores, &eval.labels),
        notes: eval.notes,
    };
    let format = match format {
        FormatArg::Table => ReportFormat::Table,
        FormatArg::Json => ReportFormat::Json,
        FormatArg::Csv => ReportFormat::Csv,
        FormatArg::Markdown => ReportFormat::Markdown,
    };
    let color = args.output.is_none() && use_color();
    let text = report.render(format, color, terminal_width());
    match &args.output {
        Some(path) => {
            output::write_atomic(path, text.as_bytes(), args.force)?;
            if !args.quiet {
                eprintln!("Report written to {}", path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Trains on the configured split and returns its held-out rows, scored.
fn train_and_hold_out(config: &audience::config::Config, quiet: bool) -> Result<EvalSet> {
    let history = load_history(config)?;
    let training = super::train::fit(&history, config, quiet)?;
    let table = history.table.take(&training.split.holdout)?;
    let labels = training
        .split
        .holdout
        .iter()
        .map(|&r| history.labels[r])
        .collect();
    let ids = history.ids.take(&training.split.holdout);
    let split = match config.split.method {
        audience::config::SplitMethod::Random => format!(
            "stratified random, {} held out, seed {}",
            config.split.test_fraction, config.split.seed
        ),
        audience::config::SplitMethod::Time => format!(
            "by time: {} >= {}",
            config.split.time_column.as_deref().unwrap_or_default(),
            config.split.cutoff.as_deref().unwrap_or_default()
        ),
    };
    Ok(EvalSet {
        table,
        labels,
        ids,
        id_column: history.id_column.clone(),
        scores: training.holdout_scores,
        evaluation: Evaluation {
            source: "holdout".into(),
            data: history.table.path.display().to_string(),
            model_dir: None,
            split: Some(split),
        },
        notes: training.notes,
    })
}

/// Scores a given evaluation table with an existing bundle.
fn judge_existing(
    model: &Path,
    eval: &Path,
    eval_labels: Option<&Path>,
    config: &audience::config::Config,
) -> Result<EvalSet> {
    // A bare model file carries no label or id: those come from the configuration then.
    let bundle = ModelBundle::load(model, config.data.id.as_deref())?;
    let categorical = bundle.features.text_columns();
    let (label, positive, negative) = match &bundle.manifest {
        Some(m) => (
            m.label.column.clone(),
            m.label.positive.clone(),
            m.label.negative.clone(),
        ),
        None => (
            config.label()?.to_string(),
            config
                .data
                .positive
                .clone()
                .unwrap_or_else(data::default_positive),
            config
                .data
                .negative
                .clone()
                .unwrap_or_else(data::default_negative),
        ),
    };
    let source = HistorySource {
        path: eval,
        labels_path: eval_labels,
        // The configured delimiter belongs to the configured history; --eval's is detected.
        delimiter: None,
        label: &label,
        id: (!bundle.id.generated).then_some(bundle.id.column.as_str()),
        positive,
        negative,
        categorical: &categorical,
    };
    let history = data::load_history(&source)?;
    let (scores, unseen) = score_batch(&bundle, &history.table.batch, Engine::Native)?;
    let mut notes = Vec::new();
    if unseen.total() > 0 {
        notes.push(format!(
            "{} categorical value(s) in the evaluation rows were not seen in training and were scored as missing",
            unseen.total()
        ));
    }
    Ok(EvalSet {
        table: history.table.clone(),
        labels: history.labels.clone(),
        ids: history.ids.clone(),
        id_column: history.id_column.clone(),
        scores,
        evaluation: Evaluation {
            source: "file".into(),
            data: eval.display().to_string(),
            model_dir: Some(model.display().to_string()),
            split: None,
        },
        notes,
    })
}
