//! `audience train`: fit a LightGBM model to the promotion history and write a model bundle.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use audience::model::bundle::ModelBundle;
use audience::model::{self, TrainingRun};
use audience::output;

use super::{ConfigArgs, Progress, load_history};

pub const ABOUT: &str = "Train a LightGBM conversion model and write a model bundle";

pub const LONG_ABOUT: &str = "\
Train a LightGBM conversion model on the promotion history and write a model bundle.

The history is split as audience.toml says (stratified random holdout by default). Trees grow on
the training rows; a slice of them (split.early_stopping_fraction) decides when to stop; the
held-out rows are only used to measure the finished model, so its holdout AUC is honest.

The bundle directory holds model.txt (LightGBM's text format, loadable by Python's
lightgbm.Booster, with the pandas_categorical line so category columns map exactly as here) and
audience-model.json (features, category vocabularies, parameters, metrics, input checksum).";

pub const EXAMPLES: &str = "\
Examples:
  audience train                                   # audience.toml in this directory
  audience train --output model/ --force              # replace an existing bundle
  audience train --data history.csv --label converted --exclude call_seconds
  audience train --num-rounds 500 --param min_data_in_leaf=50 --param feature_fraction=0.8
  audience train --split-out split.csv             # write which rows trained and which were held out";

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Model bundle directory to write
    #[arg(
        long = "output",
        short = 'o',
        visible_alias = "out",
        value_name = "DIR",
        default_value = "model"
    )]
    pub out: PathBuf,

    /// Replace an existing bundle (a directory holding only a bundle's two files), or --split-out file
    #[arg(long)]
    pub force: bool,

    /// Also write each row's id and part (fit, early_stopping, holdout) to this CSV
    #[arg(long, value_name = "PATH")]
    pub split_out: Option<PathBuf>,

    /// No progress on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut config = args.config.resolve()?;
    let inputs = super::config_inputs(&args.config, &config);
    output::check_bundle_output(&args.out, args.force, &inputs)?;
    if let Some(p) = &args.split_out {
        output::check_file_output(p, args.force, &inputs)?;
    }
    let mut remote = super::remote_files(args.quiet);
    super::fetch_config_inputs(&mut remote, &mut config)?;
    let reading = Progress::step(
        args.quiet,
        "Reading",
        &audience::remote::shown(config.data_path()?),
    );
    let history = load_history(&config)?;
    reading.finish();
    let training = fit(&history, &config, args.quiet)?;
    ModelBundle::write(
        &args.out,
        &training.manifest,
        &training.model_text,
        args.force,
    )?;
    if let Some(path) = &args.split_out {
        write_split(path, &history, &training, args.force)?;
    }
    print_summary(&training, &history, &args.out)?;
    Ok(())
}

/// Trains with a progress display; shared with `compare`.
pub fn fit(
    history: &audience::data::History,
    config: &audience::config::Config,
    quiet: bool,
) -> Result<TrainingRun> {
    let mut progress = Progress::new(quiet, Some(u64::from(config.model.num_rounds)), "training");
    progress.note(&super::training_line(
        history.table.num_rows(),
        history.positives(),
        &history.table.path,
    ));
    let run = model::train_history(history, config, &mut |p| {
        progress.update(p.round as u64, || super::round_message(&p));
        true
    })?;
    progress.finish();
    for note in &run.notes {
        progress.note(&format!("note: {note}"));
    }
    for warning in &run.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(run)
}

fn write_split(
    path: &std::path::Path,
    history: &audience::data::History,
    training: &TrainingRun,
    force: bool,
) -> Result<()> {
    let mut part = vec![""; history.ids.len()];
    for &r in &training.split.fit {
        part[r] = "fit";
    }
    for &r in &training.split.early_stopping {
        part[r] = "early_stopping";
    }
    for &r in &training.split.holdout {
        part[r] = "holdout";
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([history.id_column.as_str(), "part"])?;
    for (id, p) in history.ids.iter().zip(part) {
        w.write_record([id, p])?;
    }
    output::write_atomic(path, &w.into_inner()?, force)?;
    Ok(())
}

fn print_summary(
    training: &TrainingRun,
    history: &audience::data::History,
    out: &std::path::Path,
) -> Result<()> {
    let m = &training.manifest;
    let mut o = std::io::stdout().lock();
    let numeric = m
        .features
        .features
        .iter()
        .filter(|f| f.kind == audience::data::encode::FeatureKind::Numeric)
        .count();
    let categorical = m.features.features.len() - numeric;
    writeln!(o, "Model bundle written to {}", out.display())?;
    writeln!(
        o,
        "Rows: {} ({} conversions, {:.2}%): {} fit, {} early stopping, {} held out",
        m.rows.total,
        history.positives(),
        100.0 * history.positives() as f64 / m.rows.total as f64,
        m.rows.fit,
        m.rows.early_stopping,
        m.rows.holdout
    )?;
    if let Some(ranges) = &training.split.time_ranges {
        writeln!(o, "Time split: {ranges}")?;
    }
    writeln!(
        o,
        "Features: {} ({numeric} numeric, {categorical} categorical); excluded: {}",
        m.features.features.len(),
        if m.excluded.is_empty() {
            "none".to_string()
        } else {
            m.excluded.join(", ")
        }
    )?;
    writeln!(
        o,
        "Trees: {} kept of {} rounds run (max {})",
        m.best_iteration, m.rounds_run, m.num_rounds
    )?;
    let fmt = |v: Option<f64>| v.map_or("undefined".to_string(), |x| format!("{x:.4}"));
    if let Some(h) = &m.metrics.holdout {
        writeln!(
            o,
            "Holdout ({} rows, {} conversions): AUC {}, log loss {}",
            h.rows,
            h.positives,
            fmt(h.auc),
            fmt(h.log_loss)
        )?;
        if h.auc.is_none() {
            writeln!(
                o,
                "  AUC is undefined on the holdout: it holds only one class"
            )?;
        }
    }
    if let Some(e) = &m.metrics.early_stopping {
        writeln!(o, "Early-stopping rows: AUC {}", fmt(e.auc))?;
    }
    writeln!(o, "Top features by gain:")?;
    let total: f64 = m.importance.iter().map(|f| f.gain).sum();
    for f in m.importance.iter().take(10).filter(|f| f.gain > 0.0) {
        writeln!(
            o,
            "  {:<24} {:>6.1}%  ({} splits)",
            f.name,
            100.0 * f.gain / total.max(f64::MIN_POSITIVE),
            f.splits
        )?;
    }
    Ok(())
}
