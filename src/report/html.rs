//! The report as one self-contained HTML page to share: inline CSS, charts as inline SVG drawn
//! here, no script, and a Content-Security-Policy that forbids every request, so it opens offline,
//! prints, and sends nothing anywhere. Every number on it comes from the report structure the
//! JSON is (the curves included); every chart has a text alternative with its numbers.
//!
//! Chart geometry, which the browser test reads back: each plot's axes carry ticks marked
//! `data-axis="x|y"` and `data-value`, and each rule's point is a `circle` marked `data-rule`,
//! `data-x` and `data-y`, placed by the same linear map as the ticks.

use std::fmt::Write;

use super::{CompareReport, CurvePoint, RuleReport};
use crate::metrics::{Verdict, count_text};

/// Rendered size of the square charts (CSS pixels, 1:1 with SVG units).
const CHART: f64 = 420.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_BOTTOM: f64 = 44.0;

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{:.*}%", digits, x * 100.0))
}

/// A number written into SVG coordinates (fixed precision keeps the file small and stable).
fn n(v: f64) -> String {
    format!("{v:.2}")
}

/// A plot area with linear axes from (0, 0) to (`x_max`, `y_max`).
struct Plot {
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Plot {
    fn square(x_max: f64, y_max: f64) -> Plot {
        Plot {
            width: CHART,
            height: CHART,
            x_max,
            y_max,
        }
    }

    fn x(&self, v: f64) -> f64 {
        MARGIN_LEFT + v / self.x_max * (self.width - MARGIN_LEFT - MARGIN_RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        self.height - MARGIN_BOTTOM - v / self.y_max * (self.height - MARGIN_TOP - MARGIN_BOTTOM)
    }

    fn open(&self, out: &mut String, id: &str, label: &str) {
        let _ = write!(
            out,
            r#"<svg id="{id}" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">"#,
            esc(label),
            n(self.width),
            n(self.height),
            n(self.width),
            n(self.height)
        );
    }

    /// Axes with ticks at `steps` evenly spaced values, labelled by `format`, and axis titles.
    fn axes(
        &self,
        out: &mut String,
        steps: usize,
        format: &dyn Fn(f64) -> String,
        x_title: &str,
        y_title: &str,
    ) {
        let (x0, x1) = (self.x(0.0), self.x(self.x_max));
        let (y0, y1) = (self.y(0.0), self.y(self.y_max));
        let _ = write!(
            out,
            r#"<g class="axes"><line x1="{}" y1="{}" x2="{}" y2="{}"/><line x1="{}" y1="{}" x2="{}" y2="{}"/>"#,
            n(x0),
            n(y0),
            n(x1),
            n(y0),
            n(x0),
            n(y0),
            n(x0),
            n(y1)
        );
        for i in 0..=steps {
            let vx = self.x_max * i as f64 / steps as f64;
            let vy = self.y_max * i as f64 / steps as f64;
            let (px, py) = (self.x(vx), self.y(vy));
            let _ = write!(
                out,
                r#"<line class="tick" data-axis="x" data-value="{vx}" x1="{}" y1="{}" x2="{}" y2="{}"/><text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                n(px),
                n(y0),
                n(px),
                n(y0 + 5.0),
                n(px),
                n(y0 + 18.0),
                esc(&format(vx))
            );
            let _ = write!(
                out,
                r#"<line class="tick" data-axis="y" data-value="{vy}" x1="{}" y1="{}" x2="{}" y2="{}"/><text x="{}" y="{}" text-anchor="end">{}</text>"#,
                n(x0 - 5.0),
                n(py),
                n(x0),
                n(py),
                n(x0 - 8.0),
                n(py + 4.0),
                esc(&format(vy))
            );
        }
        let _ = write!(
            out,
            r#"<text class="title" x="{}" y="{}" text-anchor="middle">{}</text><text class="title" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
            n((x0 + x1) / 2.0),
            n(self.height - 6.0),
            esc(x_title),
            n((y0 + y1) / 2.0),
            esc(y_title)
        );
    }

    fn polyline(&self, out: &mut String, class: &str, points: &[(f64, f64)]) {
        let coords: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{},{}", n(self.x(x)), n(self.y(y))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="{class}" fill="none" points="{}"/>"#,
            coords.join(" ")
        );
    }

    /// The rules' points, each labelled with its name where the names fit without overlapping,
    /// else with its number in the report (the table under the chart gives both). A label moved
    /// away from its point is joined to it by a thin line.
    fn rule_points(&self, out: &mut String, rules: &[(usize, &str, f64, f64, Verdict)]) {
        let anchor = |x: f64, y: f64, text: &str| (self.x(x), self.y(y), label_width(text));
        let area = Area {
            left: 2.0,
            right: self.width - 2.0,
            top: MARGIN_TOP + 8.0,
            bottom: self.height - MARGIN_BOTTOM - 4.0,
        };
        let names: Vec<_> = rules
            .iter()
            .map(|&(_, name, x, y, _)| anchor(x, y, name))
            .collect();
        let numbers: Vec<String> = rules.iter().map(|r| r.0.to_string()).collect();
        // Names only where each stays within two lines of its point; a crowd gets numbers.
        let (labels, texts): (Vec<(f64, f64)>, Vec<&str>) =
            match place_labels(&names, area, 2, false) {
                Some(labels) => (labels, rules.iter().map(|r| r.1).collect()),
                None => {
                    let anchors: Vec<_> = rules
                        .iter()
                        .zip(&numbers)
                        .map(|(&(_, _, x, y, _), key)| anchor(x, y, key))
                        .collect();
                    let labels = place_labels(&anchors, area, 30, true).unwrap_or_default();
                    (labels, numbers.iter().map(String::as_str).collect())
                }
            };
        for ((&(_, name, x, y, verdict), &(lx, ly)), text) in rules.iter().zip(&labels).zip(texts) {
            let (px, py) = (self.x(x), self.y(y));
            let _ = write!(
                out,
                r#"<g class="point {}"><circle data-rule="{}" data-x="{x}" data-y="{y}" cx="{}" cy="{}" r="4"><title>{}: ({}, {})</title></circle>"#,
                verdict_class(verdict),
                esc(name),
                n(px),
                n(py),
                esc(name),
                pct(Some(x), 1),
                pct(Some(y), 1),
            );
            if (ly - (py + 4.0)).abs() > 0.5 {
                let left = lx < px;
                let (from, to) = if left {
                    (px - 3.0, lx + label_width(text) + 1.0)
                } else {
                    (px + 3.0, lx - 1.0)
                };
                let _ = write!(
                    out,
                    r#"<line class="leader" x1="{}" y1="{}" x2="{}" y2="{}"/>"#,
                    n(from),
                    n(py),
                    n(to),
                    n(ly - 4.0)
                );
            }
            let _ = write!(
                out,
                r#"<text x="{}" y="{}">{}</text></g>"#,
                n(lx),
                n(ly),
                esc(text)
            );
        }
    }
}

/// Approximate width of a label at the charts' 11 px font.
fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.3
}

/// Where labels may go: x from `left` to `right`, text baselines from `top` to `bottom`.
#[derive(Debug, Clone, Copy)]
struct Area {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// Where each label goes (x, text baseline), given its point and width: right of the point, else
/// left of it, else the nearest free line above or below, at most `lines` lines away, inside
/// `area`; points taken from the top of the chart down. `None` when some label finds no free
/// place, unless `force`, which then leaves that label beside its point.
fn place_labels(
    anchors: &[(f64, f64, f64)],
    area: Area,
    lines: i32,
    force: bool,
) -> Option<Vec<(f64, f64)>> {
    const LINE: f64 = 13.0;
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by(|&a, &b| anchors[a].1.total_cmp(&anchors[b].1).then(a.cmp(&b)));
    let mut placed: Vec<(f64, f64, f64)> = Vec::new(); // (x0, x1, baseline)
    let mut labels = vec![(0.0, 0.0); anchors.len()];
    for i in order {
        let (px, py, width) = anchors[i];
        let free = |x0: f64, y: f64| {
            let x1 = x0 + width;
            (area.top..=area.bottom).contains(&y)
                && x0 >= area.left
                && x1 <= area.right
                && placed
                    .iter()
                    .all(|&(a0, a1, b)| a1 <= x0 || x1 <= a0 || (b - y).abs() >= LINE)
        };
        let home = py + 4.0;
        // Right of the point, then left of it, then a line further away each time.
        let found = (0..4 * lines + 2)
            .map(|step: i32| {
                let k = f64::from((step / 2 + 1) / 2);
                let y = if (step / 2) % 2 == 1 {
                    home + k * LINE
                } else {
                    home - k * LINE
                };
                let x0 = if step % 2 == 0 {
                    px + 7.0
                } else {
                    px - 7.0 - width
                };
                (x0, y)
            })
            .find(|&(x0, y)| free(x0, y));
        let (x0, y) = match found {
            Some(at) => at,
            None if force => (px + 7.0, home),
            None => return None,
        };
        let x1 = x0 + width;
        placed.push((x0, x1, y));
        labels[i] = (x0, y);
    }
    Some(labels)
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::ModelBetter => "model-better",
        Verdict::RuleBetter => "rule-better",
        _ => "neutral",
    }
}

fn points(curve: &[CurvePoint]) -> Vec<(f64, f64)> {
    curve.iter().map(|p| (p.x, p.y)).collect()
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d232a;max-width:1100px;margin:24px auto;padding:0 20px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}.source{color:#5b6570;margin:0}
.warning{background:#fdecea;border-left:5px solid #c62828;padding:8px 12px;margin:8px 0}
.note{background:#fff8e1;border-left:5px solid #f0a500;padding:6px 12px;margin:6px 0}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:4px 10px;border-bottom:1px solid #e6e9ed;text-align:right}
th:first-child,td:first-child{text-align:left}.keyed td:nth-child(2),.keyed th:nth-child(2){text-align:left}th{background:#f4f6f8;font-weight:600}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}dt{color:#5b6570}dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0;max-width:470px}figcaption{color:#5b6570;font-size:13px;max-width:420px}.alt{font-size:13px}
svg text{font-size:11px;fill:#3a434c}svg .title{font-size:12px;fill:#1d232a}
.axes line{stroke:#8a949e;stroke-width:1}.model{stroke:#1565c0;stroke-width:2.2}
.random{stroke:#9aa3ad;stroke-dasharray:4 3}.perfect{stroke:#2e7d32;stroke-dasharray:2 3}
.point circle{stroke:#fff;stroke-width:1.5}.leader{stroke:#9aa3ad;stroke-width:.8}.model-better circle{fill:#2e7d32}.rule-better circle{fill:#c62828}.neutral circle{fill:#8d6e00}
.bar-rule{fill:#8d6e00}.bar-model{fill:#1565c0}.bar-both{fill:#5e35b1}.bar-rule-only{fill:#d4a017}.bar-model-only{fill:#64b5f6}
.ci{stroke:#1d232a;stroke-width:2}.zero{stroke:#8a949e}.lift{fill:#1565c0}.calibration circle{fill:#1565c0}
.verdict{font-weight:600;white-space:nowrap}.rule{break-inside:avoid;border-top:1px solid #e6e9ed}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}.charts{gap:12px}}
";

/// The whole page.
pub fn render(report: &CompareReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Rules against the model</title><style>"
    ));
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<header><h1>Rules against the model</h1>");
    let _ = write!(
        out,
        r#"<p class="source">{} &middot; {}</p></header>"#,
        esc(&report.evaluation.data),
        esc(&report.tool)
    );
    // Warnings and notes first: a reader who stops here still knows what limits the numbers.
    for w in &report.warnings {
        let _ = write!(
            out,
            r#"<p class="warning" role="alert"><strong>Warning:</strong> {}</p>"#,
            esc(w)
        );
    }
    for note in report.all_notes() {
        let _ = write!(out, r#"<p class="note">{}</p>"#, esc(&note));
    }
    summary(&mut out, report);
    verdict_table(&mut out, report);
    out.push_str(r#"<h2>The rules on the model's curves</h2><div class="charts">"#);
    gains_chart(&mut out, report);
    roc_chart(&mut out, report);
    out.push_str("</div>");
    out.push_str("<h2>Each rule</h2>");
    for r in &report.rules {
        rule_section(&mut out, r);
    }
    deciles(&mut out, report);
    let _ = write!(
        out,
        r#"<footer><p class="source">Report schema version {}. Model-side counts are expected counts where the model's cut falls among equal scores.</p></footer></body></html>"#,
        report.schema_version
    );
    out.push('\n');
    out
}

fn summary(out: &mut String, report: &CompareReport) {
    out.push_str(r#"<h2>The evaluation</h2><section id="summary"><dl>"#);
    let m = &report.model;
    let e = &report.evaluation;
    let auc = match (m.auc, m.auc_ci) {
        (Some(a), Some((lo, hi))) => format!("{a:.4} (95% interval {lo:.4} to {hi:.4})"),
        (Some(a), None) => format!("{a:.4}"),
        (None, _) => "undefined".into(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("Model AUC", auc),
        (
            "Log loss",
            m.log_loss.map_or("n/a".into(), |v| format!("{v:.4}")),
        ),
        ("Evaluation rows", m.eval_rows.to_string()),
        ("Conversions", m.positives.to_string()),
        ("Base rate", pct(m.base_rate, 2)),
        (
            "Split",
            e.split
                .clone()
                .unwrap_or_else(|| "an existing model on a given table".into()),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    for line in report.summary_lines().iter().skip(1) {
        if line.starts_with("Model AUC") {
            continue;
        }
        let _ = write!(out, "<dt></dt><dd>{}</dd>", esc(line));
    }
    out.push_str("</dl></section>");
}

fn verdict_words(r: &RuleReport) -> String {
    let c = &r.comparison;
    let rates = format!(
        "The model's {} people convert at {}, the rule's at {}",
        c.size,
        pct(c.model_rate, 1),
        pct(c.rule_rate, 1)
    );
    let diff = match (c.rate_diff, c.rate_diff_ci) {
        (Some(d), Some((lo, hi))) => format!(
            ": {:+.1} points (95% interval {:+.1} to {:+.1}).",
            d * 100.0,
            lo * 100.0,
            hi * 100.0
        ),
        (Some(d), None) => format!(": {:+.1} points.", d * 100.0),
        _ => ".".into(),
    };
    let verdict = match c.verdict {
        Verdict::ModelBetter => "The model's audience converts better.",
        Verdict::RuleBetter => "The rule's audience converts better.",
        Verdict::NoSignificantDifference => {
            "No significant difference: the interval includes zero."
        }
        Verdict::TooSmall => "Too small to judge.",
        Verdict::Identical => "The same people: the rule selects everybody.",
        Verdict::NotComparable => "Not comparable.",
    };
    format!("{rates}{diff} {verdict}")
}

fn verdict_table(out: &mut String, report: &CompareReport) {
    out.push_str(concat!(
        "<h2>Each rule against the model's audience of the same size</h2>",
        "<table id=\"verdicts\" class=\"keyed\"><thead><tr><th>#</th><th>Rule</th><th>People</th><th>Share of evaluation rows</th><th>Share of base</th>",
        "<th>Rule rate</th><th>Model rate</th><th>Difference, points (95% interval)</th>",
        "<th>Extra conversions</th><th>Verdict</th></tr></thead><tbody>"
    ));
    for (i, r) in report.rules.iter().enumerate() {
        let c = &r.comparison;
        let diff = match (c.rate_diff, c.rate_diff_ci) {
            (Some(d), Some((lo, hi))) => format!(
                "{:+.1} ({:+.1} to {:+.1})",
                d * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            (Some(d), None) => format!("{:+.1}", d * 100.0),
            _ => "n/a".into(),
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="verdict">{}</td></tr>"#,
            i + 1,
            esc(&r.name),
            c.size,
            pct(Some(c.share), 1),
            pct(Some(r.base_share), 1),
            pct(c.rule_rate, 1),
            pct(c.model_rate, 1),
            esc(&diff),
            esc(&count_text(c.extra_conversions)),
            esc(c.verdict.label())
        );
    }
    out.push_str("</tbody></table>");
}

fn gains_chart(out: &mut String, report: &CompareReport) {
    let plot = Plot::square(1.0, 1.0);
    out.push_str("<figure>");
    plot.open(
        out,
        "gains",
        "Cumulative gains of the model, with each rule",
    );
    plot.axes(
        out,
        4,
        &|v| format!("{:.0}%", v * 100.0),
        "share of the evaluation rows targeted",
        "share of their conversions",
    );
    plot.polyline(out, "random", &[(0.0, 0.0), (1.0, 1.0)]);
    let m = &report.model;
    if m.positives > 0 && m.eval_rows > 0 {
        let best = m.positives as f64 / m.eval_rows as f64;
        plot.polyline(out, "perfect", &[(0.0, 0.0), (best, 1.0), (1.0, 1.0)]);
    }
    plot.polyline(out, "model", &points(&report.curves.gains));
    let points: Vec<_> = report
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let c = &r.comparison;
            c.rule_tpr
                .map(|tpr| (i + 1, r.name.as_str(), c.share, tpr, c.verdict))
        })
        .collect();
    plot.rule_points(out, &points);
    out.push_str("</svg><figcaption>The model's curve (blue) says what share of the conversions the model's top audience of each size holds; the dashed lines are a random choice and a perfect one. A rule under the curve is beaten: the model reaches more conversions with as many people. Green points: the model's audience converts better; red: the rule's does; amber: neither is shown better.</figcaption>");
    out.push_str(
        "<table class=\"alt keyed\"><thead><tr><th>#</th><th>Rule</th><th>Share targeted</th><th>Share of conversions</th><th>Model, same share</th></tr></thead><tbody>",
    );
    for (i, r) in report.rules.iter().enumerate() {
        let c = &r.comparison;
        let model = report
            .model
            .positives
            .gt(&0)
            .then(|| c.model_conversions / report.model.positives as f64);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&r.name),
            pct(Some(c.share), 1),
            pct(c.rule_tpr, 1),
            pct(model, 1)
        );
    }
    out.push_str("</tbody></table></figure>");
}

fn roc_chart(out: &mut String, report: &CompareReport) {
    let plot = Plot::square(1.0, 1.0);
    out.push_str("<figure>");
    plot.open(out, "roc", "ROC curve of the model, with each rule");
    plot.axes(
        out,
        4,
        &|v| format!("{v:.2}"),
        "false positive rate",
        "true positive rate",
    );
    plot.polyline(out, "random", &[(0.0, 0.0), (1.0, 1.0)]);
    plot.polyline(out, "model", &points(&report.curves.roc));
    let points: Vec<_> = report
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let c = &r.comparison;
            match (c.rule_fpr, c.rule_tpr) {
                (Some(fpr), Some(tpr)) => Some((i + 1, r.name.as_str(), fpr, tpr, c.verdict)),
                _ => None,
            }
        })
        .collect();
    plot.rule_points(out, &points);
    let auc = report
        .model
        .auc
        .map_or("undefined".into(), |a| format!("{a:.4}"));
    let _ = write!(
        out,
        "</svg><figcaption>The model's ROC curve (AUC {auc}) and each rule as the point it makes on it; a rule below the curve is beaten.</figcaption>"
    );
    out.push_str("<table class=\"alt keyed\"><thead><tr><th>#</th><th>Rule</th><th>False positive rate</th><th>True positive rate</th><th>Rule AUC</th></tr></thead><tbody>");
    for (i, r) in report.rules.iter().enumerate() {
        let c = &r.comparison;
        let f = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.3}"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&r.name),
            f(c.rule_fpr),
            f(c.rule_tpr),
            f(c.rule_auc)
        );
    }
    out.push_str("</tbody></table></figure>");
}

/// One rule: its rate against the model's with the interval, the overlap, the verdict.
fn rule_section(out: &mut String, r: &RuleReport) {
    let c = &r.comparison;
    let _ = write!(
        out,
        r#"<article class="rule" id="rule-{}"><h3>{}</h3><p>{}</p><div class="charts">"#,
        esc(&r.name),
        esc(&r.name),
        esc(&verdict_words(r))
    );
    // Rates, with the difference and its interval on its own scale below.
    let (w, h) = (420.0, 120.0);
    let top = c
        .rule_rate
        .unwrap_or(0.0)
        .max(c.model_rate.unwrap_or(0.0))
        .max(0.01);
    // Room right of the longest bar for its percentage.
    let scale = |v: f64| 110.0 + v / top * (w - 170.0);
    let _ = write!(
        out,
        r#"<svg role="img" aria-label="Conversion rates of {}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&r.name)
    );
    for (i, (label, rate, class)) in [
        ("rule", c.rule_rate, "bar-rule"),
        ("model", c.model_rate, "bar-model"),
    ]
    .into_iter()
    .enumerate()
    {
        let y = 10.0 + i as f64 * 28.0;
        let rate_v = rate.unwrap_or(0.0);
        let _ = write!(
            out,
            r#"<text x="104" y="{}" text-anchor="end">{label}</text><rect class="{class}" x="110" y="{}" width="{}" height="20"/><text x="{}" y="{}">{}</text>"#,
            n(y + 14.0),
            n(y),
            n(scale(rate_v) - 110.0),
            n(scale(rate_v) + 4.0),
            n(y + 14.0),
            pct(rate, 1)
        );
    }
    if let (Some(d), Some((lo, hi))) = (c.rate_diff, c.rate_diff_ci) {
        let span = lo.abs().max(hi.abs()).max(d.abs()).max(0.01);
        let at = |v: f64| 110.0 + (v / span + 1.0) / 2.0 * (w - 170.0);
        let y = 90.0;
        let _ = write!(
            out,
            r#"<text x="104" y="{}" text-anchor="end">difference</text><line class="zero" x1="{}" y1="{}" x2="{}" y2="{}"/><line class="ci" x1="{}" y1="{}" x2="{}" y2="{}"/><circle cx="{}" cy="{}" r="4"/><text x="{}" y="{}">{:+.1} points ({:+.1} to {:+.1})</text>"#,
            n(y + 4.0),
            n(at(0.0)),
            n(y - 10.0),
            n(at(0.0)),
            n(y + 10.0),
            n(at(lo)),
            n(y),
            n(at(hi)),
            n(y),
            n(at(d)),
            n(y),
            n(110.0),
            n(y + 24.0),
            d * 100.0,
            lo * 100.0,
            hi * 100.0
        );
    }
    out.push_str("</svg>");
    // Overlap: who both pick, who only one of them picks, and how each part converts.
    let o = &c.overlap;
    let total = (o.both + o.rule_only + o.model_only).max(1e-9);
    let (w2, h2) = (420.0, 80.0);
    let _ = write!(
        out,
        r#"<svg role="img" aria-label="Overlap of {} with the model's audience" width="{w2}" height="{h2}" viewBox="0 0 {w2} {h2}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&r.name)
    );
    let mut x = 10.0;
    for (label, count, rate, class) in [
        ("rule only", o.rule_only, o.rule_only_rate, "bar-rule-only"),
        ("both", o.both, o.both_rate, "bar-both"),
        (
            "model only",
            o.model_only,
            o.model_only_rate,
            "bar-model-only",
        ),
    ] {
        let width = count / total * (w2 - 20.0);
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{}" y="10" width="{}" height="24"><title>{label}: {} people, {}</title></rect>"#,
            n(x),
            n(width),
            count_text(count),
            pct(rate, 1)
        );
        x += width;
    }
    let _ = write!(
        out,
        r#"<text x="10" y="52">rule only {} ({}) &middot; both {} ({}) &middot; model only {} ({})</text><text x="10" y="70">people (their conversion rate)</text></svg>"#,
        count_text(o.rule_only),
        pct(o.rule_only_rate, 1),
        count_text(o.both),
        pct(o.both_rate, 1),
        count_text(o.model_only),
        pct(o.model_only_rate, 1)
    );
    out.push_str("</div>");
    for note in &c.notes {
        let _ = write!(out, r#"<p class="note">{}</p>"#, esc(note));
    }
    out.push_str("</article>");
}

fn deciles(out: &mut String, report: &CompareReport) {
    if report.deciles.is_empty() {
        return;
    }
    let base = report.model.base_rate.unwrap_or(0.0) * 100.0;
    out.push_str(r#"<h2>The model by decile</h2><div class="charts"><figure>"#);
    // Lift of each decile (its rate over the base rate).
    let lifts: Vec<f64> = report
        .deciles
        .iter()
        .map(|d| if base > 0.0 { d.resp_rate / base } else { 0.0 })
        .collect();
    let top = lifts.iter().copied().fold(1.0, f64::max).ceil();
    let plot = Plot {
        width: CHART,
        height: 300.0,
        x_max: report.deciles.len() as f64,
        y_max: top,
    };
    plot.open(out, "lift", "Lift of each decile");
    plot.axes(
        out,
        top as usize,
        &|v| format!("{v:.0}"),
        "decile (1 = highest scores)",
        "lift (rate / base rate)",
    );
    for (i, lift) in lifts.iter().enumerate() {
        let (x0, x1) = (plot.x(i as f64 + 0.15), plot.x(i as f64 + 0.85));
        let _ = write!(
            out,
            r#"<rect class="lift" x="{}" y="{}" width="{}" height="{}"><title>decile {}: lift {lift:.2}</title></rect>"#,
            n(x0),
            n(plot.y(*lift)),
            n(x1 - x0),
            n(plot.y(0.0) - plot.y(*lift)),
            i + 1
        );
    }
    plot.polyline(out, "random", &[(0.0, 1.0), (plot.x_max, 1.0)]);
    out.push_str("</svg><figcaption>How many times the base rate each tenth of the evaluation rows, ranked by the model, converts.</figcaption></figure><figure>");
    // Calibration: mean score against the observed rate, per decile.
    let reach = report
        .deciles
        .iter()
        .map(|d| d.prob_avg.max(d.resp_rate / 100.0))
        .fold(0.01, f64::max);
    let top = (reach * 10.0).ceil() / 10.0;
    let plot = Plot::square(top, top);
    plot.open(
        out,
        "calibration",
        "Calibration: mean score against observed rate per decile",
    );
    plot.axes(
        out,
        4,
        &|v| format!("{:.0}%", v * 100.0),
        "mean score of the decile",
        "observed conversion rate",
    );
    plot.polyline(out, "random", &[(0.0, 0.0), (top, top)]);
    out.push_str(r#"<g class="calibration">"#);
    // Deciles crowd together at low scores: a number only where it has room (the table below
    // and each point's tooltip give them all).
    let mut labelled: Vec<(f64, f64)> = Vec::new();
    for d in &report.deciles {
        let (px, py) = (plot.x(d.prob_avg), plot.y(d.resp_rate / 100.0));
        let _ = write!(
            out,
            r#"<circle cx="{}" cy="{}" r="4"><title>decile {}: mean score {}, rate {:.2}%, {} people</title></circle>"#,
            n(px),
            n(py),
            d.decile,
            pct(Some(d.prob_avg), 2),
            d.resp_rate,
            d.cnt_cust,
        );
        if labelled
            .iter()
            .all(|&(x, y)| (x - px).abs() > 16.0 || (y - py).abs() > 13.0)
        {
            labelled.push((px, py));
            let _ = write!(
                out,
                r#"<text x="{}" y="{}">{}</text>"#,
                n(px + 6.0),
                n(py + 4.0),
                d.decile
            );
        }
    }
    out.push_str("</g></svg><figcaption>Each decile's mean score against how often its people converted; points on the diagonal mean the scores are probabilities to trust.</figcaption></figure></div>");
    out.push_str("<table id=\"decile-table\"><thead><tr><th>Decile</th><th>Scores</th><th>Mean score</th><th>People</th><th>Conversions</th><th>Rate</th><th>Lift</th><th>Cumulative gain</th></tr></thead><tbody>");
    for (d, lift) in report.deciles.iter().zip(&lifts) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.3} to {:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{lift:.2}</td><td>{}</td></tr>",
            d.decile,
            d.prob_min,
            d.prob_max,
            pct(Some(d.prob_avg), 2),
            d.cnt_cust,
            count_text(d.cnt_resp),
            d.resp_rate,
            d.cum_resp_pct.map_or("n/a".into(), |v| format!("{v:.1}%"))
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_map_is_linear() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let p = Plot::square(1.0, 1.0);
        assert_eq!(p.x(0.0), MARGIN_LEFT);
        assert_eq!(p.x(1.0), CHART - MARGIN_RIGHT);
        assert_eq!(p.y(0.0), CHART - MARGIN_BOTTOM);
        assert_eq!(p.y(1.0), MARGIN_TOP);
    }

    const AREA: Area = Area {
        left: 0.0,
        right: 420.0,
        top: 20.0,
        bottom: 380.0,
    };

    #[test]
    fn labels_never_overlap_or_give_up() {
        // Three names at one point: stacked a line apart, all inside the plot.
        let at = (100.0, 200.0, 60.0);
        let labels = place_labels(&[at, at, at], AREA, 2, false).unwrap();
        for (i, a) in labels.iter().enumerate() {
            assert!((20.0..=380.0).contains(&a.1) && a.0 >= 0.0 && a.0 + 60.0 <= 420.0);
            for b in &labels[i + 1..] {
                let apart = (a.0 - b.0).abs() >= 60.0 || (a.1 - b.1).abs() >= 13.0;
                assert!(apart, "{labels:?}");
            }
        }
        // Far more labels than lines: no placement without overlap, unless forced.
        let crowd = vec![at; 200];
        assert!(place_labels(&crowd, AREA, 30, false).is_none());
        assert_eq!(place_labels(&crowd, AREA, 30, true).unwrap().len(), 200);
        // Labels side by side do not clash.
        let apart = [(100.0, 200.0, 30.0), (200.0, 200.0, 30.0)];
        let labels = place_labels(&apart, AREA, 2, false).unwrap();
        assert_eq!(labels[0].1, labels[1].1);
    }
}
