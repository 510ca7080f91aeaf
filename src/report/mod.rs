//! The comparison report: one structure, rendered as a terminal table, JSON, CSV or Markdown.
//!
//! The JSON form is the documented, versioned interface (README.md, "JSON report"); bump
//! `SCHEMA_VERSION` when a field changes meaning or disappears. Nothing time- or machine-dependent
//! goes in, so identical inputs give byte-identical reports.

use comfy_table::{
    Attribute, Cell, CellAlignment, Color, ColumnConstraint, ContentArrangement, Table,
};
use serde::{Deserialize, Serialize};

mod html;

use crate::metrics::{DecileRow, RuleComparison, Verdict, count_text};
use crate::split::PartRanges;

/// Version 2: rules run as in production (a rule's `size` is its people among the evaluation
/// rows after running over the whole history, with `base_size` beside it), model-side counts are
/// expected counts over tied scores (fractional), `too_small` verdicts, `notes` lists.
pub const SCHEMA_VERSION: u32 = 2;

/// Rules above and below the table and under the header, nothing between rows or columns.
const RULED: &str = "  ── ──      ──    ";

/// Width the terminal table is laid out for when the terminal does not say.
pub const DEFAULT_WIDTH: u16 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub schema_version: u32,
    pub tool: String,
    pub evaluation: Evaluation,
    pub model: ModelSummary,
    pub rules: Vec<RuleReport>,
    pub deciles: Vec<DecileRow>,
    /// The model's cumulative gains and ROC curves, for charts.
    pub curves: Curves,
    /// What may make the figures wrong (rows the model trained on, a feature that looks like the
    /// outcome): shown first in every format.
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// A point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub x: f64,
    pub y: f64,
}

/// The model's curves over the evaluation rows, at evenly spaced audience sizes (expected
/// counts where a size falls among equal scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Curves {
    /// Cumulative gains: x = share of E targeted, y = share of E's conversions in it.
    pub gains: Vec<CurvePoint>,
    /// ROC: x = false positive rate, y = true positive rate of the model's top audiences.
    pub roc: Vec<CurvePoint>,
}

/// Where rules ran: the base they would run against in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// The whole history (a random holdout: the base holds training and held-out people alike);
    /// each audience is then restricted to the evaluation rows.
    History,
    /// The evaluation rows themselves (a time split's later period, or `--eval`'s table).
    EvaluationRows,
}

/// Where the evaluation rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// "holdout" (the split's held-out rows, model trained on the rest) or "file" (`--eval`).
    pub source: String,
    pub data: String,
    /// The model directory, when an existing model was judged.
    pub model_dir: Option<String>,
    pub split: Option<String>,
    /// |E|.
    pub rows: usize,
    pub rule_scope: RuleScope,
    /// Rows of the table the rules ran over.
    pub base_rows: usize,
    /// True when the model trained on (some of) the evaluation rows: its figures are inflated.
    pub in_sample: bool,
    /// The estimated share of the evaluation rows the model trained on, when known.
    pub training_overlap: Option<f64>,
    /// A time split's span of each part.
    pub time_ranges: Option<PartRanges>,
    /// The seed of the hash that orders people of equal score where real people are chosen.
    pub tie_seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub auc: Option<f64>,
    pub auc_ci: Option<(f64, f64)>,
    pub log_loss: Option<f64>,
    pub eval_rows: usize,
    pub positives: usize,
    pub base_rate: Option<f64>,
    /// Distinct scores among the evaluation rows.
    pub distinct_scores: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    pub name: String,
    pub file: String,
    /// The rule's people in the table it ran over, and their share of it.
    pub base_size: usize,
    pub base_share: f64,
    #[serde(flatten)]
    pub comparison: RuleComparison,
}

/// Output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
    Html,
}

impl RuleReport {
    /// Sentences about this rule, prefixed with its name.
    fn named_notes(&self) -> impl Iterator<Item = String> + '_ {
        self.comparison
            .notes
            .iter()
            .map(|n| format!("{}: {n}", self.name))
    }
}

impl CompareReport {
    pub fn render(&self, format: ReportFormat, color: bool, width: u16) -> String {
        match format {
            ReportFormat::Table => self.to_terminal(color, width),
            ReportFormat::Json => self.to_json(),
            ReportFormat::Csv => self.to_csv(),
            ReportFormat::Markdown => self.to_markdown(),
            ReportFormat::Html => html::render(self),
        }
    }

    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("the report serialises: no maps, no NaN");
        text.push('\n');
        text
    }

    /// One line per rule, every number at full precision; empty where undefined.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "name",
            "file",
            "size",
            "share",
            "base_size",
            "base_share",
            "rule_conversions",
            "rule_rate",
            "rule_lift",
            "model_conversions",
            "model_rate",
            "model_lift",
            "extra_conversions",
            "overlap",
            "overlap_rate",
            "rule_only",
            "rule_only_rate",
            "model_only",
            "model_only_rate",
            "tied_at_cut",
            "rate_diff",
            "rate_diff_ci_low",
            "rate_diff_ci_high",
            "verdict",
            "rule_auc",
            "rule_tpr",
            "rule_fpr",
            "model_reach_at_rule_rate",
            "model_auc",
            "eval_rows",
            "base_rate",
            "rule_scope",
            "in_sample",
            "fit_time_range",
            "early_stopping_time_range",
            "holdout_time_range",
            "notes",
            "warnings",
        ];
        w.write_record(header).expect("writing to memory");
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let scope = match self.evaluation.rule_scope {
            RuleScope::History => "history",
            RuleScope::EvaluationRows => "evaluation_rows",
        };
        let warnings = self.warnings.join("; ");
        let ranges = self.evaluation.time_ranges.as_ref();
        let range = |pick: fn(&PartRanges) -> &Option<crate::split::TimeRange>| {
            ranges
                .and_then(|r| pick(r).as_ref())
                .map_or(String::new(), |r| r.to_string())
        };
        let times = [
            range(|r| &r.fit),
            range(|r| &r.early_stopping),
            range(|r| &r.holdout),
        ];
        for r in &self.rules {
            let c = &r.comparison;
            let record = vec![
                r.name.clone(),
                r.file.clone(),
                c.size.to_string(),
                c.share.to_string(),
                r.base_size.to_string(),
                r.base_share.to_string(),
                c.rule_conversions.to_string(),
                opt(c.rule_rate),
                opt(c.rule_lift),
                c.model_conversions.to_string(),
                opt(c.model_rate),
                opt(c.model_lift),
                c.extra_conversions.to_string(),
                c.overlap.both.to_string(),
                opt(c.overlap.both_rate),
                c.overlap.rule_only.to_string(),
                opt(c.overlap.rule_only_rate),
                c.overlap.model_only.to_string(),
                opt(c.overlap.model_only_rate),
                c.tied_at_cut.to_string(),
                opt(c.rate_diff),
                opt(c.rate_diff_ci.map(|c| c.0)),
                opt(c.rate_diff_ci.map(|c| c.1)),
                c.verdict.code().to_string(),
                opt(c.rule_auc),
                opt(c.rule_tpr),
                opt(c.rule_fpr),
                c.model_reach_at_rule_rate
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                opt(self.model.auc),
                self.model.eval_rows.to_string(),
                opt(self.model.base_rate),
                scope.to_string(),
                self.evaluation.in_sample.to_string(),
                times[0].clone(),
                times[1].clone(),
                times[2].clone(),
                c.notes.join("; "),
                warnings.clone(),
            ];
            w.write_record(&record).expect("writing to memory");
        }
        String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
    }

    /// The lines every format starts with: what was evaluated, where rules ran, the model.
    pub(crate) fn summary_lines(&self) -> Vec<String> {
        let m = &self.model;
        let e = &self.evaluation;
        let whence = match (e.source.as_str(), e.in_sample) {
            ("holdout", _) => "held out; the model never saw them".to_string(),
            (_, true) => match e.training_overlap {
                Some(share) => format!(
                    "given with --eval; about {:.0}% of them trained the model",
                    share * 100.0
                ),
                None => "given with --eval; the model trained on them".to_string(),
            },
            _ => "given with --eval".to_string(),
        };
        let mut lines = vec![format!(
            "Evaluation rows: {} ({whence}), {} conversions, base rate {}",
            m.eval_rows,
            m.positives,
            pct(m.base_rate)
        )];
        if let Some(ranges) = &e.time_ranges {
            lines.push(format!("Time split: {ranges}"));
        }
        lines.push(match e.rule_scope {
            RuleScope::History => format!(
                "Rules ran over the whole history ({} rows); audiences counted on the evaluation rows",
                e.base_rows
            ),
            RuleScope::EvaluationRows => format!(
                "Rules ran over the {} evaluation rows (the base at that time)",
                e.base_rows
            ),
        });
        let auc = match (m.auc, m.auc_ci) {
            (Some(a), Some((lo, hi))) => format!("{a:.4} (95% CI {lo:.4} to {hi:.4})"),
            (Some(a), None) => format!("{a:.4}"),
            (None, _) => "undefined".into(),
        };
        lines.push(format!(
            "Model AUC: {auc}; log loss {}",
            m.log_loss.map_or("n/a".into(), |v| format!("{v:.4}"))
        ));
        if let Some(note) = &m.note {
            lines.push(format!("Note: {note}"));
        }
        lines
    }

    /// Every sentence worth reading after the tables: the rules' own, then the report's.
    pub(crate) fn all_notes(&self) -> Vec<String> {
        self.rules
            .iter()
            .flat_map(RuleReport::named_notes)
            .chain(self.notes.iter().cloned())
            .collect()
    }

    pub fn to_terminal(&self, color: bool, width: u16) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            let line = wrap(&format!("WARNING: {w}"), width);
            if color {
                out.push_str(&format!("\x1b[1;31m{line}\x1b[0m\n"));
            } else {
                out.push_str(&line);
                out.push('\n');
            }
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        out.push_str("Rules against the model's audience of the same size\n");
        for line in self.summary_lines() {
            out.push_str(&wrap(&line, width));
            out.push('\n');
        }
        out.push('\n');
        // Below 100 columns the wide cells stack (size over share, difference over interval)
        // and the details split in two tables, so an 80-column terminal shows every number
        // whole; numbers never wrap (their columns take their content's width), names may.
        let narrow = width < WIDE;
        let mut table = new_table(width, color);
        let header = [
            "Rule",
            "People",
            "Rule\nrate",
            "Model\nrate",
            "Difference\n(95% interval)",
            "Verdict",
        ];
        table.set_header(
            header
                .iter()
                .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
        let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
        for r in &self.rules {
            let c = &r.comparison;
            let verdict = Cell::new(short_verdict(c.verdict));
            let verdict = if color {
                match c.verdict {
                    Verdict::ModelBetter => verdict.fg(Color::Green),
                    Verdict::RuleBetter => verdict.fg(Color::Red),
                    _ => verdict.fg(Color::Yellow),
                }
            } else {
                verdict
            };
            let (people, diff) = if narrow {
                (
                    format!("{}\n{}", c.size, pct1(Some(c.share))),
                    diff_stacked(c.rate_diff, c.rate_diff_ci),
                )
            } else {
                (
                    format!("{} ({})", c.size, pct1(Some(c.share))),
                    diff_with_ci_short(c.rate_diff, c.rate_diff_ci),
                )
            };
            table.add_row(vec![
                Cell::new(&r.name),
                right(people),
                right(pct1(c.rule_rate)),
                right(pct1(c.model_rate)),
                right(diff),
                verdict,
            ]);
        }
        keep_whole(&mut table, &[1, 2, 3, 4, 5]);
        out.push_str(&table.to_string());
        out.push_str("\n\n");
        let details_header = [
            "Rule",
            "Share of\nbase",
            "Rule\nconv.",
            "Model\nconv.",
            "Extra\nconv.",
            "Rule\nlift",
            "Model\nlift",
            "Overlap",
            "Rule\nAUC",
            "Model\nreach*",
        ];
        let details_rows: Vec<Vec<Cell>> = self
            .rules
            .iter()
            .map(|r| {
                let c = &r.comparison;
                vec![
                    Cell::new(&r.name),
                    right(pct1(Some(r.base_share))),
                    right(c.rule_conversions.to_string()),
                    right(count_text(c.model_conversions)),
                    right(signed_count(c.extra_conversions)),
                    right(times(c.rule_lift)),
                    right(times(c.model_lift)),
                    right(count_text(c.overlap.both)),
                    right(opt_fmt(c.rule_auc, |v| format!("{v:.3}"))),
                    right(
                        c.model_reach_at_rule_rate
                            .map_or("n/a".into(), |v| v.to_string()),
                    ),
                ]
            })
            .collect();
        let parts: Vec<Vec<usize>> = if narrow {
            vec![vec![0, 1, 2, 3, 4], vec![0, 5, 6, 7, 8, 9]]
        } else {
            vec![(0..details_header.len()).collect()]
        };
        for (i, columns) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str("\n\n");
            }
            let mut details = new_table(width, false);
            details.set_header(
                columns
                    .iter()
                    .map(|&c| Cell::new(details_header[c]).add_attribute(Attribute::Bold)),
            );
            for row in &details_rows {
                details.add_row(columns.iter().map(|&c| row[c].clone()));
            }
            keep_whole(&mut details, &(1..columns.len()).collect::<Vec<_>>());
            out.push_str(&details.to_string());
        }
        out.push('\n');
        out.push_str(&wrap(
            "* Model reach: how many people the model can pick at the rule's conversion rate or better.",
            width,
        ));
        out.push('\n');
        let notes = self.all_notes();
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&wrap(&format!("Note: {n}"), width));
                out.push('\n');
            }
        }
        if !self.deciles.is_empty() {
            out.push_str("\nModel deciles (1 = highest scores)\n");
            let mut deciles = new_table(width, false);
            deciles.set_header(
                [
                    "Decile",
                    "Scores",
                    "People",
                    "Conv.",
                    "Rate",
                    "Cum.\nconv.",
                    "Gain",
                    "KS",
                    "Lift",
                ]
                .iter()
                .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
            );
            for d in &self.deciles {
                deciles.add_row(vec![
                    Cell::new(d.decile),
                    Cell::new(format!("{:.3}-{:.3}", d.prob_min, d.prob_max)),
                    Cell::new(d.cnt_cust).set_alignment(CellAlignment::Right),
                    Cell::new(count_text(d.cnt_resp)).set_alignment(CellAlignment::Right),
                    Cell::new(format!("{:.2}%", d.resp_rate)).set_alignment(CellAlignment::Right),
                    Cell::new(count_text(d.cum_resp)).set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.cum_resp_pct, |v| format!("{v:.1}%")))
                        .set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.ks, |v| format!("{v:.1}")))
                        .set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.lift, |v| format!("{v:.2}x")))
                        .set_alignment(CellAlignment::Right),
                ]);
            }
            keep_whole(&mut deciles, &(0..9).collect::<Vec<_>>());
            out.push_str(&deciles.to_string());
            out.push('\n');
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Rules against the model\n\n");
        for w in &self.warnings {
            out.push_str(&format!("> **Warning:** {}\n>\n", md_escape(w)));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for line in self.summary_lines() {
            out.push_str(&format!("- {line}\n"));
        }
        out.push_str("\n## Rules\n\n");
        out.push_str("| Rule | Audience | Share of base | Rule conv. (rate) | Model conv. (rate) | Extra | Lift rule / model | Overlap | Rate diff. [95% CI] | Rule AUC | Verdict |\n");
        out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n");
        for r in &self.rules {
            let c = &r.comparison;
            out.push_str(&format!(
                "| {} | {} ({}) | {} | {} ({}) | {} ({}) | {} | {} / {} | {} | {} | {} | {} |\n",
                md_escape(&r.name),
                c.size,
                pct(Some(c.share)),
                pct(Some(r.base_share)),
                c.rule_conversions,
                pct(c.rule_rate),
                count_text(c.model_conversions),
                pct(c.model_rate),
                signed_count(c.extra_conversions),
                times(c.rule_lift),
                times(c.model_lift),
                count_text(c.overlap.both),
                diff_with_ci(c.rate_diff, c.rate_diff_ci),
                opt_fmt(c.rule_auc, |v| format!("{v:.4}")),
                c.verdict.label()
            ));
        }
        let notes = self.all_notes();
        if !notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for n in notes {
                out.push_str(&format!("- {}\n", md_escape(&n)));
            }
        }
        if !self.deciles.is_empty() {
            out.push_str("\n## Model deciles\n\n| Decile | Score range | People | Conv. | Rate | Cum. conv. | Gain | KS | Lift |\n|--:|---|--:|--:|--:|--:|--:|--:|--:|\n");
            for d in &self.deciles {
                out.push_str(&format!(
                    "| {} | {:.4}-{:.4} | {} | {} | {:.2}% | {} | {} | {} | {} |\n",
                    d.decile,
                    d.prob_min,
                    d.prob_max,
                    d.cnt_cust,
                    count_text(d.cnt_resp),
                    d.resp_rate,
                    count_text(d.cum_resp),
                    opt_fmt(d.cum_resp_pct, |v| format!("{v:.1}%")),
                    opt_fmt(d.ks, |v| format!("{v:.1}")),
                    opt_fmt(d.lift, |v| format!("{v:.2}x")),
                ));
            }
        }
        out
    }
}

/// A signed count that may be fractional: `+12`, `-3.5`.
fn signed_count(value: f64) -> String {
    if value >= 0.0 {
        format!("+{}", count_text(value))
    } else {
        format!("-{}", count_text(-value))
    }
}

/// Columns whose cells must not wrap (rule names, intervals).
fn keep_whole(table: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(column) = table.column_mut(i) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
}

fn new_table(width: u16, color: bool) -> Table {
    let mut table = Table::new();
    table
        .load_preset(RULED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table
}

fn opt_fmt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

fn pct(v: Option<f64>) -> String {
    opt_fmt(v, |x| format!("{:.2}%", x * 100.0))
}

fn times(v: Option<f64>) -> String {
    opt_fmt(v, |x| format!("{x:.2}x"))
}

fn pct1(v: Option<f64>) -> String {
    opt_fmt(v, |x| format!("{:.1}%", x * 100.0))
}

fn short_verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::NoSignificantDifference => "no sig. diff.",
        Verdict::TooSmall => "too small",
        Verdict::Identical => "identical",
        other => other.label(),
    }
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word stays whole),
/// continuation lines indented by two.
fn wrap(text: &str, width: u16) -> String {
    let width = usize::from(width.max(20));
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push_str("\n  ");
            line_len = 2;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

/// Below this width the terminal table stacks and splits its columns (see `to_terminal`).
pub const WIDE: u16 = 100;

/// A rate difference over its interval, two lines, for narrow terminals.
fn diff_stacked(diff: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (diff, ci) {
        (Some(d), Some((lo, hi))) => {
            format!(
                "{:+.1}\n({:+.1}, {:+.1})",
                d * 100.0,
                lo * 100.0,
                hi * 100.0
            )
        }
        (Some(d), None) => format!("{:+.1}", d * 100.0),
        _ => "n/a".into(),
    }
}

/// A rate difference in percentage points with its interval, compact for the terminal.
fn diff_with_ci_short(diff: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (diff, ci) {
        (Some(d), Some((lo, hi))) => {
            format!("{:+.1} ({:+.1}, {:+.1})", d * 100.0, lo * 100.0, hi * 100.0)
        }
        (Some(d), None) => format!("{:+.1}", d * 100.0),
        _ => "n/a".into(),
    }
}

fn diff_with_ci(diff: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (diff, ci) {
        (Some(d), Some((lo, hi))) => format!(
            "{:+.2} pts [{:+.2}, {:+.2}]",
            d * 100.0,
            lo * 100.0,
            hi * 100.0
        ),
        (Some(d), None) => format!("{:+.2} pts", d * 100.0),
        _ => "n/a".into(),
    }
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}
