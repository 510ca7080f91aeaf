//! Boosting a binary LightGBM model with early stopping on a separate set of training rows.

use std::collections::BTreeMap;

use crate::config::{ModelConfig, param_value};
use crate::data::encode::{FeatureSet, Matrix};
use crate::model::lgbm::{Booster, Dataset, Network};
use crate::{Error, Result};

/// This host's place in a data-parallel training job: LightGBM's `tree_learner=data` over
/// `machines`, each host holding every `num_machines`-th fit row (from `rank`). Every host
/// builds the bins from all fit rows, so they agree with each other and with one-host training.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `ip:port,ip:port`, in host order.
    pub machines: String,
    pub local_port: u16,
    pub num_machines: usize,
    pub rank: usize,
    pub timeout_minutes: u32,
}

/// One boosting round, as reported to a progress display.
#[derive(Debug, Clone, Copy)]
pub struct RoundProgress {
    /// 1-based round number.
    pub round: usize,
    pub max_rounds: usize,
    /// AUC on the early-stopping rows (None when there are none).
    pub early_stopping_auc: Option<f64>,
    pub best_round: usize,
}

/// The outcome of training.
pub struct TrainedModel {
    pub booster: Booster,
    /// LightGBM's text model, truncated to the best round.
    pub model_text: String,
    /// Rounds kept in the model.
    pub best_iteration: usize,
    /// Rounds actually run (more than kept when early stopping fired).
    pub rounds_run: usize,
    /// The LightGBM parameters used, as passed.
    pub parameters: BTreeMap<String, String>,
    /// Why early stopping was not used, when it was not.
    pub early_stopping_note: Option<String>,
}

/// The LightGBM parameters for a model: our defaults, then the configuration, then `params`.
pub fn lightgbm_parameters(
    config: &ModelConfig,
    features: &FeatureSet,
    seed: u64,
) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        p.insert(k.to_string(), v);
    };
    set("objective", "binary".into());
    // AUC first: early stopping watches the first metric.
    set("metric", "auc,binary_logloss".into());
    set("num_leaves", config.num_leaves.to_string());
    set("learning_rate", config.learning_rate.to_string());
    set("seed", seed.to_string());
    // Same model for the same data whatever the machine's core count.
    set("deterministic", "true".into());
    set("force_col_wise", "true".into());
    set("verbosity", "-1".into());
    let cats = features.categorical_indexes();
    if !cats.is_empty() {
        set(
            "categorical_feature",
            cats.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    for (k, v) in &config.params {
        p.insert(k.clone(), param_value(v));
    }
    p
}

/// The `key=value key=value` form of LightGBM's parameter string.
pub fn parameter_string(parameters: &BTreeMap<String, String>) -> Result<String> {
    let mut parts = Vec::new();
    for (k, v) in parameters {
        if k.contains(char::is_whitespace) || v.contains(char::is_whitespace) || v.is_empty() {
            return Err(Error::Config(format!(
                "model parameter {k} = {v:?}: LightGBM parameters cannot be empty or contain spaces"
            )));
        }
        parts.push(format!("{k}={v}"));
    }
    Ok(parts.join(" "))
}

/// LightGBM aliases of the round count: the configuration's `num_rounds` is the one place for it.
const ROUND_ALIASES: [&str; 8] = [
    "num_iterations",
    "num_iteration",
    "n_iter",
    "num_tree",
    "num_trees",
    "num_round",
    "num_rounds",
    "num_boost_round",
];

/// Trains on `fit` rows, stopping early on the `early` rows when they have both classes.
/// `progress` hears of every round and returns false to stop training (a termination signal).
pub fn train(
    features: &FeatureSet,
    fit: (&Matrix, &[u8]),
    early: Option<(&Matrix, &[u8])>,
    config: &ModelConfig,
    seed: u64,
    cluster: Option<&Cluster>,
    progress: &mut dyn FnMut(RoundProgress) -> bool,
) -> Result<TrainedModel> {
    if let Some(alias) = ROUND_ALIASES
        .iter()
        .find(|a| config.params.contains_key(**a))
    {
        return Err(Error::Config(format!(
            "model.params.{alias}: set the number of rounds with model.num_rounds (or --num-rounds)"
        )));
    }
    let mut parameters = lightgbm_parameters(config, features, seed);
    if let Some(c) = cluster {
        parameters.insert("tree_learner".into(), "data".into());
        parameters.insert("num_machines".into(), c.num_machines.to_string());
    }
    let params = parameter_string(&parameters)?;
    let names = features.names();
    let (fit_matrix, fit_labels) = fit;
    let fit_positives = fit_labels.iter().filter(|&&y| y == 1).count();
    if fit_positives == 0 || fit_positives == fit_labels.len() {
        return Err(Error::Config(format!(
            "the training rows hold only one class ({fit_positives} positives of {}): a model cannot learn from that",
            fit_labels.len()
        )));
    }
    let to_f32 = |labels: &[u8]| labels.iter().map(|&y| f32::from(y)).collect::<Vec<f32>>();
    // Data-parallel: the network first (bins are agreed over it), then all fit rows for the
    // bins, then this host's share of the rows, binned like the whole.
    let mut network = None;
    let mut all_rows = None;
    let train_set = match cluster {
        None => Dataset::from_matrix(fit_matrix, &to_f32(fit_labels), &params, &names, None)?,
        Some(c) => {
            network = Some(Network::init(
                &c.machines,
                c.local_port,
                c.timeout_minutes,
                c.num_machines,
            )?);
            let whole =
                Dataset::from_matrix(fit_matrix, &to_f32(fit_labels), &params, &names, None)?;
            let mine: Vec<usize> = (c.rank..fit_matrix.rows).step_by(c.num_machines).collect();
            let cols = fit_matrix.cols;
            let mut values = Vec::with_capacity(mine.len() * cols);
            for &r in &mine {
                values.extend_from_slice(&fit_matrix.values[r * cols..(r + 1) * cols]);
            }
            let shard = Matrix {
                values,
                rows: mine.len(),
                cols,
            };
            let labels: Vec<u8> = mine.iter().map(|&r| fit_labels[r]).collect();
            let set =
                Dataset::from_matrix(&shard, &to_f32(&labels), &params, &names, Some(&whole))?;
            all_rows = Some(whole);
            set
        }
    };

    let mut early_stopping_note = None;
    let early = match early {
        Some((m, y)) if m.rows > 0 => {
            let positives = y.iter().filter(|&&v| v == 1).count();
            if positives == 0 || positives == y.len() {
                early_stopping_note = Some(format!(
                    "early stopping is off: its {} rows hold only one class",
                    y.len()
                ));
                None
            } else {
                Some((m, y))
            }
        }
        _ => {
            early_stopping_note = Some("early stopping is off: no early-stopping rows".into());
            None
        }
    };
    if config.early_stopping_rounds == 0 {
        early_stopping_note = Some("early stopping is off (early_stopping_rounds = 0)".into());
    }
    let valid_set = match early {
        Some((m, y)) => Some(Dataset::from_matrix(
            m,
            &to_f32(y),
            &params,
            &names,
            Some(&train_set),
        )?),
        None => None,
    };
    let mut booster = Booster::new(train_set, &params)?;
    let watching = valid_set.is_some();
    if let Some(v) = valid_set {
        booster.add_validation(v)?;
    }
    let stopping = config.early_stopping_rounds as usize;
    let max_rounds = config.num_rounds as usize;
    let mut best_auc = f64::NEG_INFINITY;
    let mut best_round = 0usize; // 0-based index of the best round
    let mut rounds_run = 0usize;
    for round in 0..max_rounds {
        let finished = booster.update()?;
        if finished {
            break;
        }
        rounds_run = round + 1;
        let auc = if watching {
            Some(booster.eval(1)?.first().copied().unwrap_or(f64::NAN))
        } else {
            None
        };
        // The same rule as Python lightgbm's early_stopping callback (first metric only):
        // a strictly better score moves the best round; `stopping` rounds without one stop.
        if let Some(auc) = auc {
            if auc > best_auc {
                best_auc = auc;
                best_round = round;
            }
        } else {
            best_round = round;
        }
        let go_on = progress(RoundProgress {
            round: round + 1,
            max_rounds,
            early_stopping_auc: auc,
            best_round: best_round + 1,
        });
        if !go_on {
            return Err(Error::Stopped(format!(
                "training stopped after round {} of {max_rounds}",
                round + 1
            )));
        }
        if watching && stopping > 0 && round - best_round >= stopping {
            break;
        }
    }
    if rounds_run == 0 {
        return Err(Error::LightGbm(
            "no tree could be grown: check min_data_in_leaf and the data".into(),
        ));
    }
    let best_iteration = if watching && stopping > 0 {
        best_round + 1
    } else {
        rounds_run
    };
    let model_text = booster.model_text(best_iteration)?;
    // Predict with exactly what is saved: the trees after the best round are gone.
    drop(booster);
    drop(all_rows);
    drop(network);
    let booster = Booster::from_model_text(&model_text)?;
    Ok(TrainedModel {
        booster,
        model_text,
        best_iteration,
        rounds_run,
        parameters,
        early_stopping_note,
    })
}
