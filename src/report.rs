//! The comparison report: one structure, rendered as a terminal table, JSON, CSV or Markdown.
//!
//! The JSON form is the documented, versioned interface (README.md, "JSON report"); bump
//! `SCHEMA_VERSION` when a field changes meaning or disappears. Nothing time- or machine-dependent
//! goes in, so identical inputs give byte-identical reports.

use comfy_table::{
    Attribute, Cell, CellAlignment, Color, ColumnConstraint, ContentArrangement, Table,
};
use serde::{Deserialize, Serialize};

use crate::metrics::{DecileRow, Overlap, RuleComparison, Verdict};

pub const SCHEMA_VERSION: u32 = 1;

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
    pub notes: Vec<String>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub auc: Option<f64>,
    pub auc_ci: Option<(f64, f64)>,
    pub log_loss: Option<f64>,
    pub eval_rows: usize,
    pub positives: usize,
    pub base_rate: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    pub name: String,
    pub file: String,
    pub size: usize,
    pub share: f64,
    pub rule_conversions: usize,
    pub rule_rate: Option<f64>,
    pub rule_lift: Option<f64>,
    pub model_conversions: usize,
    pub model_rate: Option<f64>,
    pub model_lift: Option<f64>,
    pub extra_conversions: i64,
    pub overlap: Overlap,
    pub rate_diff: Option<f64>,
    pub rate_diff_ci: Option<(f64, f64)>,
    pub verdict: Verdict,
    pub rule_auc: Option<f64>,
    pub rule_tpr: Option<f64>,
    pub rule_fpr: Option<f64>,
    pub model_reach_at_rule_rate: Option<usize>,
    pub note: Option<String>,
}

impl RuleReport {
    pub fn new(name: String, file: String, c: RuleComparison) -> RuleReport {
        RuleReport {
            name,
            file,
            size: c.size,
            share: c.share,
            rule_conversions: c.rule_conversions,
            rule_rate: c.rule_rate,
            rule_lift: c.rule_lift,
            model_conversions: c.model_conversions,
            model_rate: c.model_rate,
            model_lift: c.model_lift,
            extra_conversions: c.extra_conversions,
            overlap: c.overlap,
            rate_diff: c.rate_diff,
            rate_diff_ci: c.rate_diff_ci,
            verdict: c.verdict,
            rule_auc: c.rule_auc,
            rule_tpr: c.rule_tpr,
            rule_fpr: c.rule_fpr,
            model_reach_at_rule_rate: c.model_reach_at_rule_rate,
            note: c.note,
        }
    }
}

/// Output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

impl CompareReport {
    pub fn render(&self, format: ReportFormat, color: bool, width: u16) -> String {
        match format {
            ReportFormat::Table => self.to_terminal(color, width),
            ReportFormat::Json => self.to_json(),
            ReportFormat::Csv => self.to_csv(),
            ReportFormat::Markdown => self.to_markdown(),
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
            "note",
        ];
        w.write_record(header).expect("writing to memory");
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.rules {
            let record = vec![
                r.name.clone(),
                r.file.clone(),
                r.size.to_string(),
                r.share.to_string(),
                r.rule_conversions.to_string(),
                opt(r.rule_rate),
                opt(r.rule_lift),
                r.model_conversions.to_string(),
                opt(r.model_rate),
                opt(r.model_lift),
                r.extra_conversions.to_string(),
                r.overlap.both.to_string(),
                opt(r.overlap.both_rate),
                r.overlap.rule_only.to_string(),
                opt(r.overlap.rule_only_rate),
                r.overlap.model_only.to_string(),
                opt(r.overlap.model_only_rate),
                opt(r.rate_diff),
                opt(r.rate_diff_ci.map(|c| c.0)),
                opt(r.rate_diff_ci.map(|c| c.1)),
                r.verdict.label().to_string(),
                opt(r.rule_auc),
                opt(r.rule_tpr),
                opt(r.rule_fpr),
                r.model_reach_at_rule_rate
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                opt(self.model.auc),
                self.model.eval_rows.to_string(),
                opt(self.model.base_rate),
                r.note.clone().unwrap_or_default(),
            ];
            w.write_record(&record).expect("writing to memory");
        }
        String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
    }

    fn summary_lines(&self) -> Vec<String> {
        let m = &self.model;
        let mut lines = vec![format!(
            "Evaluation rows: {} ({}), {} conversions, base rate {}",
            m.eval_rows,
            match self.evaluation.source.as_str() {
                "holdout" => "held out; the model never saw them",
                _ => "given with --eval",
            },
            m.positives,
            pct(m.base_rate)
        )];
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

    pub fn to_terminal(&self, color: bool, width: u16) -> String {
        let mut out = String::new();
        out.push_str("Rules against the model's audience of the same size\n");

        for line in self.summary_lines() {
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
        let mut table = new_table(width, color);
        let header = [
            "Rule",
            "People",
            "Rule\nrate",
            "Model\nrate",
            "Rate diff., points\n(95% interval)",
            "Verdict",
        ];
        table.set_header(
            header
                .iter()
                .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
        let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
        for r in &self.rules {
            let verdict = Cell::new(short_verdict(r.verdict));
            let verdict = if color {
                match r.verdict {
                    Verdict::ModelBetter => verdict.fg(Color::Green),
                    Verdict::RuleBetter => verdict.fg(Color::Red),
                    _ => verdict.fg(Color::Yellow),
                }
            } else {
                verdict
            };
            table.add_row(vec![
                Cell::new(&r.name),
                right(format!("{} ({})", r.size, pct1(Some(r.share)))),
                right(pct1(r.rule_rate)),
                right(pct1(r.model_rate)),
                right(diff_with_ci_short(r.rate_diff, r.rate_diff_ci)),
                verdict,
            ]);
        }
        keep_whole(&mut table, &[0, 1, 4, 5]);
        out.push_str(&table.to_string());
        out.push_str("\n\n");
        let mut details = new_table(width, false);
        details.set_header(
            [
                "Rule",
                "Rule\nconv.",
                "Model\nconv.",
                "Extra\nconv.",
                "Rule\nlift",
                "Model\nlift",
                "Overlap",
                "Rule\nAUC",
                "Model\nreach*",
            ]
            .iter()
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
        for r in &self.rules {
            details.add_row(vec![
                Cell::new(&r.name),
                right(r.rule_conversions.to_string()),
                right(r.model_conversions.to_string()),
                right(format!("{:+}", r.extra_conversions)),
                right(times(r.rule_lift)),
                right(times(r.model_lift)),
                right(r.overlap.both.to_string()),
                right(opt_fmt(r.rule_auc, |v| format!("{v:.3}"))),
                right(
                    r.model_reach_at_rule_rate
                        .map_or("n/a".into(), |v| v.to_string()),
                ),
            ]);
        }
        keep_whole(&mut details, &[0]);
        out.push_str(&details.to_string());
        out.push_str(
            "\n* Model reach: how many people the model can pick at the rule's conversion rate or better.\n",
        );
        let notes: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| r.note.as_ref().map(|n| format!("{}: {n}", r.name)))
            .chain(self.notes.iter().cloned())
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&format!("Note: {n}\n"));
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
                    "Cum. conv.",
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
                    Cell::new(d.cnt_resp).set_alignment(CellAlignment::Right),
                    Cell::new(format!("{:.2}%", d.resp_rate)).set_alignment(CellAlignment::Right),
                    Cell::new(d.cum_resp).set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.cum_resp_pct, |v| format!("{v:.1}%")))
                        .set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.ks, |v| format!("{v:.1}")))
                        .set_alignment(CellAlignment::Right),
                    Cell::new(opt_fmt(d.lift, |v| format!("{v:.2}x")))
                        .set_alignment(CellAlignment::Right),
                ]);
            }
            out.push_str(&deciles.to_string());
            out.push('\n');
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Rules against the model\n\n");
        for line in self.summary_lines() {
            out.push_str(&format!("- {line}\n"));
        }
        out.push_str("\n## Rules\n\n");
        out.push_str("| Rule | Audience | Rule conv. (rate) | Model conv. (rate) | Extra | Lift rule / model | Overlap | Rate diff. [95% CI] | Rule AUC | Verdict |\n");
        out.push_str("|---|--:|--:|--:|--:|--:|--:|---|--:|---|\n");
        for r in &self.rules {
            out.push_str(&format!(
                "| {} | {} ({}) | {} ({}) | {} ({}) | {:+} | {} / {} | {} | {} | {} | {} |\n",
                md_escape(&r.name),
                r.size,
                pct(Some(r.share)),
                r.rule_conversions,
                pct(r.rule_rate),
                r.model_conversions,
                pct(r.model_rate),
                r.extra_conversions,
                times(r.rule_lift),
                times(r.model_lift),
                r.overlap.both,
                diff_with_ci(r.rate_diff, r.rate_diff_ci),
                opt_fmt(r.rule_auc, |v| format!("{v:.4}")),
                r.verdict.label()
            ));
        }
        let notes: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| r.note.as_ref().map(|n| format!("{}: {n}", r.name)))
            .chain(self.notes.iter().cloned())
            .collect();
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
                    d.cnt_resp,
                    d.resp_rate,
                    d.cum_resp,
                    opt_fmt(d.cum_resp_pct, |v| format!("{v:.1}%")),
                    opt_fmt(d.ks, |v| format!("{v:.1}")),
                    opt_fmt(d.lift, |v| format!("{v:.2}x")),
                ));
            }
        }
        out
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
        Verdict::Identical => "identical",
        other => other.label(),
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
