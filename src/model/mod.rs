//! Training a model from a history, the model bundle, and scoring.

pub mod bundle;
pub mod ensemble;
pub mod leakage;
pub mod lgbm;
pub mod rank;
pub mod score;
pub mod train;

use crate::config::{Config, SplitMethod};
use crate::data::History;
use crate::data::encode::{FeatureSet, Matrix};
use crate::metrics;
use crate::split::{self, Split};
use crate::{Error, Result};
use bundle::{
    BundleMetrics, FeatureImportance, IdInfo, InputInfo, LabelInfo, Manifest, RowCounts,
    SetMetrics, ToolInfo,
};
use lgbm::Booster;
use train::RoundProgress;

/// A model trained on a history's training rows, with the holdout scored.
pub struct TrainingRun {
    pub manifest: Manifest,
    /// LightGBM's model text (without the pandas_categorical line, which the bundle adds).
    pub model_text: String,
    pub booster: Booster,
    pub split: Split,
    /// Scores of the holdout rows, in `split.holdout` order.
    pub holdout_scores: Vec<f64>,
    /// Things the user should know (early stopping off, columns skipped, ...).
    pub notes: Vec<String>,
    /// Things that may make the model's figures wrong (a feature that looks like the outcome).
    pub warnings: Vec<String>,
}

/// Splits the history, encodes it, trains, and measures the model on each part.
pub fn train_history(
    history: &History,
    config: &Config,
    progress: &mut dyn FnMut(RoundProgress) -> bool,
) -> Result<TrainingRun> {
    let split = plan_split(history, config)?;
    train_on_split(history, config, split, None, progress)
}

/// Checks what training needs of a history: configured columns exist, both classes occur.
fn check_trainable(history: &History, config: &Config) -> Result<()> {
    let path = &history.table.path;
    let schema = history.table.batch.schema();
    for name in config.data.exclude.iter().chain(&config.data.categorical) {
        if schema.column_with_name(name).is_none() {
            let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(Error::data(
                path,
                format!(
                    "the configuration names column {name:?}, which the file does not have{}",
                    crate::data::did_you_mean(name, &have)
                ),
            ));
        }
    }
    let positives = history.positives();
    if positives == 0 || positives == history.labels.len() {
        return Err(Error::data(
            path,
            format!(
                "the label {:?} holds only one class ({positives} positive, {} negative rows): a model needs both",
                history.label_column,
                history.labels.len() - positives
            ),
        ));
    }
    Ok(())
}

/// The configured split of a history into fit, early-stopping and holdout rows.
pub fn plan_split(history: &History, config: &Config) -> Result<Split> {
    let path = &history.table.path;
    let split = match config.split.method {
        SplitMethod::Random => split::random_split(
            &history.labels,
            config.split.test_fraction,
            config.split.early_stopping_fraction,
            config.split.seed,
        ),
        SplitMethod::Time => {
            let column = config.split.time_column.as_deref().unwrap_or_default();
            let format = config.split.time_format.as_deref();
            let times = split::TimeColumn::read(history.table.column(column, "time")?, format)
                .map_err(|e| Error::data(path, format!("time column {column:?}: {e}")))?;
            if let Some(row) = times.first_missing() {
                return Err(Error::data(
                    path,
                    format!("data row {}: the time column {column:?} is empty", row + 1),
                ));
            }
            let cutoff = times
                .cutoff(config.split.cutoff.as_deref().unwrap_or_default(), format)
                .map_err(Error::Config)?;
            split::time_split(&times, cutoff, config.split.early_stopping_fraction)
        }
    };
    if split.holdout.is_empty() {
        return Err(Error::Config(
            "the split leaves no rows to hold out: check split.test_fraction or split.cutoff"
                .into(),
        ));
    }
    Ok(split)
}

/// Trains on `split.fit` (stopping early on `split.early_stopping`) and measures the model on
/// every part, `split.holdout` included.
pub fn train_on_split(
    history: &History,
    config: &Config,
    split: Split,
    cluster: Option<&train::Cluster>,
    progress: &mut dyn FnMut(RoundProgress) -> bool,
) -> Result<TrainingRun> {
    check_trainable(history, config)?;
    let path = &history.table.path;
    let schema = history.table.batch.schema();
    let mut not_features: Vec<&str> = vec![&history.label_column, &history.id_column];
    not_features.extend(config.data.exclude.iter().map(String::as_str));
    if config.split.method == SplitMethod::Time
        && let Some(t) = &config.split.time_column
    {
        not_features.push(t);
    }
    let (mut features, skipped) =
        FeatureSet::plan(&schema, &not_features, &config.data.categorical);
    if features.features.is_empty() {
        return Err(Error::data(
            path,
            "no feature columns are left after the label, id and exclusions",
        ));
    }
    features.na_values = config.data.na_values.clone();
    let training_rows = split.training();
    let every_row: Vec<usize> = (0..history.table.num_rows()).collect();
    let strays = features
        .stray_texts(&history.table.batch, &every_row, &config.data.categorical)
        .map_err(|e| Error::data(path, e))?;
    if let Some(s) = strays.first() {
        return Err(Error::data(
            path,
            format!(
                "column {:?} holds numbers except in {} of {} rows (data row {}: {:?}): list such values in data.na_values (na_values = [{:?}]) to read them as missing, or the column in data.categorical to keep it as categories",
                s.column,
                s.strays,
                s.strays + s.numbers,
                s.row + 1,
                s.value,
                s.value
            ),
        ));
    }
    features
        .fit_categories(&history.table.batch, &training_rows)
        .map_err(|e| Error::data(path, e))?;
    let encode = |rows: &[usize]| -> Result<(Matrix, Vec<u8>)> {
        let (m, _) = features
            .encode(&history.table.batch, Some(rows))
            .map_err(|e| Error::data(path, e))?;
        Ok((m, rows.iter().map(|&r| history.labels[r]).collect()))
    };
    let (fit_x, fit_y) = encode(&split.fit)?;
    let (early_x, early_y) = encode(&split.early_stopping)?;
    let (hold_x, hold_y) = encode(&split.holdout)?;

    let trained = train::train(
        &features,
        (&fit_x, &fit_y),
        Some((&early_x, &early_y)),
        &config.model,
        config.split.seed,
        cluster,
        progress,
    )?;
    let booster = trained.booster;
    // The model is measured on every part (a million rows and more) with our evaluator, compiled:
    // exactly LightGBM's predictions (bench (b): max |difference| 0), many times faster than its
    // C API. A model it does not evaluate (linear trees) is measured by LightGBM itself.
    let ensemble = ensemble::TreeEnsemble::parse(&trained.model_text).ok();
    let compiled = ensemble.as_ref().and_then(|e| e.compile().ok());
    let metrics_of = |scores: Vec<f64>, y: &[u8]| -> (SetMetrics, Vec<f64>) {
        (
            SetMetrics {
                rows: y.len(),
                positives: y.iter().filter(|&&v| v == 1).count(),
                auc: metrics::auc(&scores, y),
                log_loss: metrics::log_loss(&scores, y),
            },
            scores,
        )
    };
    let measure = |m: &Matrix, y: &[u8]| -> Result<(SetMetrics, Vec<f64>)> {
        let scores = match &ensemble {
            Some(e) => e.predict_using(m, compiled.as_ref()),
            None => booster.predict(m)?,
        };
        Ok(metrics_of(scores, y))
    };
    // The early-stopping rows' scores, when training summed them, are the model's already.
    let measure_early = || -> Result<(SetMetrics, Vec<f64>)> {
        match (&ensemble, &trained.early_raw_scores) {
            (Some(e), Some(raw)) => Ok(metrics_of(
                raw.iter().map(|&r| e.output_of_raw(r)).collect(),
                &early_y,
            )),
            _ => measure(&early_x, &early_y),
        }
    };
    // The parts side by side: one part's metrics (a sort on one core) beside another's scores.
    let ((fit, early), holdout) = rayon::join(
        || {
            rayon::join(
                || measure(&fit_x, &fit_y),
                || (!early_y.is_empty()).then(measure_early),
            )
        },
        || measure(&hold_x, &hold_y),
    );
    let (fit_metrics, _) = fit?;
    let early_metrics = early.transpose()?.map(|(metrics, _)| metrics);
    let (holdout_metrics, holdout_scores) = holdout?;
    if let Some(bad) = holdout_scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::LightGbm(format!(
            "the trained model scores a held-out row {bad}: check the model parameters"
        )));
    }

    let gains = booster.feature_importance(0, true)?;
    let splits = booster.feature_importance(0, false)?;
    let mut importance: Vec<FeatureImportance> = features
        .features
        .iter()
        .zip(gains.iter().zip(&splits))
        .map(|(f, (&gain, &count))| FeatureImportance {
            name: f.name.clone(),
            gain,
            splits: count as u64,
        })
        .collect();
    importance.sort_by(|a, b| b.gain.total_cmp(&a.gain).then_with(|| a.name.cmp(&b.name)));

    let aucs = leakage::single_feature_aucs(&features, &hold_x, &hold_y, Some((&fit_x, &fit_y)));
    let warnings = leakage::leak_notes(&features, &aucs, &importance, "held-out rows");
    let calibration = {
        let ties: Vec<u64> = (0..holdout_scores.len() as u64).collect();
        let ranking = metrics::Ranking::new(&holdout_scores, &ties);
        metrics::Calibration::of_deciles(&metrics::decile_table(&ranking, &hold_y))
    };
    let training_ids = (!history.id_generated)
        .then(|| crate::data::IdFingerprint::of(training_rows.iter().map(|&r| history.ids.get(r))));
    let mut notes = Vec::new();
    if let Some(n) = &trained.early_stopping_note {
        notes.push(n.clone());
    }
    for s in &skipped {
        notes.push(format!(
            "column {:?} is not a feature: {}",
            s.name, s.reason
        ));
    }
    let manifest = Manifest {
        format_version: bundle::FORMAT_VERSION,
        tool: ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            lightgbm_version: crate::LIGHTGBM_VERSION.into(),
        },
        features,
        label: LabelInfo {
            column: history.label_column.clone(),
            positive: history.positive.clone(),
            negative: history.negative.clone(),
        },
        id: IdInfo {
            column: history.id_column.clone(),
            generated: history.id_generated,
        },
        excluded: config.data.exclude.clone(),
        skipped,
        parameters: trained.parameters,
        num_rounds: config.model.num_rounds,
        early_stopping_rounds: config.model.early_stopping_rounds,
        best_iteration: trained.best_iteration,
        rounds_run: trained.rounds_run,
        split: config.split.clone(),
        rows: RowCounts {
            total: history.table.num_rows(),
            fit: split.fit.len(),
            early_stopping: split.early_stopping.len(),
            holdout: split.holdout.len(),
        },
        metrics: BundleMetrics {
            fit: fit_metrics,
            early_stopping: early_metrics,
            holdout: Some(holdout_metrics),
        },
        importance,
        training_ids,
        calibration,
        input: InputInfo {
            path: crate::remote::shown(&history.table.path),
            sha256: history.sha256.clone(),
            labels_path: config
                .data
                .labels_path
                .as_ref()
                .map(|p| crate::remote::shown(p)),
            labels_sha256: history.labels_sha256.clone(),
        },
    };
    Ok(TrainingRun {
        manifest,
        model_text: trained.model_text,
        booster,
        split,
        holdout_scores,
        notes,
        warnings,
    })
}
