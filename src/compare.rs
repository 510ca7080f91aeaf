//! `compare`'s workflow: every rule against the model's audience of the same size, on evaluation
//! rows the model did not learn from.
//!
//! The evaluation rows E are either a split's held-out rows (the model is trained here on the
//! rest) or every row of a given table judged with an existing model. Rules run where they would
//! run in production: with a random holdout, over the whole history (the base holds training and
//! held-out people alike), each audience then counted on E; with a time split or a given table,
//! over E itself (the base at that time). Before anything trains, every rule is planned against
//! the table's schema: a rule that reads the label is an error, one that reads an excluded column
//! gets a note. The report notes rows the model trained on, features that look like the outcome,
//! and evaluation sets too small to support a verdict.

use std::path::Path;

use crate::config::{Config, SplitMethod};
use crate::data::{self, HistorySource, Ids, Table};
use crate::metrics::{self, BOOTSTRAP_RESAMPLES, MIN_EVAL_CONVERSIONS, Ranking, RuleFloor};
use crate::model::bundle::{Engine, ModelBundle};
use crate::model::score::score_batch;
use crate::model::train::RoundProgress;
use crate::model::{self, TrainingRun, leakage};
use crate::output;
use crate::report::{
    CompareReport, Evaluation, ModelSummary, RuleReport, RuleScope, SCHEMA_VERSION,
};
use crate::rules::{Rule, RulePlanner, RuleRunner, reads_label_error};
use crate::{Error, Result};

/// Points of the curves in a report (a chart's resolution: every half percent of E).
const CURVE_POINTS: usize = 200;

/// Which rows judge the rules and the model.
#[derive(Debug, Clone, Copy)]
pub enum EvaluationSource<'a> {
    /// Train on the configured split, judge on its held-out rows.
    Holdout,
    /// Judge an existing model (bundle or bare model.txt) on every row of `eval`.
    Existing {
        model: &'a Path,
        eval: &'a Path,
        eval_labels: Option<&'a Path>,
    },
}

/// What `compare` is doing, for a progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// The table is being read: its types inferred, every rule planned against them, then its
    /// rows loaded (the longest silent step of a large history).
    Loading {
        path: &'a Path,
    },
    /// Training starts on this history.
    Training {
        rows: usize,
        positives: usize,
        path: &'a Path,
    },
    Round(&'a RoundProgress),
    /// Training ended; notes about it.
    Trained {
        notes: &'a [String],
    },
    /// Rule `index` (0-based) of `total` starts.
    Rule {
        index: usize,
        total: usize,
        name: &'a str,
    },
    /// The paired bootstrap starts.
    Bootstrap,
}

/// The report, the model trained for it (when one was), and the people behind its figures.
pub struct Comparison {
    pub report: CompareReport,
    pub training: Option<TrainingRun>,
    pub people: EvaluationPeople,
}

/// The evaluation rows E and each rule's people among them: who the rule and the model each
/// pick, for `compare --audiences`.
pub struct EvaluationPeople {
    pub id_column: String,
    pub ids: Ids,
    pub scores: Vec<f64>,
    pub labels: Vec<u8>,
    /// E's rows best first: score descending, equal scores by the seeded id hash (the order
    /// `score --top` and `select` choose real people in).
    pub order: Vec<usize>,
    /// Per rule (in report order): its name and its people in E, as rows of E, ascending.
    pub rules: Vec<(String, Vec<usize>)>,
}

/// Which of the two audiences a person is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Both,
    RuleOnly,
    ModelOnly,
}

impl Part {
    pub fn label(self) -> &'static str {
        match self {
            Part::Both => "both",
            Part::RuleOnly => "rule_only",
            Part::ModelOnly => "model_only",
        }
    }
}

/// One person of R ∪ M.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    /// The row of E.
    pub row: usize,
    pub part: Part,
    /// 1-based position in the model's ranking of E.
    pub model_rank: usize,
}

impl EvaluationPeople {
    /// R ∪ M for rule `index`, by model rank: M is the first n = |R| people of the ranking, the
    /// real people behind the report's pro-rata figures when its cut falls among equal scores.
    pub fn audience(&self, index: usize) -> Vec<AudienceMember> {
        let rule = &self.rules[index].1;
        let n = rule.len();
        let mut rank = vec![0usize; self.order.len()];
        for (position, &row) in self.order.iter().enumerate() {
            rank[row] = position + 1;
        }
        let mut in_rule = vec![false; self.order.len()];
        for &row in rule {
            in_rule[row] = true;
        }
        let mut members: Vec<AudienceMember> = self.order[..n]
            .iter()
            .map(|&row| AudienceMember {
                row,
                part: if in_rule[row] {
                    Part::Both
                } else {
                    Part::ModelOnly
                },
                model_rank: rank[row],
            })
            .collect();
        members.extend(
            rule.iter()
                .filter(|&&row| rank[row] > n)
                .map(|&row| AudienceMember {
                    row,
                    part: Part::RuleOnly,
                    model_rank: rank[row],
                }),
        );
        members.sort_by_key(|m| m.model_rank);
        members
    }

    /// Writes one CSV per rule into `dir` (created if absent): `<rule>.csv` with the id,
    /// `part` (both, rule_only, model_only), `in_rule`, `in_model`, `score`, `converted` and
    /// `model_rank` of every person in R ∪ M. Each file is written atomically; an existing one
    /// is replaced only with `force`, and never one of `inputs`. Returns the files written.
    pub fn write(
        &self,
        dir: &Path,
        force: bool,
        inputs: &output::Inputs,
    ) -> Result<Vec<std::path::PathBuf>> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Output {
                path: dir.to_path_buf(),
                message: "is not a directory (--audiences takes a directory)".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let paths: Vec<_> = self
            .rules
            .iter()
            .map(|(name, _)| dir.join(format!("{name}.csv")))
            .collect();
        for path in &paths {
            output::check_file_output(path, force, inputs)?;
        }
        for (index, path) in paths.iter().enumerate() {
            let mut text = format!(
                "{},part,in_rule,in_model,score,converted,model_rank\n",
                csv_field(&self.id_column)
            );
            for m in self.audience(index) {
                let (in_rule, in_model) = match m.part {
                    Part::Both => (true, true),
                    Part::RuleOnly => (true, false),
                    Part::ModelOnly => (false, true),
                };
                text.push_str(&format!(
                    "{},{},{in_rule},{in_model},{},{},{}\n",
                    csv_field(self.ids.get(m.row)),
                    m.part.label(),
                    self.scores[m.row],
                    self.labels[m.row],
                    m.model_rank
                ));
            }
            output::write_atomic(path, text.as_bytes(), force)?;
        }
        Ok(paths)
    }
}

/// A CSV field, quoted when it must be.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The evaluation rows E and what the rules run over.
struct EvalSet {
    labels: Vec<u8>,
    ids: Ids,
    id_column: String,
    scores: Vec<f64>,
    base: RuleBase,
    evaluation: Evaluation,
    notes: Vec<String>,
    warnings: Vec<String>,
}

/// The table rules run over.
enum RuleBase {
    /// The whole history; `eval_position[row]` is the row's position in E (`u32::MAX`: not in E).
    History {
        table: Table,
        ids: Ids,
        eval_position: Vec<u32>,
    },
    /// E itself.
    Evaluation { table: Table },
}

/// Runs the comparison of `rules` (read and checked with `rules::load_rule`) on `source`.
pub fn compare(
    config: &Config,
    rules: &[Rule],
    source: EvaluationSource,
    events: &mut dyn FnMut(Event),
) -> Result<Comparison> {
    let (eval, training) = match source {
        EvaluationSource::Holdout => {
            let (eval, training) = holdout(config, rules, events)?;
            (eval, Some(training))
        }
        EvaluationSource::Existing {
            model,
            eval,
            eval_labels,
        } => (
            existing(config, rules, model, eval, eval_labels, events)?,
            None,
        ),
    };
    let (report, people) = judge(config, rules, eval, events)?;
    Ok(Comparison {
        report,
        training,
        people,
    })
}

/// Loads the history once every rule is planned against the schema it will have, from its
/// header and inferred types alone (the same types the load then uses), so a broken rule stops
/// the run at once whatever the table's size: all errors together; a rule reading the label is
/// an error. Returns the history and notes, by rule, for rules reading excluded columns.
fn load_history_checking_rules(
    source: &HistorySource,
    table: &str,
    excluded: &[String],
    rules: &[Rule],
) -> Result<(data::History, Vec<Vec<String>>)> {
    use arrow::datatypes::{DataType, Field, Schema};
    let file = data::inspect_history(source)?;
    let mut fields: Vec<Field> = file
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let has = |fields: &[Field], name: &str| fields.iter().any(|f| f.name() == name);
    if source.labels_path.is_some() && !has(&fields, source.label) {
        fields.push(Field::new(source.label, DataType::Utf8, true));
    }
    let id_column = match source.id {
        Some(id) => id.to_string(),
        None => {
            if !has(&fields, data::ROW_ID) {
                fields.push(Field::new(data::ROW_ID, DataType::UInt64, false));
            }
            data::ROW_ID.to_string()
        }
    };
    let rule_notes = check_rules_on(
        std::sync::Arc::new(Schema::new(fields)),
        &id_column,
        table,
        source.label,
        excluded,
        rules,
    )?;
    Ok((data::load_inspected_history(source, file)?, rule_notes))
}

fn check_rules_on(
    schema: arrow::datatypes::SchemaRef,
    id_column: &str,
    table: &str,
    label: &str,
    excluded: &[String],
    rules: &[Rule],
) -> Result<Vec<Vec<String>>> {
    let planner = RulePlanner::new(schema, table, id_column)?;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for rule in rules {
        match planner.columns_read(rule) {
            Err(e) => {
                errors.push(e);
                notes.push(Vec::new());
            }
            Ok(read) => {
                if read.iter().any(|c| c == label) {
                    errors.push(reads_label_error(rule, label));
                }
                notes.push(
                    read.iter()
                        .filter(|c| excluded.contains(c))
                        .map(|c| {
                            format!(
                                "the rule reads {c:?}, which is excluded from the model's features: if it is only known after the promotion, the rule's audience knows the outcome and this comparison flatters the rule"
                            )
                        })
                        .collect(),
                );
            }
        }
    }
    match Error::all(errors) {
        Some(e) => Err(e),
        None => Ok(notes),
    }
}

/// Trains on the configured split; E is its held-out rows, scored.
fn holdout(
    config: &Config,
    rules: &[Rule],
    events: &mut dyn FnMut(Event),
) -> Result<(EvalSet, TrainingRun)> {
    let source = HistorySource::from_config(config, config.data_path()?)?;
    events(Event::Loading { path: source.path });
    let (history, mut rule_notes) =
        load_history_checking_rules(&source, &config.data.table, &config.data.exclude, rules)?;
    events(Event::Training {
        rows: history.table.num_rows(),
        positives: history.positives(),
        path: &history.table.path,
    });
    let training = model::train_history(&history, config, &mut |p| {
        events(Event::Round(&p));
        true
    })?;
    events(Event::Trained {
        notes: &training.notes,
    });
    let holdout = &training.split.holdout;
    let labels: Vec<u8> = holdout.iter().map(|&r| history.labels[r]).collect();
    let ids = history.ids.take(holdout);
    let (base, rule_scope, base_rows) = match config.split.method {
        SplitMethod::Random => {
            let mut eval_position = vec![u32::MAX; history.table.num_rows()];
            for (i, &r) in holdout.iter().enumerate() {
                eval_position[r] = i as u32;
            }
            (
                RuleBase::History {
                    table: history.table.clone(),
                    ids: history.ids.clone(),
                    eval_position,
                },
                RuleScope::History,
                history.table.num_rows(),
            )
        }
        SplitMethod::Time => (
            RuleBase::Evaluation {
                table: history.table.take(holdout)?,
            },
            RuleScope::EvaluationRows,
            holdout.len(),
        ),
    };
    let split = match config.split.method {
        SplitMethod::Random => format!(
            "stratified random, {} held out, seed {}",
            config.split.test_fraction, config.split.seed
        ),
        SplitMethod::Time => format!(
            "by time: {} >= {}",
            config.split.time_column.as_deref().unwrap_or_default(),
            config.split.cutoff.as_deref().unwrap_or_default()
        ),
    };
    let mut notes = training.notes.clone();
    notes.extend(rule_notes.drain(..).enumerate().flat_map(|(i, n)| {
        let name = rules[i].name.clone();
        n.into_iter().map(move |n| format!("{name}: {n}"))
    }));
    let eval = EvalSet {
        labels,
        ids,
        id_column: history.id_column.clone(),
        scores: training.holdout_scores.clone(),
        base,
        evaluation: Evaluation {
            source: "holdout".into(),
            data: crate::remote::shown(&history.table.path),
            model_dir: None,
            split: Some(split),
            rows: holdout.len(),
            rule_scope,
            base_rows,
            in_sample: false,
            training_overlap: None,
            time_ranges: training.split.time_ranges.clone(),
            tie_seed: config.split.seed,
        },
        notes,
        warnings: training.warnings.clone(),
    };
    Ok((eval, training))
}

/// Scores every row of `eval` with an existing model; E is all of them.
fn existing(
    config: &Config,
    rules: &[Rule],
    model_path: &Path,
    eval: &Path,
    eval_labels: Option<&Path>,
    events: &mut dyn FnMut(Event),
) -> Result<EvalSet> {
    // A bare model file carries no label or id: those come from the configuration then.
    let bundle = ModelBundle::load(model_path, config.data.id.as_deref())?;
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
        na_values: &bundle.features.na_values,
    };
    let excluded = bundle
        .manifest
        .as_ref()
        .map_or_else(|| config.data.exclude.clone(), |m| m.excluded.clone());
    events(Event::Loading { path: eval });
    let (history, rule_notes) =
        load_history_checking_rules(&source, &config.data.table, &excluded, rules)?;
    let (scores, unseen) = score_batch(&bundle, &history.table.batch, eval, 0, Engine::Native)?;
    let mut notes = Vec::new();
    if unseen.total() > 0 {
        notes.push(format!(
            "{} categorical value(s) in the evaluation rows were not seen in training and were scored as missing",
            unseen.total()
        ));
    }
    for (i, n) in rule_notes.into_iter().enumerate() {
        notes.extend(n.into_iter().map(|n| format!("{}: {n}", rules[i].name)));
    }

    // Rows the model trained on: the same file, or ids its fingerprint knows.
    let mut warnings = Vec::new();
    let mut in_sample = false;
    let mut training_overlap = None;
    if let Some(m) = &bundle.manifest {
        let same_file = m.input.sha256 == history.sha256;
        let overlap = m
            .training_ids
            .as_ref()
            .filter(|_| !history.id_generated)
            .and_then(|f| f.overlap(history.ids.iter()));
        if same_file {
            in_sample = true;
            let trained = m.rows.fit + m.rows.early_stopping;
            training_overlap = Some(trained as f64 / m.rows.total.max(1) as f64);
            warnings.push(format!(
                "the evaluation file is the file this model was trained on (same SHA-256): {trained} of its {} rows trained the model, so its AUC and the model's audiences are measured on people it has seen and look better than they will be; judge it on its held-out rows (audience compare without --model) or on newer data",
                m.rows.total
            ));
        } else if let Some(o) = overlap.filter(|o| o.matched > 0) {
            in_sample = true;
            training_overlap = Some(o.share);
            let amount = if o.exact {
                format!("{} of the evaluation rows", o.matched)
            } else {
                format!(
                    "about {:.0}% of the evaluation rows ({} of {} ids sampled)",
                    o.share * 100.0,
                    o.matched,
                    o.checked
                )
            };
            warnings.push(format!(
                "{amount} have ids the model trained on: its AUC and the model's audiences are measured partly on people it has seen and look better than they will be; judge it on rows it did not train on"
            ));
        } else if overlap.is_some() {
            training_overlap = Some(0.0);
        }
    }
    // Features that look like the outcome, measured on E.
    let (matrix, _) = bundle
        .features
        .encode(&history.table.batch, None)
        .map_err(|e| Error::model(&bundle.source, e))?;
    let aucs = leakage::single_feature_aucs(&bundle.features, &matrix, &history.labels, None);
    let importance = bundle
        .manifest
        .as_ref()
        .map(|m| m.importance.clone())
        .unwrap_or_default();
    warnings.extend(leakage::leak_notes(
        &bundle.features,
        &aucs,
        &importance,
        "evaluation rows",
    ));

    let rows = history.table.num_rows();
    Ok(EvalSet {
        labels: history.labels.clone(),
        ids: history.ids.clone(),
        id_column: history.id_column.clone(),
        scores,
        base: RuleBase::Evaluation {
            table: history.table.clone(),
        },
        evaluation: Evaluation {
            source: "file".into(),
            data: crate::remote::shown(eval),
            model_dir: Some(model_path.display().to_string()),
            split: None,
            rows,
            rule_scope: RuleScope::EvaluationRows,
            base_rows: rows,
            in_sample,
            training_overlap,
            time_ranges: None,
            tie_seed: config.split.seed,
        },
        notes,
        warnings,
    })
}

/// Runs the rules, compares each with the model's audience, and assembles the report.
fn judge(
    config: &Config,
    rules: &[Rule],
    eval: EvalSet,
    events: &mut dyn FnMut(Event),
) -> Result<(CompareReport, EvaluationPeople)> {
    if let Some(bad) = eval.scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Model {
            path: eval.evaluation.model_dir.clone().unwrap_or_default().into(),
            message: format!(
                "the model scores an evaluation row {bad}: a score must be a probability"
            ),
        });
    }
    let table_name = &config.data.table;
    let id_column = &eval.id_column;
    let (runner, base_rows) = match &eval.base {
        RuleBase::History { table, ids, .. } => (
            RuleRunner::new(table, table_name, id_column, ids, config.compare.limits())?,
            table.num_rows(),
        ),
        RuleBase::Evaluation { table } => (
            RuleRunner::new(
                table,
                table_name,
                id_column,
                &eval.ids,
                config.compare.limits(),
            )?,
            table.num_rows(),
        ),
    };
    let mut audiences = Vec::with_capacity(rules.len());
    let mut base_sizes = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        events(Event::Rule {
            index,
            total: rules.len(),
            name: &rule.name,
        });
        let selected = runner.run(rule)?.rows;
        base_sizes.push(selected.len());
        let in_eval = match &eval.base {
            RuleBase::History { eval_position, .. } => {
                let mut rows: Vec<usize> = selected
                    .iter()
                    .map(|&r| eval_position[r])
                    .filter(|&p| p != u32::MAX)
                    .map(|p| p as usize)
                    .collect();
                rows.sort_unstable();
                rows
            }
            RuleBase::Evaluation { .. } => selected,
        };
        audiences.push(in_eval);
    }
    events(Event::Bootstrap);
    let seed = config.split.seed;
    let tie_keys: Vec<u64> = eval
        .ids
        .iter()
        .map(|id| metrics::tie_key(id, seed))
        .collect();
    let ranking = Ranking::new(&eval.scores, &tie_keys);
    let comparisons = metrics::compare_rules(
        &audiences,
        &ranking,
        &eval.labels,
        BOOTSTRAP_RESAMPLES,
        seed,
        &RuleFloor::default(),
    );
    let reports: Vec<RuleReport> = rules
        .iter()
        .zip(comparisons)
        .zip(&base_sizes)
        .map(|((rule, comparison), &base_size)| RuleReport {
            name: rule.name.clone(),
            file: crate::remote::shown(&rule.file),
            base_size,
            base_share: base_size as f64 / base_rows.max(1) as f64,
            comparison,
        })
        .collect();

    let positives = eval.labels.iter().filter(|&&y| y == 1).count();
    let auc = metrics::auc_with_ci(&eval.scores, &eval.labels);
    let note = if positives == 0 {
        Some("AUC is undefined: the evaluation rows hold no conversions".to_string())
    } else if positives == eval.labels.len() {
        Some("AUC is undefined: every evaluation row converted".to_string())
    } else {
        None
    };
    let deciles = metrics::decile_table(&ranking, &eval.labels);
    let (gains, roc) = metrics::curves(&ranking, &eval.labels, CURVE_POINTS);
    let point = |(x, y): (f64, f64)| crate::report::CurvePoint { x, y };
    let curves = crate::report::Curves {
        gains: gains.into_iter().map(point).collect(),
        roc: roc.into_iter().map(point).collect(),
    };
    let mut notes = Vec::new();
    if positives < MIN_EVAL_CONVERSIONS {
        notes.push(format!(
            "the evaluation rows hold only {positives} conversion(s): with fewer than {MIN_EVAL_CONVERSIONS}, every rate and verdict here rests on very few people; collect more history before acting on a verdict"
        ));
    }
    let tied: usize = deciles.iter().map(|d| d.tied_across_boundary).sum();
    if tied > 0 {
        notes.push(format!(
            "{tied} row(s) share their score with rows of a neighbouring decile: their conversions are shared between the deciles pro rata"
        ));
    }
    notes.extend(eval.notes);
    let people = EvaluationPeople {
        id_column: eval.id_column.clone(),
        ids: eval.ids.clone(),
        scores: eval.scores.clone(),
        labels: eval.labels.clone(),
        order: ranking.order().to_vec(),
        rules: rules
            .iter()
            .map(|r| r.name.clone())
            .zip(audiences)
            .collect(),
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
            distinct_scores: ranking.groups(),
            note,
        },
        rules: reports,
        deciles,
        curves,
        warnings: eval.warnings,
        notes,
    };
    Ok((report, people))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_by_hand() {
        // Six people ranked 3, 0, 4, 1, 5, 2; the rule picks 0, 2 and 5: M is the first three
        // of the ranking (3, 0, 4), so 0 is in both, 3 and 4 model only, 2 and 5 rule only.
        let table = crate::data::Table {
            path: "t".into(),
            batch: arrow::array::RecordBatch::try_from_iter([(
                "id",
                std::sync::Arc::new(arrow::array::StringArray::from(vec![
                    "a", "b", "c", "d", "e", "f",
                ])) as arrow::array::ArrayRef,
            )])
            .unwrap(),
        };
        let people = EvaluationPeople {
            id_column: "id".into(),
            ids: data::read_ids(&table, "id").unwrap(),
            scores: vec![0.8, 0.4, 0.1, 0.9, 0.7, 0.3],
            labels: vec![1, 0, 0, 1, 0, 1],
            order: vec![3, 0, 4, 1, 5, 2],
            rules: vec![("r".into(), vec![0, 2, 5])],
        };
        let parts: Vec<(usize, Part, usize)> = people
            .audience(0)
            .into_iter()
            .map(|m| (m.row, m.part, m.model_rank))
            .collect();
        assert_eq!(
            parts,
            [
                (3, Part::ModelOnly, 1),
                (0, Part::Both, 2),
                (4, Part::ModelOnly, 3),
                (5, Part::RuleOnly, 5),
                (2, Part::RuleOnly, 6)
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let written = people
            .write(dir.path(), false, &output::Inputs::default())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&written[0]).unwrap(),
            "id,part,in_rule,in_model,score,converted,model_rank\nd,model_only,false,true,0.9,1,1\na,both,true,true,0.8,1,2\ne,model_only,false,true,0.7,0,3\nf,rule_only,true,false,0.3,1,5\nc,rule_only,true,false,0.1,0,6\n"
        );
        // Written once; again only with force.
        assert!(
            people
                .write(dir.path(), false, &output::Inputs::default())
                .is_err()
        );
        assert!(
            people
                .write(dir.path(), true, &output::Inputs::default())
                .is_ok()
        );
    }

    /// A history file in a temporary folder, with a configuration for it.
    struct Fixture {
        dir: tempfile::TempDir,
        config: Config,
    }

    impl Fixture {
        fn new(csv: &str, id: Option<&str>) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("history.csv");
            std::fs::write(&path, csv).unwrap();
            let mut config = Config::default();
            config.data.path = Some(path);
            config.data.label = Some("y".into());
            config.data.id = id.map(String::from);
            Fixture { dir, config }
        }

        fn rule(&self, name: &str, sql: &str) -> Rule {
            let file = self.dir.path().join(format!("{name}.sql"));
            std::fs::write(&file, sql).unwrap();
            crate::rules::load_rule(&file, "history").unwrap()
        }

        fn compare(&self, rules: &[Rule]) -> Result<Comparison> {
            compare(&self.config, rules, EvaluationSource::Holdout, &mut |_| {})
        }
    }

    /// 600 people sorted by outcome (the first 180 converted). One binary feature, `flag`, which
    /// a one-split model turns into exactly two distinct scores; `grp` is for rules.
    fn sorted_by_outcome(id: impl Fn(usize) -> String) -> String {
        let mut csv = String::from("id,flag,grp,x,y\n");
        for i in 0..600 {
            let y = u8::from(i < 180);
            let flag = u8::from(i % 3 == 0 || (i < 180 && i % 2 == 0));
            let grp = ["a", "b", "c"][(i * 7) % 3];
            csv.push_str(&format!("{},{flag},{grp},{},{y}\n", id(i), (i * 37) % 101));
        }
        csv
    }

    fn two_scores(config: &mut Config) {
        config.model.num_rounds = 1;
        config.model.num_leaves = 2;
        config.model.early_stopping_rounds = 0;
        config.data.exclude = vec!["x".into(), "grp".into()];
        config
            .model
            .params
            .insert("min_data_in_leaf".into(), toml::Value::Integer(5));
    }

    #[test]
    fn a_cut_among_equal_scores_counts_them_pro_rata_whatever_the_ids() {
        let mut reports = Vec::new();
        for ids in [
            (|i: usize| format!("p{i:04}")) as fn(usize) -> String,
            |i| (600 - i).to_string(),
            |i| format!("z{}", (i * 7919) % 100_003),
        ] {
            let mut f = Fixture::new(&sorted_by_outcome(ids), Some("id"));
            two_scores(&mut f.config);
            let rules = [f.rule("b", "SELECT id FROM history WHERE grp = 'b'")];
            let c = f.compare(&rules).unwrap();
            let training = c.training.unwrap();
            let e = &training.split.holdout;
            assert_eq!(c.report.model.distinct_scores, 2);
            // By hand: the model's top n of E is every flagged row of E, then a share of the rest
            // (or a share of the flagged ones, if n is smaller).
            let history = data::load_history(
                &HistorySource::from_config(&f.config, f.config.data_path().unwrap()).unwrap(),
            )
            .unwrap();
            let flag = data::as_strings(history.table.column("flag", "t").unwrap()).unwrap();
            let flagged: Vec<usize> = e
                .iter()
                .copied()
                .filter(|&r| flag[r].as_deref() == Some("1"))
                .collect();
            let rest: Vec<usize> = e
                .iter()
                .copied()
                .filter(|&r| flag[r].as_deref() == Some("0"))
                .collect();
            let conv =
                |rows: &[usize]| rows.iter().filter(|&&r| history.labels[r] == 1).count() as f64;
            let r = &c.report.rules[0].comparison;
            let n = r.size;
            let expected = if n <= flagged.len() {
                conv(&flagged) * n as f64 / flagged.len() as f64
            } else {
                conv(&flagged) + conv(&rest) * (n - flagged.len()) as f64 / rest.len() as f64
            };
            assert!(
                (r.model_conversions - expected).abs() < 1e-9,
                "{} vs {expected}",
                r.model_conversions
            );
            let tied = if n <= flagged.len() {
                flagged.len()
            } else {
                rest.len()
            };
            assert_eq!(r.tied_at_cut, tied);
            assert!(
                r.notes.iter().any(|n| n.contains("share the score")),
                "{:?}",
                r.notes
            );
            // A one-person rule gets no verdict.
            let someone = history.ids.get(e[0]);
            let one = f.rule(
                "one",
                &format!("SELECT id FROM history WHERE id = '{someone}'"),
            );
            let c1 = f.compare(&[one]).unwrap();
            let one = &c1.report.rules[0].comparison;
            assert_eq!((one.size, one.verdict), (1, metrics::Verdict::TooSmall));
            assert_eq!(one.rate_diff_ci, None);
            reports.push(c.report);
        }
        // Text ids, reversed numbers, hashed: every figure the same.
        let strip = |r: &CompareReport| {
            let mut r = r.clone();
            r.evaluation.data = String::new();
            for rule in &mut r.rules {
                rule.file = String::new();
            }
            r
        };
        assert_eq!(strip(&reports[0]).rules, strip(&reports[1]).rules);
        assert_eq!(strip(&reports[0]).rules, strip(&reports[2]).rules);
        assert_eq!(reports[0].deciles, reports[1].deciles);
    }

    #[test]
    fn rules_run_over_the_whole_history_with_a_random_split() {
        let mut f = Fixture::new(&sorted_by_outcome(|i| format!("p{i:04}")), Some("id"));
        two_scores(&mut f.config);
        let rules = [
            f.rule("top", "SELECT id FROM history ORDER BY x DESC, id LIMIT 60"),
            f.rule(
                "above",
                "SELECT * FROM history WHERE x > (SELECT AVG(x) FROM history)",
            ),
        ];
        let c = f.compare(&rules).unwrap();
        let e: std::collections::BTreeSet<usize> =
            c.training.unwrap().split.holdout.into_iter().collect();
        // By hand over all 600 rows: x = (i * 37) % 101.
        let x = |i: usize| ((i * 37) % 101) as f64;
        let mut by_x: Vec<usize> = (0..600).collect();
        by_x.sort_by(|&a, &b| x(b).total_cmp(&x(a)).then(a.cmp(&b)));
        let top: Vec<usize> = by_x[..60].to_vec();
        let mean = (0..600).map(x).sum::<f64>() / 600.0;
        let above: Vec<usize> = (0..600).filter(|&i| x(i) > mean).collect();
        for (report, rows) in c.report.rules.iter().zip([&top, &above]) {
            assert_eq!(report.base_size, rows.len());
            assert_eq!(
                report.comparison.size,
                rows.iter().filter(|r| e.contains(r)).count()
            );
            assert!((report.base_share - rows.len() as f64 / 600.0).abs() < 1e-12);
        }
        assert_eq!(c.report.evaluation.rule_scope, RuleScope::History);
        assert_eq!(c.report.evaluation.base_rows, 600);
    }

    #[test]
    fn rules_reading_the_label_are_errors_and_excluded_columns_get_a_note() {
        let mut f = Fixture::new(&sorted_by_outcome(|i| format!("p{i:04}")), Some("id"));
        two_scores(&mut f.config);
        let rules = [
            f.rule("label", "SELECT id\nFROM history\nWHERE y = 1 OR grp = 'a'"),
            f.rule("typo", "SELECT id FROM history WHERE flga = 1"),
        ];
        let e = f.compare(&rules).err().unwrap().to_string();
        assert!(
            e.contains("label.sql:3:7: the rule reads the label column \"y\""),
            "{e}"
        );
        assert!(
            e.contains("typo.sql:1:30"),
            "both rules' errors at once: {e}"
        );
        let rules = [f.rule("uses_x", "SELECT * FROM history WHERE x > 50")];
        let c = f.compare(&rules).unwrap();
        assert!(
            c.report
                .notes
                .iter()
                .any(|n| n.starts_with("uses_x: the rule reads \"x\", which is excluded")),
            "{:?}",
            c.report.notes
        );
    }

    #[test]
    fn judging_a_model_on_its_training_rows_is_flagged() {
        let f = Fixture::new(&sorted_by_outcome(|i| format!("p{i:04}")), Some("id"));
        let rules = [f.rule("b", "SELECT id FROM history WHERE grp = 'b'")];
        let c = f.compare(&rules).unwrap();
        let model = f.dir.path().join("model");
        let training = c.training.unwrap();
        crate::model::bundle::ModelBundle::write(
            &model,
            &training.manifest,
            &training.model_text,
            false,
        )
        .unwrap();
        let judge = |eval: &Path| {
            compare(
                &f.config,
                &rules,
                EvaluationSource::Existing {
                    model: &model,
                    eval,
                    eval_labels: None,
                },
                &mut |_| {},
            )
            .unwrap()
            .report
        };
        // The very file: same SHA-256.
        let same = judge(f.config.data_path().unwrap());
        assert!(same.evaluation.in_sample);
        assert!(
            same.warnings[0].contains("same SHA-256"),
            "{:?}",
            same.warnings
        );
        // The same people in another file (CRLF, reordered): their ids.
        let text = sorted_by_outcome(|i| format!("p{i:04}"));
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        lines.reverse();
        let copy = f.dir.path().join("copy.csv");
        std::fs::write(&copy, format!("{header}\r\n{}\r\n", lines.join("\r\n"))).unwrap();
        let copied = judge(&copy);
        assert!(copied.evaluation.in_sample);
        let overlap = copied.evaluation.training_overlap.unwrap();
        assert!((overlap - 0.7).abs() < 0.01, "{overlap}");
        assert!(
            copied.warnings[0].contains("have ids the model trained on"),
            "{:?}",
            copied.warnings
        );
        // New people: no warning.
        let fresh = f.dir.path().join("fresh.csv");
        std::fs::write(&fresh, sorted_by_outcome(|i| format!("n{i:04}"))).unwrap();
        let new = judge(&fresh);
        assert!(!new.evaluation.in_sample);
        assert_eq!(new.evaluation.training_overlap, Some(0.0));
        assert!(
            new.warnings.iter().all(|w| !w.contains("trained on")),
            "{:?}",
            new.warnings
        );
    }

    #[test]
    fn a_time_split_reads_dates_and_rules_run_over_the_later_period() {
        // M/D/YYYY over 2023-2024: as text, "12/1/2023" sorts after "10/1/2024".
        let mut csv = String::from("id,day,flag,y\n");
        for i in 0..400 {
            let (year, month, d) = (
                2023 + i / 200,
                1 + (i / 20) % 10 + 2 * ((i / 200) % 2),
                1 + i % 20,
            );
            csv.push_str(&format!(
                "c{i},{month}/{d}/{year},{},{}\n",
                i % 2,
                u8::from(i % 5 == 0 || (i % 2 == 1 && i % 3 == 0))
            ));
        }
        let mut f = Fixture::new(&csv, Some("id"));
        f.config.split.method = SplitMethod::Time;
        f.config.split.time_column = Some("day".into());
        f.config.split.cutoff = Some("2024-1-1".into());
        let rules = [f.rule("odd", "SELECT id FROM history WHERE flag = 1")];
        let e = f.compare(&rules).err().unwrap().to_string();
        assert!(e.contains("split.time_format = \"%m/%d/%Y\""), "{e}");
        f.config.split.time_format = Some("%m/%d/%Y".into());
        let c = f.compare(&rules).unwrap();
        let split = c.training.unwrap().split;
        assert_eq!(split.holdout, (200..400).collect::<Vec<_>>());
        let ranges = c.report.evaluation.time_ranges.clone().unwrap();
        assert_eq!(ranges.holdout.unwrap().from, "2024-03-01");
        // Early stopping: the latest training days.
        assert_eq!(ranges.early_stopping.unwrap().to, "2023-10-20");
        assert_eq!(c.report.evaluation.rule_scope, RuleScope::EvaluationRows);
        assert_eq!(c.report.rules[0].base_size, 100);
        assert_eq!(c.report.evaluation.base_rows, 200);
    }
}
