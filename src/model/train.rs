//! Boosting a binary LightGBM model with early stopping on a separate set of training rows.

use std::collections::BTreeMap;

use crate::config::{ModelConfig, param_value};
use crate::data::encode::{FeatureSet, Matrix};
use crate::metrics;
use crate::model::ensemble::{RankedRows, TreeEnsemble};
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
    /// The early-stopping rows' raw scores after the kept rounds, when training counted them
    /// itself (its own AUC): bit for bit the saved model's, before the sigmoid.
    pub early_raw_scores: Option<Vec<f64>>,
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

/// LightGBM aliases of the metric: early stopping watches AUC, which must come first.
const METRIC_ALIASES: [&str; 3] = ["metric", "metrics", "metric_types"];

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
    train_watching(
        features,
        fit,
        early,
        config,
        seed,
        cluster,
        progress,
        CrossCheck::Off,
    )
}

/// Whether our early-stopping AUC is also checked against LightGBM's, round by round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CrossCheck {
    Off,
    /// LightGBM scores a validation dataset of the early rows as well; any round whose AUC
    /// differs from ours in a single bit is an error (the tests' proof of the claim).
    EveryRound,
}

/// Where each round's early-stopping AUC comes from.
enum Watch<'a> {
    /// No early-stopping rows: every round is kept.
    Nothing,
    /// LightGBM's AUC metric on a validation dataset it scores itself (after every tree, on
    /// binned values, then a sort through a comparator).
    LightGbm,
    /// Ours: each new tree's leaf values added to the rows' running raw scores (rows coded as
    /// ranks), the AUC counted in integers. The same numbers as LightGBM's (see
    /// [`own_auc_is_lightgbms`]), without its sort through a comparator and its log loss after
    /// every round (bench/RESULTS.md).
    Own(RunningScores<'a>),
}

/// The early-stopping rows' raw scores after each round so far.
struct RunningScores<'a> {
    rows: RankedRows,
    labels: &'a [u8],
    raw: Vec<f64>,
    /// `raw` after the best round so far.
    best_raw: Vec<f64>,
    auc: metrics::AucBuffers,
}

impl RunningScores<'_> {
    /// Adds round `round`'s tree to the scores and returns their AUC.
    fn add_round(&mut self, booster: &Booster, round: usize) -> Result<f64> {
        let text = booster.round_text(round)?;
        let tree = TreeEnsemble::parse(&text).map_err(|e| {
            Error::LightGbm(format!(
                "round {}: LightGBM's tree cannot be read: {e}",
                round + 1
            ))
        })?;
        tree.add_raw_scores(&self.rows, &mut self.raw);
        Ok(self.auc.auc(&self.raw, self.labels).unwrap_or(f64::NAN))
    }
}

/// Whether our AUC of the early rows' running scores is LightGBM's own, bit for bit.
///
/// LightGBM scores a validation row by walking each tree on its bins and adding the leaf value
/// to the row's score, starting from the initial score; a split on bins sends a row where the
/// same split on its value does (a numerical threshold is its bin's upper bound, and values map
/// to bins by `value <= bound`; NaN, negative, unseen and rare categories all fall in bin 0,
/// never in a split's left set, as they go right by value), and the first tree's saved leaves
/// hold the initial score, added in the same order. So the scores are LightGBM's, given trees
/// that stay as grown and are simply summed: plain gradient boosting (GOSS included), not DART
/// (which rescales earlier trees) nor random forests (which average), and no linear leaves; one
/// tree per round (a binary objective). LightGBM's AUC sums half-counts in doubles, exact while
/// 2·P·N < 2^53, and ours is the exact count, so they agree there (LightGBM counts rows in
/// 32-bit integers: past 2^31 rows its own AUC is watched). Data-parallel training keeps
/// LightGBM's (each host holds part of the rows). One difference is left: LightGBM saves a
/// first-tree leaf whose value plus the initial score lies within 1e-35 of zero as 0, while its
/// validation scores keep the tiny sum; that could reorder rows only against another leaf value
/// within 1e-35 of zero. The tests check every round against LightGBM's own AUC.
fn own_auc_is_lightgbms(
    parameters: &BTreeMap<String, String>,
    labels: &[u8],
    cluster: Option<&Cluster>,
) -> bool {
    let value = |keys: &[&str]| -> Vec<&str> {
        keys.iter()
            .filter_map(|k| parameters.get(*k).map(String::as_str))
            .collect()
    };
    let positives = labels.iter().filter(|&&y| y == 1).count() as u128;
    let negatives = labels.len() as u128 - positives;
    let exact = 2 * positives * negatives < 1u128 << 53 && labels.len() < 1 << 31;
    let boosting = value(&["boosting", "boosting_type", "boost"])
        .iter()
        .all(|b| matches!(*b, "gbdt" | "gbrt" | "goss"));
    let linear = value(&["linear_tree", "linear_trees"])
        .iter()
        .any(|v| !matches!(*v, "false" | "0"));
    let objective = value(&["objective", "objective_type", "app", "application", "loss"])
        .iter()
        .all(|o| matches!(*o, "binary" | "cross_entropy" | "xentropy"));
    cluster.is_none() && exact && boosting && !linear && objective
}

#[allow(clippy::too_many_arguments)]
fn train_watching(
    features: &FeatureSet,
    fit: (&Matrix, &[u8]),
    early: Option<(&Matrix, &[u8])>,
    config: &ModelConfig,
    seed: u64,
    cluster: Option<&Cluster>,
    progress: &mut dyn FnMut(RoundProgress) -> bool,
    check: CrossCheck,
) -> Result<TrainedModel> {
    if let Some(alias) = ROUND_ALIASES
        .iter()
        .find(|a| config.params.contains_key(**a))
    {
        return Err(Error::Config(format!(
            "model.params.{alias}: set the number of rounds with model.num_rounds (or --num-rounds)"
        )));
    }
    for alias in METRIC_ALIASES {
        if let Some(value) = config.params.get(alias).map(param_value)
            && value.split(',').next().map(str::trim) != Some("auc")
        {
            return Err(Error::Config(format!(
                "model.params.{alias} = {value:?}: early stopping watches the AUC of the early-stopping rows, so the first metric must be auc"
            )));
        }
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
    let own = early.filter(|(_, y)| own_auc_is_lightgbms(&parameters, y, cluster));
    let mut watch = match (early, own.and_then(|(m, _)| RankedRows::new(m))) {
        (None, _) => Watch::Nothing,
        (Some((m, y)), Some(rows)) => Watch::Own(RunningScores {
            rows,
            labels: y,
            raw: vec![0.0; m.rows],
            best_raw: Vec::new(),
            auc: metrics::AucBuffers::default(),
        }),
        (Some(_), None) => Watch::LightGbm,
    };
    // LightGBM scores the early rows itself when its AUC is the one watched, or checked.
    let lightgbm_scores = match watch {
        Watch::LightGbm => true,
        Watch::Own(_) => check == CrossCheck::EveryRound,
        Watch::Nothing => false,
    };
    let valid_set = match early {
        Some((m, y)) if lightgbm_scores => Some(Dataset::from_matrix(
            m,
            &to_f32(y),
            &params,
            &names,
            Some(&train_set),
        )?),
        _ => None,
    };
    let mut booster = Booster::new(train_set, &params)?;
    if let Some(v) = valid_set {
        booster.add_validation(v)?;
    }
    let watching = !matches!(watch, Watch::Nothing);
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
        let lightgbm_auc =
            || -> Result<f64> { Ok(booster.eval(1)?.first().copied().unwrap_or(f64::NAN)) };
        let auc = match &mut watch {
            Watch::Nothing => None,
            Watch::LightGbm => Some(lightgbm_auc()?),
            Watch::Own(scores) => {
                let ours = scores.add_round(&booster, round)?;
                if check == CrossCheck::EveryRound {
                    let theirs = lightgbm_auc()?;
                    if ours.to_bits() != theirs.to_bits() {
                        return Err(Error::LightGbm(format!(
                            "round {}: early-stopping AUC {ours:?}, LightGBM's {theirs:?}",
                            round + 1
                        )));
                    }
                }
                Some(ours)
            }
        };
        // The same rule as Python lightgbm's early_stopping callback (first metric only):
        // a strictly better score moves the best round; `stopping` rounds without one stop.
        if let Some(auc) = auc {
            if auc > best_auc {
                best_auc = auc;
                best_round = round;
                // Kept only when training may stop at this round rather than the last.
                if let Watch::Own(scores) = &mut watch
                    && stopping > 0
                {
                    scores.best_raw.clone_from(&scores.raw);
                }
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
    // The kept rounds end at the last one, or at the best one, whose scores were saved as it
    // came (none were when no round's AUC was a number).
    let early_raw_scores = match watch {
        Watch::Own(scores) if best_iteration == rounds_run => Some(scores.raw),
        Watch::Own(scores) if best_iteration == best_round + 1 && !scores.best_raw.is_empty() => {
            Some(scores.best_raw)
        }
        _ => None,
    };
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
        early_raw_scores,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};

    use super::*;
    use crate::config::Config;
    use crate::data::{HistorySource, load_history};

    /// A history's features, fitted on `fit` rows, and both parts encoded.
    struct Parts {
        features: FeatureSet,
        fit: (Matrix, Vec<u8>),
        early: (Matrix, Vec<u8>),
    }

    fn encode(
        batch: &RecordBatch,
        labels: &[u8],
        not_features: &[&str],
        categorical: &[String],
        fit: &[usize],
        early: &[usize],
    ) -> Parts {
        let (mut features, _) = FeatureSet::plan(&batch.schema(), not_features, categorical);
        features.fit_categories(batch, fit).unwrap();
        let part = |rows: &[usize]| {
            let (m, _) = features.encode(batch, Some(rows)).unwrap();
            (m, rows.iter().map(|&r| labels[r]).collect::<Vec<u8>>())
        };
        let (fit, early) = (part(fit), part(early));
        Parts {
            features,
            fit,
            early,
        }
    }

    /// Trains with our early-stopping AUC checked against LightGBM's after every round, and
    /// returns the model; any round whose two AUCs differ in a bit fails, and so does an early
    /// row whose score, as training left it, is not the saved model's prediction to the bit.
    fn train_checked(parts: &Parts, config: &ModelConfig) -> TrainedModel {
        let early = (&parts.early.0, &parts.early.1[..]);
        let labels = &parts.early.1;
        let parameters = lightgbm_parameters(config, &parts.features, 7);
        assert!(own_auc_is_lightgbms(&parameters, labels, None));
        let trained = train_watching(
            &parts.features,
            (&parts.fit.0, &parts.fit.1),
            Some(early),
            config,
            7,
            None,
            &mut |_| true,
            CrossCheck::EveryRound,
        )
        .unwrap_or_else(|e| panic!("{:?}: {e}", config.params));
        let model = TreeEnsemble::parse(&trained.model_text).unwrap();
        let predicted = model.predict(&parts.early.0);
        let raw = trained
            .early_raw_scores
            .as_ref()
            .unwrap_or_else(|| panic!("{:?}: no early-stopping scores", config.params));
        assert_eq!(raw.len(), predicted.len());
        for (row, (&r, &p)) in raw.iter().zip(&predicted).enumerate() {
            assert_eq!(
                model.output_of_raw(r).to_bits(),
                p.to_bits(),
                "{:?}: early row {row}",
                config.params
            );
        }
        trained
    }

    #[test]
    fn the_early_rows_scores_are_those_of_the_best_round_when_training_stops_early() {
        let parts = hostile_parts(20_000);
        let mut c = config(300, &[]);
        (c.learning_rate, c.early_stopping_rounds) = (0.5, 3);
        let trained = train_checked(&parts, &c);
        assert!(
            trained.best_iteration + 3 == trained.rounds_run && trained.rounds_run < 300,
            "best {} of {}",
            trained.best_iteration,
            trained.rounds_run
        );
    }

    fn config(rounds: u32, params: &[(&str, toml::Value)]) -> ModelConfig {
        ModelConfig {
            num_rounds: rounds,
            early_stopping_rounds: 0,
            learning_rate: 0.2,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..ModelConfig::default()
        }
    }

    fn example(folder: &str) -> (Config, crate::data::History) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config_path = match folder {
            "bank" => root.join("audience.toml"),
            other => root.join("examples").join(other).join("audience.toml"),
        };
        let config = Config::load(&config_path).unwrap();
        let source =
            HistorySource::from_config(&config, config.data.path.as_deref().unwrap()).unwrap();
        let history = load_history(&source).unwrap();
        (config, history)
    }

    #[test]
    fn own_auc_is_lightgbms_on_the_examples_every_round() {
        for folder in ["bank", "coupon"] {
            let (config, history) = example(folder);
            let split = crate::model::plan_split(&history, &config).unwrap();
            let mut not_features = vec![history.label_column.as_str(), &history.id_column];
            not_features.extend(config.data.exclude.iter().map(String::as_str));
            let parts = encode(
                &history.table.batch,
                &history.labels,
                &not_features,
                &config.data.categorical,
                &split.fit,
                &split.early_stopping,
            );
            let trained = train_checked(&parts, &config.model);
            assert!(trained.rounds_run > 20, "{folder}: {}", trained.rounds_run);
        }
    }

    /// Columns that try every way a value can meet a split: missing values, zeros of both
    /// signs and values LightGBM reads as zero, exact ties, values past the training range,
    /// NaN only where LightGBM never saw one, and categories that are rare, cut from the bins,
    /// or never seen in the fit rows.
    fn hostile_parts(rows: usize) -> Parts {
        let mut stream = crate::metrics::bootstrap::Stream::new(15, 0);
        let (mut a, mut b, mut c, mut city, mut y) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..rows {
            let u = stream.next_u64();
            let early = r % 5 == 0;
            a.push(match u % 11 {
                0 => f64::NAN,
                1 => 0.0,
                2 => -0.0,
                3 => 1e-40,
                4 => -1e-36,
                5 if early => 1e300,
                6 => (u >> 20) as f64 % 7.0,
                _ => ((u >> 8) % 10_000) as f64 / 100.0 - 30.0,
            });
            b.push(if early && u.is_multiple_of(13) {
                f64::NAN
            } else {
                ((u >> 30) % 50) as f64
            });
            c.push(((u >> 40) % 3) as f64 * 0.5);
            let category = (u >> 16) % 400;
            city.push(if category >= 390 {
                None
            } else if early && category >= 380 {
                Some(format!("new{category}"))
            } else if category < 60 {
                Some(format!("c{}", category % 30))
            } else {
                Some(format!("c{category}"))
            });
            let lean = (category % 30) as f64 / 30.0 + a[r].clamp(-50.0, 50.0) / 200.0 + c[r] / 4.0;
            y.push(u8::from(((u >> 52) as f64 / 4096.0) < lean * 0.6));
        }
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(Float64Array::from(a)) as ArrayRef),
            ("b", Arc::new(Float64Array::from(b)) as ArrayRef),
            ("c", Arc::new(Float64Array::from(c)) as ArrayRef),
            ("city", Arc::new(StringArray::from(city)) as ArrayRef),
        ])
        .unwrap();
        let fit: Vec<usize> = (0..rows).filter(|r| r % 5 != 0).collect();
        let early: Vec<usize> = (0..rows).filter(|r| r % 5 == 0).collect();
        encode(&batch, &y, &[], &[], &fit, &early)
    }

    #[test]
    fn own_auc_is_lightgbms_on_hostile_values_under_many_parameters() {
        // 5,000 early rows: a whole block of the ranked rows' partition and part of another.
        let parts = hostile_parts(25_000);
        assert!(parts.early.0.values.iter().any(|v| v.is_nan()));
        let int = toml::Value::Integer;
        let text = |s: &str| toml::Value::String(s.into());
        let float = toml::Value::Float;
        let settings: Vec<Vec<(&str, toml::Value)>> = vec![
            vec![],
            vec![("min_data_in_leaf", int(1)), ("min_data_per_group", int(1))],
            vec![("max_cat_to_onehot", int(64)), ("max_bin", int(15))],
            vec![("zero_as_missing", toml::Value::Boolean(true))],
            vec![("use_missing", toml::Value::Boolean(false))],
            vec![
                ("data_sample_strategy", text("goss")),
                ("extra_trees", toml::Value::Boolean(true)),
                ("feature_fraction", float(0.7)),
            ],
            vec![
                ("bagging_fraction", float(0.5)),
                ("bagging_freq", int(1)),
                ("min_data_in_bin", int(50)),
            ],
            vec![
                ("boosting", text("goss")),
                ("objective", text("cross_entropy")),
            ],
            vec![("boost_from_average", toml::Value::Boolean(false))],
        ];
        for params in &settings {
            let trained = train_checked(&parts, &config(40, params));
            assert_eq!(trained.rounds_run, 40, "{params:?}");
            // The trees split on the categories as well as on the numbers.
            let categorical_splits = trained
                .model_text
                .lines()
                .filter(|l| l.starts_with("num_cat=") && *l != "num_cat=0")
                .count();
            assert!(categorical_splits > 0, "{params:?}");
        }
    }

    #[test]
    fn lightgbm_watches_what_our_auc_cannot_follow() {
        let parts = hostile_parts(2_000);
        let with = |pairs: &[(&str, &str)]| -> bool {
            let mut p = lightgbm_parameters(&config(1, &[]), &parts.features, 1);
            for (k, v) in pairs {
                p.insert(k.to_string(), v.to_string());
            }
            own_auc_is_lightgbms(&p, &parts.early.1, None)
        };
        assert!(with(&[]));
        assert!(with(&[("boosting", "gbdt"), ("linear_tree", "false")]));
        assert!(!with(&[("boosting", "dart")]));
        assert!(!with(&[("boosting_type", "rf")]));
        assert!(!with(&[("linear_tree", "true")]));
        assert!(!with(&[("objective", "multiclass")]));
        assert!(!with(&[("application", "regression")]));
        let cluster = Cluster {
            machines: "127.0.0.1:1".into(),
            local_port: 1,
            num_machines: 1,
            rank: 0,
            timeout_minutes: 1,
        };
        let p = lightgbm_parameters(&config(1, &[]), &parts.features, 1);
        assert!(!own_auc_is_lightgbms(&p, &parts.early.1, Some(&cluster)));
        // Past 2·P·N = 2^53, LightGBM's sums round: its AUC is watched.
        let mut labels = vec![1u8; 67_108_864];
        labels.extend(std::iter::repeat_n(0, 67_108_864));
        assert!(!own_auc_is_lightgbms(&p, &labels, None));
        labels.truncate(labels.len() - 1);
        assert!(own_auc_is_lightgbms(&p, &labels, None));
    }

    #[test]
    fn dart_still_stops_early_on_lightgbms_auc() {
        let parts = hostile_parts(4_000);
        let mut c = config(30, &[("boosting", toml::Value::String("dart".into()))]);
        c.early_stopping_rounds = 5;
        let trained = train(
            &parts.features,
            (&parts.fit.0, &parts.fit.1),
            Some((&parts.early.0, &parts.early.1)),
            &c,
            7,
            None,
            &mut |_| true,
        )
        .unwrap();
        assert!(trained.best_iteration <= trained.rounds_run);
    }

    #[test]
    fn a_metric_other_than_auc_first_is_refused() {
        let parts = hostile_parts(500);
        let run = |alias: &str, value: &str| {
            let c = config(2, &[(alias, toml::Value::String(value.into()))]);
            train(
                &parts.features,
                (&parts.fit.0, &parts.fit.1),
                Some((&parts.early.0, &parts.early.1)),
                &c,
                7,
                None,
                &mut |_| true,
            )
        };
        for alias in METRIC_ALIASES {
            let e = run(alias, "binary_logloss,auc").err().unwrap();
            assert!(e.to_string().contains(alias), "{e}");
            assert!(run(alias, "auc").is_ok());
            assert!(run(alias, "auc,binary_error").is_ok());
        }
    }
}
