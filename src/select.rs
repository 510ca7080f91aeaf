//! `select`: the model's audience to launch instead of a rule's, on this week's candidates.
//!
//! The rule runs on the candidates (streamed from the file when the model has a real id column)
//! to learn its size n; every candidate is scored as `score` scores it (the same evaluator, the
//! same value rule, the same seeded tie hash) and the n best are kept by `score`'s own
//! bounded-memory cut; they are written in rank order with whether the rule picked them too.
//! So `select` gives exactly the people `score --top n` keeps. Memory: the rule's ids (16 bytes
//! each, hashed) and the n selected rows; the candidates themselves are streamed.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use sha2::{Digest, Sha256};

use crate::data::encode::UnseenCounts;
use crate::data::{Format, ROW_ID};
use crate::metrics::{Calibration, Verdict, tie_key};
use crate::model::bundle::{Engine, ModelBundle};
use crate::model::score::{Keep, ScoreOptions, candidate_load_options, score_file_observed};
use crate::output::{self, AtomicFile, Inputs};
use crate::report::CompareReport;
use crate::rules::{Rule, RuleLimits, RuleRunner, run_over_file};
use crate::{Error, Result};

/// How many people the model's audience holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AudienceSize {
    /// As many as the rule selects among the candidates.
    OfRule,
    /// N people (all candidates if fewer).
    Count(u64),
    /// A share (0 to 1] of the candidates, rounded up.
    Share(f64),
}

/// What to select, from what, and where to write it.
pub struct SelectRequest<'a> {
    pub bundle: &'a ModelBundle,
    pub candidates: &'a Path,
    /// The rule to replace; needed for `AudienceSize::OfRule`.
    pub rule: Option<&'a Rule>,
    /// The table name rules select from (`data.table`).
    pub table: &'a str,
    pub size: AudienceSize,
    pub output: &'a Path,
    pub force: bool,
    pub delimiter: Option<u8>,
    pub engine: Engine,
    pub tie_seed: u64,
    pub batch_rows: usize,
    pub limits: RuleLimits,
    /// The last `compare` report, for the rule's verdict (and a calibration measured on its
    /// evaluation rows when it judged this very model).
    pub report: Option<&'a CompareReport>,
    /// Files the run reads besides the candidates and the model (rules, report): no output may
    /// be one of them.
    pub inputs: Inputs,
}

/// Expected conversions of each audience, from the scores: stated only when the model's scores
/// are shown to be probabilities to trust.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Stated {
        /// Sum of the scores of the model's audience.
        model: f64,
        /// Sum of the scores of the rule's people among the candidates.
        rule: Option<f64>,
        calibration_error: f64,
        tolerance: f64,
        /// Where the calibration was measured.
        measured_on: String,
    },
    NotStated {
        reason: String,
    },
}

/// The rule's verdict in the `compare` report given.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedVerdict {
    pub verdict: Verdict,
    pub rate_diff: Option<f64>,
    pub rate_diff_ci: Option<(f64, f64)>,
    /// The rule's and the model's conversion rates there.
    pub rule_rate: Option<f64>,
    pub model_rate: Option<f64>,
    /// What the report judged on.
    pub evaluation: String,
}

/// What a selection did.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectSummary {
    pub candidates: u64,
    /// n: the model's audience written.
    pub size: u64,
    /// The rule's people among the candidates.
    pub rule_size: Option<u64>,
    /// People both the rule and the model pick.
    pub shared: Option<u64>,
    /// Where the cut fell among equal scores: (the score, candidates sharing it, how many of them
    /// were selected, by the seeded hash of the id).
    pub tied_at_cut: Option<(f64, u64, u64)>,
    pub expected: Expected,
    pub verdict: Option<ReportedVerdict>,
    /// The rule's name was not among the report's rules.
    pub verdict_missing: bool,
    pub unseen: UnseenCounts,
}

/// A rule's people, by a 128-bit hash of each id (SHA-256, truncated): 16 bytes a person,
/// whatever the ids' length; two ids sharing a hash is a chance of about n² / 2^129.
struct IdSet(Vec<u128>);

fn id_hash(id: &str) -> u128 {
    let digest = Sha256::digest(id.as_bytes());
    u128::from_le_bytes(digest[..16].try_into().expect("32-byte digest"))
}

impl IdSet {
    fn new(ids: impl IntoIterator<Item = String>) -> IdSet {
        Self::of_hashes(ids.into_iter().map(|id| id_hash(&id)).collect())
    }

    fn of_hashes(mut hashes: Vec<u128>) -> IdSet {
        hashes.sort_unstable();
        hashes.dedup();
        IdSet(hashes)
    }

    fn contains(&self, id: &str) -> bool {
        self.0.binary_search(&id_hash(id)).is_ok()
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// The ids the rule selects among the candidates: streamed from the file with a real id column;
/// with `row_id` (0-based file order) the table is loaded, since a file has no row numbers.
fn rule_ids(request: &SelectRequest, rule: &Rule) -> Result<IdSet> {
    let bundle = request.bundle;
    let load = candidate_load_options(bundle, request.delimiter);
    if bundle.id.generated {
        let table = crate::data::load_table(request.candidates, &load)?.with_row_id()?;
        let ids = crate::data::read_ids(&table, ROW_ID)?;
        let runner = RuleRunner::new(&table, request.table, ROW_ID, &ids, request.limits)?;
        let audience = runner.run(rule)?;
        Ok(IdSet::new(audience.rows.into_iter().map(|r| r.to_string())))
    } else {
        // Hashed as they stream: 16 bytes a person, whatever the ids' length.
        let hashes = run_over_file(
            rule,
            request.candidates,
            &load,
            request.table,
            &bundle.id.column,
            request.limits,
            id_hash,
        )?;
        Ok(IdSet::of_hashes(hashes))
    }
}

/// One person of the model's audience.
struct Chosen {
    id: String,
    score: f64,
    tie: u64,
}

/// Selects the model's audience and writes it: id, score, rank (1 = best), in_rule.
pub fn select(request: &SelectRequest, progress: &mut dyn FnMut(u64)) -> Result<SelectSummary> {
    let bundle = request.bundle;
    let mut inputs = request.inputs.clone();
    inputs.add(request.candidates);
    inputs.add(&bundle.source);
    // The output's folder is created if absent (the staging folder goes beside the output).
    output::check_file_output_in_created_folder(request.output, request.force, &inputs)?;
    if let AudienceSize::Share(s) = request.size
        && !(s > 0.0 && s <= 1.0)
    {
        return Err(Error::Config(format!(
            "the audience's share must be in (0, 1], got {s}"
        )));
    }
    let rule_set = request.rule.map(|r| rule_ids(request, r)).transpose()?;
    let keep = match (request.size, &rule_set) {
        (AudienceSize::OfRule, Some(set)) => Keep::Top(set.len()),
        (AudienceSize::OfRule, None) => {
            return Err(Error::Config(
                "no rule to take the audience's size from: give a rule, or --size / --share".into(),
            ));
        }
        (AudienceSize::Count(n), _) => Keep::Top(n),
        (AudienceSize::Share(s), _) => Keep::TopShare(s),
    };

    // Score every candidate; `score`'s own cut keeps the best, ties by the seeded id hash.
    let (staging, _registered) = output::staging_dir_beside(request.output)?;
    let top_path = staging.path().join("top.csv");
    let options = ScoreOptions {
        delimiter: request.delimiter,
        keep_columns: Vec::new(),
        keep,
        force: false,
        batch_rows: request.batch_rows,
        engine: request.engine,
        tie_seed: request.tie_seed,
    };
    let (mut rule_rows, mut rule_expected) = (0u64, 0.0f64);
    let scored = score_file_observed(
        bundle,
        request.candidates,
        &top_path,
        &options,
        progress,
        &mut |id, score| {
            if let Some(set) = &rule_set
                && set.contains(id)
            {
                rule_rows += 1;
                rule_expected += score;
            }
        },
    )?;

    // The kept rows, in rank order: score descending, then the tie hash (as `score` cuts).
    let mut chosen = Vec::with_capacity(scored.rows_out as usize);
    let mut reader = csv::ReaderBuilder::new()
        .from_path(&top_path)
        .map_err(|e| Error::io(&top_path, e.into()))?;
    for record in reader.records() {
        let record = record.map_err(|e| Error::io(&top_path, e.into()))?;
        let id = record[0].to_string();
        let score: f64 = record[1]
            .parse()
            .map_err(|_| Error::data(&top_path, format!("unreadable score {:?}", &record[1])))?;
        let tie = tie_key(&id, request.tie_seed);
        chosen.push(Chosen { id, score, tie });
    }
    drop(reader);
    chosen.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.tie.cmp(&b.tie))
            .then_with(|| a.id.cmp(&b.id))
    });
    let in_rule: Vec<Option<bool>> = chosen
        .iter()
        .map(|c| rule_set.as_ref().map(|set| set.contains(&c.id)))
        .collect();
    write_audience(request, &bundle.id.column, &chosen, &in_rule)?;
    drop(staging);

    let model_expected: f64 = chosen.iter().map(|c| c.score).sum();
    let shared = rule_set
        .as_ref()
        .map(|_| in_rule.iter().filter(|v| **v == Some(true)).count() as u64);
    let expected = expected_conversions(
        request,
        model_expected,
        rule_set.as_ref().map(|_| rule_expected),
    );
    let (verdict, verdict_missing) = match (request.report, request.rule) {
        (Some(report), Some(rule)) => match report.rules.iter().find(|r| r.name == rule.name) {
            Some(r) => (
                Some(ReportedVerdict {
                    verdict: r.comparison.verdict,
                    rate_diff: r.comparison.rate_diff,
                    rate_diff_ci: r.comparison.rate_diff_ci,
                    rule_rate: r.comparison.rule_rate,
                    model_rate: r.comparison.model_rate,
                    evaluation: report
                        .evaluation
                        .split
                        .clone()
                        .unwrap_or_else(|| report.evaluation.data.clone()),
                }),
                false,
            ),
            None => (None, true),
        },
        _ => (None, false),
    };
    Ok(SelectSummary {
        candidates: scored.rows_in,
        size: chosen.len() as u64,
        rule_size: rule_set.as_ref().map(|_| rule_rows),
        shared,
        tied_at_cut: scored.tied_at_top,
        expected,
        verdict,
        verdict_missing,
        unseen: scored.unseen,
    })
}

/// The calibration that speaks for this model: the report's, when it judged this very model
/// directory on a given table, else the one its bundle measured on its held-out rows.
fn expected_conversions(request: &SelectRequest, model: f64, rule: Option<f64>) -> Expected {
    let same_model = |dir: &str| {
        let a = std::fs::canonicalize(dir).ok();
        let b = std::fs::canonicalize(&request.bundle.source).ok();
        a.is_some() && a == b
    };
    let from_report = request.report.and_then(|r| {
        let dir = r.evaluation.model_dir.as_deref()?;
        if !same_model(dir) {
            return None;
        }
        let calibration = Calibration::of_deciles(&r.deciles)?;
        Some((
            calibration,
            format!(
                "the compare report's evaluation rows ({})",
                r.evaluation.data
            ),
        ))
    });
    let from_bundle = || {
        let m = request.bundle.manifest.as_ref()?;
        let calibration = m.calibration.clone()?;
        Some((
            calibration,
            format!("the model's {} held-out rows", m.rows.holdout),
        ))
    };
    match from_report.or_else(from_bundle) {
        None => Expected::NotStated {
            reason: "the model carries no calibration (a bare model.txt, or a bundle written before audience recorded it): scores are not stated as expected conversions".into(),
        },
        Some((c, measured_on)) if c.within_tolerance() => Expected::Stated {
            model,
            rule,
            calibration_error: c.error,
            tolerance: c.tolerance(),
            measured_on,
        },
        Some((c, measured_on)) => Expected::NotStated {
            reason: format!(
                "the model's scores are off the observed rates by {:.2} points on average on {measured_on}, more than the {:.2} points tolerated: they rank people but are not probabilities to sum",
                c.error * 100.0,
                c.tolerance() * 100.0
            ),
        },
    }
}

/// Writes the audience, atomically: CSV, or Parquet by the output's extension.
fn write_audience(
    request: &SelectRequest,
    id_name: &str,
    chosen: &[Chosen],
    in_rule: &[Option<bool>],
) -> Result<()> {
    let path = request.output;
    let mut file = AtomicFile::create(path, request.force)?;
    let handle = file.file().try_clone().map_err(|e| Error::io(path, e))?;
    match Format::of(path) {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(BufWriter::new(handle));
            let io = |e: csv::Error| Error::io(path, e.into());
            writer
                .write_record([id_name, "score", "rank", "in_rule"])
                .map_err(io)?;
            for (rank, (c, r)) in chosen.iter().zip(in_rule).enumerate() {
                let flag = match r {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "",
                };
                writer
                    .write_record([
                        c.id.as_str(),
                        &c.score.to_string(),
                        &(rank + 1).to_string(),
                        flag,
                    ])
                    .map_err(io)?;
            }
            let mut inner = writer
                .into_inner()
                .map_err(|e| Error::io(path, e.into_error()))?;
            inner.flush().map_err(|e| Error::io(path, e))?;
        }
        Format::Parquet => {
            let schema = Arc::new(Schema::new(vec![
                Field::new(id_name, DataType::Utf8, false),
                Field::new("score", DataType::Float64, false),
                Field::new("rank", DataType::UInt64, false),
                Field::new("in_rule", DataType::Boolean, true),
            ]));
            let mut writer = parquet::arrow::ArrowWriter::try_new(handle, schema.clone(), None)
                .map_err(|e| Error::data(path, e.to_string()))?;
            for (start, part) in chosen.chunks(65_536).enumerate() {
                let offset = start * 65_536;
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(part.iter().map(|c| &c.id))),
                    Arc::new(Float64Array::from_iter_values(part.iter().map(|c| c.score))),
                    Arc::new(UInt64Array::from_iter_values(
                        (0..part.len()).map(|i| (offset + i + 1) as u64),
                    )),
                    Arc::new(BooleanArray::from(
                        in_rule[offset..offset + part.len()].to_vec(),
                    )),
                ];
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| Error::data(path, e.to_string()))?;
                writer
                    .write(&batch)
                    .map_err(|e| Error::data(path, e.to_string()))?;
            }
            writer
                .close()
                .map_err(|e| Error::data(path, e.to_string()))?;
        }
    }
    file.commit(request.force)
}

/// The report a previous `compare` wrote as JSON.
pub fn read_report(path: &Path) -> Result<CompareReport> {
    crate::data::check_readable(path)?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > 256 << 20 {
        return Err(Error::data(
            path,
            "is larger than 256 MB: not a compare report",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let report: CompareReport = serde_json::from_str(&text).map_err(|e| {
        Error::data(
            path,
            format!(
                "line {}, column {}: not a compare report in JSON (write one with `audience compare ... --output report.json`): {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    if report.schema_version != crate::report::SCHEMA_VERSION {
        return Err(Error::data(
            path,
            format!(
                "is a report of schema version {}; this audience reads version {}: run compare again",
                report.schema_version,
                crate::report::SCHEMA_VERSION
            ),
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_are_exact_on_distinct_ids() {
        let set = IdSet::new(["a", "b", "b", "c10"].map(String::from));
        assert_eq!(set.len(), 3);
        assert!(set.contains("b") && set.contains("c10"));
        assert!(!set.contains("c1") && !set.contains(""));
    }
}
