//! The numbers `compare` reports, with the definitions of reference/metrics.md.
//!
//! Conventions: `labels` are 0/1; the model's [`Ranking`] orders rows best first. Wherever a cut
//! (the model's top n, a decile boundary, the model's reach) falls inside a group of equal scores,
//! the figures are the expected counts over that group, pro rata (see [`ranking`]), so no order
//! among equal scores decides anything. A value that is undefined (a rate over nobody, an AUC with
//! one class) is `None`, never NaN.

pub mod bootstrap;
pub mod ranking;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use bootstrap::{BootstrapInterval, paired_rate_diff_intervals, quantile};
pub use ranking::{Ranking, TopCut, tie_key};

/// z for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Resamples in the paired bootstrap of a rate difference.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// ROC AUC = P(score of a positive > score of a negative) + P(tie)/2 (Mann–Whitney U / (P·N)).
/// None when either class is absent. NaN scores rank below every number; -0 and +0 tie.
///
/// U is counted in integers (twice U, so that ties' halves stay whole) and divided once:
/// whenever 2·P·N < 2^53 every partial sum of LightGBM's own AUC metric is exact too, so the two
/// give the same double, bit for bit, which is what lets training watch this AUC in place of
/// LightGBM's (`model::train`).
pub fn auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    AucBuffers::default().auc(scores, labels)
}

/// [`auc`] with its buffers kept, for the many AUCs of the same rows (a model's scores after
/// each boosting round).
///
/// The rows are cut into one part per core (at most `AUC_MAX_PARTS`); each part's two classes
/// are keyed and sorted on its own core, and U is the sum over every (positive part, negative
/// part) pair of that pair's count: whole numbers, so the sum is the same whatever the cut.
/// Sorting a part on every core beats one parallel sort of each whole class, whose first
/// partition runs on one core (bench/RESULTS.md).
#[derive(Debug, Default)]
pub struct AucBuffers {
    parts: Vec<ClassKeys>,
}

/// One part's keys ([`order_key`], NaN lowest), each class sorted.
#[derive(Debug, Default)]
struct ClassKeys {
    positive: Vec<i64>,
    negative: Vec<i64>,
}

/// Rows below which a part is not worth a core's wake-up.
const AUC_ROWS_PER_PART: usize = 16_384;
/// At most this many parts: the pairs' counts cost about one pass over the rows per part.
const AUC_MAX_PARTS: usize = 16;

impl AucBuffers {
    /// [`auc`], reusing the buffers.
    pub fn auc(&mut self, scores: &[f64], labels: &[u8]) -> Option<f64> {
        let cores = rayon::current_num_threads().min(AUC_MAX_PARTS);
        let parts = (scores.len() / AUC_ROWS_PER_PART).clamp(1, cores);
        self.auc_in_parts(scores, labels, parts)
    }

    /// [`auc`] over `parts` parts of the rows (the same number for any count of parts).
    fn auc_in_parts(&mut self, scores: &[f64], labels: &[u8], parts: usize) -> Option<f64> {
        let rows = scores.len().min(labels.len());
        let parts = parts.clamp(1, rows.max(1));
        self.parts.resize_with(parts, ClassKeys::default);
        let per_part = rows.div_ceil(parts);
        self.parts.par_iter_mut().enumerate().for_each(|(i, part)| {
            let range = (i * per_part).min(rows)..((i + 1) * per_part).min(rows);
            part.positive.clear();
            part.negative.clear();
            for (&s, &y) in scores[range.clone()].iter().zip(&labels[range]) {
                let key = if s.is_nan() { i64::MIN } else { order_key(s) };
                if y == 1 {
                    part.positive.push(key);
                } else {
                    part.negative.push(key);
                }
            }
            part.positive.sort_unstable();
            part.negative.sort_unstable();
        });
        let positives: usize = self.parts.iter().map(|p| p.positive.len()).sum();
        let negatives: usize = self.parts.iter().map(|p| p.negative.len()).sum();
        if positives == 0 || negatives == 0 {
            return None;
        }
        let all = &self.parts;
        let twice_u: u128 = (0..parts * parts)
            .into_par_iter()
            .map(|pair| twice_u(&all[pair / parts].positive, &all[pair % parts].negative))
            .sum();
        Some((twice_u as f64 / 2.0) / (positives as f64 * negatives as f64))
    }
}

/// Twice Mann-Whitney U of sorted `positives` against sorted `negatives`: for each positive, two
/// for every negative below it and one for every negative equal to it.
fn twice_u(positives: &[i64], negatives: &[i64]) -> u128 {
    let mut twice_u: u128 = 0;
    let (mut below, mut p) = (0usize, 0usize);
    // For each run of equal positive keys: the negatives below it, and those equal to it, each
    // found from where the last run's search ended.
    while p < positives.len() {
        let key = positives[p];
        let run = leading(&positives[p..], |k| k == key);
        below += leading(&negatives[below..], |k| k < key);
        let equal = leading(&negatives[below..], |k| k == key);
        twice_u += run as u128 * (2 * below + equal) as u128;
        p += run;
    }
    twice_u
}

/// How many leading elements of `xs` satisfy `pred`, which holds on a prefix of `xs`: steps that
/// double from the front, then a binary search of the last step. It costs the logarithm of the
/// answer, not of `xs`'s length, so a count that walks two sorted lists side by side costs about
/// one pass over them when they interleave closely (classes of like size), and a binary search
/// per run when one is much the smaller.
fn leading(xs: &[i64], pred: impl Fn(i64) -> bool) -> usize {
    let (mut satisfied, mut step) = (0usize, 1usize);
    while satisfied + step <= xs.len() && pred(xs[satisfied + step - 1]) {
        satisfied += step;
        step *= 2;
    }
    // xs[..satisfied] satisfy it; xs[satisfied + step - 1] does not, or lies past the end.
    let end = (satisfied + step - 1).min(xs.len());
    satisfied + xs[satisfied..end].partition_point(|&x| pred(x))
}

/// An integer that orders as `x` does (for numbers; -0 and +0 are equal, as in a float compare).
pub fn order_key(x: f64) -> i64 {
    // Adding +0 turns -0 into +0, so the two get one key.
    let bits = (x + 0.0).to_bits() as i64;
    // Negative floats order backwards by their bits: flip all but the sign bit.
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// AUC with DeLong's 95% interval (clipped to [0, 1]). The AUC is [`auc`]'s, bit for bit (the
/// same number wherever a report or bundle shows it); DeLong's components give only the
/// interval. The interval is None when a class has a single member, since the variance then
/// cannot be estimated.
pub fn auc_with_ci(scores: &[f64], labels: &[u8]) -> Option<(f64, Option<(f64, f64)>)> {
    let mut buffers = AucBuffers::default();
    // In one part, the buffers hold each class's keys, all sorted.
    let auc = buffers.auc_in_parts(scores, labels, 1)?;
    let (positives, negatives) = (&buffers.parts[0].positive, &buffers.parts[0].negative);
    let (m, n) = (positives.len(), negatives.len());
    if m < 2 || n < 2 {
        return Some((auc, None));
    }
    // DeLong, DeLong & Clarke-Pearson (1988): structural components of each observation.
    let v10: Vec<f64> = positives
        .iter()
        .map(|&k| placement(negatives, k, false) / n as f64)
        .collect();
    let v01: Vec<f64> = negatives
        .iter()
        .map(|&k| placement(positives, k, true) / m as f64)
        .collect();
    let variance = sample_variance(&v10) / m as f64 + sample_variance(&v01) / n as f64;
    let half = Z_95 * variance.max(0.0).sqrt();
    Some((auc, Some(((auc - half).max(0.0), (auc + half).min(1.0)))))
}

/// In sorted `others`: how many lie below `key` (above it when `above`), ties counting one half.
fn placement(others: &[i64], key: i64, above: bool) -> f64 {
    let below = others.partition_point(|&x| x < key);
    let not_above = others.partition_point(|&x| x <= key);
    let ties = (not_above - below) as f64;
    let strict = if above {
        others.len() - not_above
    } else {
        below
    };
    strict as f64 + ties / 2.0
}

fn sample_variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// Mean binary cross-entropy, probabilities clipped to [ε, 1−ε] (ε = f64::EPSILON, as
/// scikit-learn does). None for no rows.
pub fn log_loss(scores: &[f64], labels: &[u8]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let eps = f64::EPSILON;
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y == 1 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Some(total / scores.len() as f64)
}

/// Points (x, y) of a curve, in order.
pub type Curve = Vec<(f64, f64)>;

/// The model's cumulative gains and ROC points at `points + 1` evenly spaced audience sizes
/// (0 to |E|), expected counts where a size falls among equal scores: (share targeted, share of
/// conversions) and (false positive rate, true positive rate). Undefined rates (no positives or
/// no negatives) are 0.
pub fn curves(ranking: &Ranking, labels: &[u8], points: usize) -> (Curve, Curve) {
    let n = ranking.len();
    let positives = labels.iter().filter(|&&y| y == 1).count() as f64;
    let negatives = n as f64 - positives;
    let share = |v: f64, of: f64| if of > 0.0 { v / of } else { 0.0 };
    let mut gains = Vec::with_capacity(points + 1);
    let mut roc = Vec::with_capacity(points + 1);
    // Cumulative conversions at every group boundary, then pro rata inside groups.
    let groups = ranking.group_counts(labels);
    let mut g = 0;
    let (mut rows_before, mut conversions_before) = (0u64, 0u64);
    for j in 0..=points {
        let k = (j * n + points / 2).checked_div(points).unwrap_or(n) as u64;
        while g < groups.len() && rows_before + groups[g].0 <= k {
            rows_before += groups[g].0;
            conversions_before += groups[g].1;
            g += 1;
        }
        let inside = if g < groups.len() && k > rows_before {
            (k - rows_before) as f64 * groups[g].1 as f64 / groups[g].0 as f64
        } else {
            0.0
        };
        let tp = conversions_before as f64 + inside;
        let fp = k as f64 - tp;
        gains.push((share(k as f64, n as f64), share(tp, positives)));
        roc.push((share(fp, negatives), share(tp, positives)));
    }
    (gains, roc)
}

/// The bin (1-based, 1 = best) of the row at 0-based position `position` of `n` when cut into
/// `bins` near-equal groups, computed as kds does with `np.linspace(1, bins+1, n, False, dtype=int)`.
pub fn bin_of_position(position: usize, n: usize, bins: usize) -> usize {
    let step = bins as f64 / n as f64;
    (position as f64 * step + 1.0) as usize
}

/// Expected conversions among the model's first k rows (pro rata inside a group of equal scores).
pub fn conversions_at(ranking: &Ranking, labels: &[u8], k: usize) -> f64 {
    let k = k.min(ranking.len());
    let cut = ranking.top_cut(k);
    let full = if cut.taken == 0 { k } else { cut.group.start };
    let above = ranking.order()[..full]
        .iter()
        .filter(|&&r| labels[r] == 1)
        .count() as f64;
    let group = ranking.order()[cut.group.clone()]
        .iter()
        .filter(|&&r| labels[r] == 1)
        .count() as f64;
    above + group * cut.share()
}

/// Precision@k: the expected conversion rate of the model's first k rows. None for k = 0.
pub fn precision_at(ranking: &Ranking, labels: &[u8], k: usize) -> Option<f64> {
    ratio(
        conversions_at(ranking, labels, k),
        k.min(ranking.len()) as f64,
    )
}

/// Lift@k: precision@k over the base rate. None when either is undefined or the base rate is 0.
pub fn lift_at(ranking: &Ranking, labels: &[u8], k: usize) -> Option<f64> {
    let base = base_rate(labels)?;
    precision_at(ranking, labels, k).and_then(|p| ratio(p, base))
}

/// The share of positives. None for no rows.
pub fn base_rate(labels: &[u8]) -> Option<f64> {
    ratio(
        labels.iter().filter(|&&y| y == 1).count() as f64,
        labels.len() as f64,
    )
}

/// One row of the kds-style decile table. Percentages are in percent, as kds prints them.
/// Conversion counts are expected counts: a group of equal scores that a decile boundary cuts
/// through is shared between the deciles pro rata, so they can be fractional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecileRow {
    pub decile: usize,
    pub prob_min: f64,
    pub prob_max: f64,
    pub prob_avg: f64,
    pub cnt_cust: usize,
    pub cnt_resp: f64,
    pub cnt_non_resp: f64,
    pub cnt_resp_rndm: f64,
    pub cnt_resp_wiz: usize,
    pub resp_rate: f64,
    pub cum_cust: usize,
    pub cum_resp: f64,
    pub cum_resp_wiz: usize,
    pub cum_non_resp: f64,
    pub cum_cust_pct: f64,
    pub cum_resp_pct: Option<f64>,
    pub cum_resp_pct_wiz: Option<f64>,
    pub cum_non_resp_pct: Option<f64>,
    #[serde(rename = "KS")]
    pub ks: Option<f64>,
    pub lift: Option<f64>,
    /// Rows sharing their score with rows of another decile.
    pub tied_across_boundary: usize,
}

/// How far a model's scores are from the rates they predict, by decile of held-out rows: the
/// basis on which `select` states expected conversions from scores, or declines to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Rows the calibration was measured on, and their conversion rate.
    pub rows: usize,
    pub base_rate: f64,
    /// Per decile (1 = highest scores): people, mean score, observed conversion rate.
    pub deciles: Vec<CalibrationBin>,
    /// The expected calibration error: the people-weighted mean over deciles of
    /// |mean score - observed rate|.
    pub error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub people: usize,
    pub mean_score: f64,
    pub rate: f64,
}

impl Calibration {
    /// From a decile table (its `resp_rate` in percent). None without rows.
    pub fn of_deciles(deciles: &[DecileRow]) -> Option<Calibration> {
        let rows: usize = deciles.iter().map(|d| d.cnt_cust).sum();
        if rows == 0 {
            return None;
        }
        let bins: Vec<CalibrationBin> = deciles
            .iter()
            .map(|d| CalibrationBin {
                people: d.cnt_cust,
                mean_score: d.prob_avg,
                rate: d.resp_rate / 100.0,
            })
            .collect();
        let conversions: f64 = bins.iter().map(|b| b.rate * b.people as f64).sum();
        let error = bins
            .iter()
            .map(|b| b.people as f64 * (b.mean_score - b.rate).abs())
            .sum::<f64>()
            / rows as f64;
        Some(Calibration {
            rows,
            base_rate: conversions / rows as f64,
            deciles: bins,
            error,
        })
    }

    /// The largest calibration error at which scores are summed into expected conversions: one
    /// percentage point, or a quarter of the base rate where that is larger (a rare outcome
    /// cannot be measured to a point on a few thousand rows).
    pub fn tolerance(&self) -> f64 {
        f64::max(0.01, 0.25 * self.base_rate)
    }

    pub fn within_tolerance(&self) -> bool {
        self.error <= self.tolerance()
    }
}

/// The decile table of kds' `decile_table` (unrounded) for the model's ranking, with groups of
/// equal scores cut by a boundary shared pro rata. Deciles with no rows (fewer than 10 rows in
/// all) are left out.
pub fn decile_table(ranking: &Ranking, labels: &[u8]) -> Vec<DecileRow> {
    let n = ranking.len();
    let total_resp = labels.iter().filter(|&&y| y == 1).count();
    let total_non = n - total_resp;
    let groups = ranking.group_counts(labels);
    // kds's "wizard": the same bins over rows sorted by the label itself.
    let mut wizard = [0usize; 11];
    for position in 0..total_resp {
        wizard[bin_of_position(position, n, 10)] += 1;
    }
    let mut rows: Vec<DecileRow> = Vec::new();
    let (mut cum_cust, mut cum_resp, mut cum_wiz, mut cum_non) = (0usize, 0.0, 0usize, 0.0);
    let mut position = 0;
    let mut g = 0;
    for (decile, &wizard_count) in wizard.iter().enumerate().skip(1) {
        let start = position;
        while position < n && bin_of_position(position, n, 10) == decile {
            position += 1;
        }
        let end = position;
        if start == end {
            continue;
        }
        // Groups overlapping [start, end): each contributes its share of positions.
        let (mut resp, mut score_sum, mut tied) = (0.0, 0.0, 0usize);
        let (mut prob_min, mut prob_max) = (f64::INFINITY, f64::NEG_INFINITY);
        while g < groups.len() && ranking.group(g).end <= start {
            g += 1;
        }
        let mut h = g;
        while h < groups.len() && ranking.group(h).start < end {
            let range = ranking.group(h);
            let inside = range.end.min(end) - range.start.max(start);
            let (size, conversions) = groups[h];
            resp += conversions as f64 * inside as f64 / size as f64;
            let score = ranking.group_score(h);
            score_sum += score * inside as f64;
            prob_min = prob_min.min(score);
            prob_max = prob_max.max(score);
            if range.start < start || range.end > end {
                tied += inside;
            }
            h += 1;
        }
        let cnt_cust = end - start;
        cum_cust += cnt_cust;
        cum_resp += resp;
        cum_wiz += wizard_count;
        cum_non += cnt_cust as f64 - resp;
        let cum_cust_pct = cum_cust as f64 * 100.0 / n as f64;
        let cum_resp_pct = ratio(cum_resp * 100.0, total_resp as f64);
        let cum_non_resp_pct = ratio(cum_non * 100.0, total_non as f64);
        rows.push(DecileRow {
            decile,
            prob_min,
            prob_max,
            prob_avg: score_sum / cnt_cust as f64,
            cnt_cust,
            cnt_resp: resp,
            cnt_non_resp: cnt_cust as f64 - resp,
            cnt_resp_rndm: total_resp as f64 / 10.0,
            cnt_resp_wiz: wizard_count,
            resp_rate: resp * 100.0 / cnt_cust as f64,
            cum_cust,
            cum_resp,
            cum_resp_wiz: cum_wiz,
            cum_non_resp: cum_non,
            cum_cust_pct,
            cum_resp_pct,
            cum_resp_pct_wiz: ratio(cum_wiz as f64 * 100.0, total_resp as f64),
            cum_non_resp_pct,
            ks: cum_resp_pct.zip(cum_non_resp_pct).map(|(a, b)| a - b),
            lift: cum_resp_pct.map(|p| p / cum_cust_pct),
            tied_across_boundary: tied,
        });
    }
    rows
}

/// What the comparison concludes about a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The model's audience converts better, and the 95% interval excludes zero.
    ModelBetter,
    /// The rule's audience converts better, and the 95% interval excludes zero.
    RuleBetter,
    /// The interval includes zero.
    NoSignificantDifference,
    /// Too few people or conversions to judge (see [`RuleFloor`]).
    TooSmall,
    /// The rule selects everybody: the model's audience is the same people.
    Identical,
    /// The rule selects nobody, or there are no positives: nothing to compare.
    NotComparable,
}

impl Verdict {
    /// The verdict as machines read it, the same in JSON and CSV: `model_better`.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::ModelBetter => "model_better",
            Verdict::RuleBetter => "rule_better",
            Verdict::NoSignificantDifference => "no_significant_difference",
            Verdict::TooSmall => "too_small",
            Verdict::Identical => "identical",
            Verdict::NotComparable => "not_comparable",
        }
    }

    /// The verdict as people read it (tables, Markdown, HTML): `model better`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::ModelBetter => "model better",
            Verdict::RuleBetter => "rule better",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::TooSmall => "too small to judge",
            Verdict::Identical => "identical audiences",
            Verdict::NotComparable => "not comparable",
        }
    }
}

/// The smallest rule `compare` gives a verdict on. Below it a bootstrap interval says nothing
/// (one person who converted gives the interval [1, 1]), so the verdict is `too_small`.
pub const MIN_AUDIENCE: usize = 30;
/// A rule needs this many conversions in its audience or in the model's to be judged.
pub const MIN_CONVERSIONS: f64 = 5.0;
/// Fewer conversions than this in the evaluation rows gets a sentence in the report.
pub const MIN_EVAL_CONVERSIONS: usize = 30;

/// The documented floor below which a rule gets no verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFloor {
    /// At least this many people in the rule's audience (of the evaluation rows).
    pub min_audience: usize,
    /// At least this many conversions in the rule's audience or in the model's.
    pub min_conversions: f64,
}

impl Default for RuleFloor {
    fn default() -> Self {
        RuleFloor {
            min_audience: MIN_AUDIENCE,
            min_conversions: MIN_CONVERSIONS,
        }
    }
}

/// A rule's audience against the model's audience of the same size, on the evaluation rows.
/// Model-side counts are expected counts (pro rata where the cut falls among equal scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleComparison {
    /// n = |R|, the rule's people among the evaluation rows.
    pub size: usize,
    /// n / |E|.
    pub share: f64,
    pub rule_conversions: usize,
    pub rule_rate: Option<f64>,
    pub rule_lift: Option<f64>,
    pub model_conversions: f64,
    pub model_rate: Option<f64>,
    pub model_lift: Option<f64>,
    /// Model conversions minus rule conversions.
    pub extra_conversions: f64,
    pub overlap: Overlap,
    /// Rows whose score equals the score at the model's cut, when the cut falls among them.
    pub tied_at_cut: usize,
    /// The rule as one point on the ROC plane, and its AUC (1 + TPR − FPR) / 2.
    pub rule_tpr: Option<f64>,
    pub rule_fpr: Option<f64>,
    pub rule_auc: Option<f64>,
    /// Model rate − rule rate, with its 95% paired-bootstrap interval.
    pub rate_diff: Option<f64>,
    pub rate_diff_ci: Option<(f64, f64)>,
    pub verdict: Verdict,
    /// The largest audience the model can pick whose expected conversion rate is at least the
    /// rule's.
    pub model_reach_at_rule_rate: Option<usize>,
    /// Plain sentences about what limits these numbers.
    pub notes: Vec<String>,
}

/// How the two audiences intersect, with each part's conversion rate (expected counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// |R ∩ M|
    pub both: f64,
    /// |R \ M|
    pub rule_only: f64,
    /// |M \ R|
    pub model_only: f64,
    pub both_rate: Option<f64>,
    pub rule_only_rate: Option<f64>,
    pub model_only_rate: Option<f64>,
}

/// Compares each rule's audience (its evaluation rows, ascending, no repeats) with the model's
/// top |R|, and gives a verdict from a paired bootstrap of `resamples` resamples (seeded) to
/// every rule above `floor`.
pub fn compare_rules(
    audiences: &[Vec<usize>],
    ranking: &Ranking,
    labels: &[u8],
    resamples: usize,
    seed: u64,
    floor: &RuleFloor,
) -> Vec<RuleComparison> {
    let mut comparisons: Vec<RuleComparison> = audiences
        .iter()
        .map(|rows| compare_point(rows, ranking, labels, floor))
        .collect();
    // Rules still waiting for an interval are bootstrapped together (one draw of rows each time).
    let pending: Vec<usize> = (0..comparisons.len())
        .filter(|&i| comparisons[i].verdict == Verdict::NoSignificantDifference)
        .collect();
    let rows: Vec<&[usize]> = pending.iter().map(|&i| audiences[i].as_slice()).collect();
    let intervals = paired_rate_diff_intervals(ranking, labels, &rows, resamples, seed);
    for (&i, interval) in pending.iter().zip(intervals) {
        let c = &mut comparisons[i];
        c.rate_diff_ci = interval.map(|b| (b.low, b.high));
        c.verdict = match c.rate_diff_ci {
            Some((low, _)) if low > 0.0 => Verdict::ModelBetter,
            Some((_, high)) if high < 0.0 => Verdict::RuleBetter,
            _ => Verdict::NoSignificantDifference,
        };
    }
    comparisons
}

/// Everything but the interval. The verdict is final except `NoSignificantDifference`, which
/// means "to be decided by the interval".
fn compare_point(
    rule_rows: &[usize],
    ranking: &Ranking,
    labels: &[u8],
    floor: &RuleFloor,
) -> RuleComparison {
    let total = labels.len();
    let positives = labels.iter().filter(|&&y| y == 1).count();
    let base = base_rate(labels);
    let n = rule_rows.len();
    let cut = ranking.top_cut(n);
    let weights = ranking.top_weights(n);
    let rule_conversions = rule_rows.iter().filter(|&&r| labels[r] == 1).count();
    let model_conversions = conversions_at(ranking, labels, n);
    let both: f64 = rule_rows.iter().map(|&r| weights[r]).sum();
    let both_conversions: f64 = rule_rows
        .iter()
        .map(|&r| weights[r] * f64::from(labels[r]))
        .sum();
    let rule_only = n as f64 - both;
    let model_only = n as f64 - both;
    let rule_rate = ratio(rule_conversions as f64, n as f64);
    let model_rate = ratio(model_conversions, n as f64);
    let lift = |rate: Option<f64>| rate.zip(base).and_then(|(r, b)| ratio(r, b));
    let negatives = total - positives;
    let rule_tpr = ratio(rule_conversions as f64, positives as f64);
    let rule_fpr = ratio((n - rule_conversions) as f64, negatives as f64);
    let rule_auc = rule_tpr.zip(rule_fpr).map(|(t, f)| (1.0 + t - f) / 2.0);

    let mut notes = Vec::new();
    let (rate_diff, verdict) = if n == 0 {
        notes.push("the rule selects nobody in the evaluation rows".to_string());
        (None, Verdict::NotComparable)
    } else if n == total {
        notes.push("the rule selects everybody: the model's audience is the same people".into());
        (Some(0.0), Verdict::Identical)
    } else if positives == 0 {
        notes.push("the evaluation rows hold no conversions: rates cannot differ".into());
        (Some(0.0), Verdict::NotComparable)
    } else {
        let diff = model_conversions / n as f64 - rule_conversions as f64 / n as f64;
        let small = n < floor.min_audience
            || ((rule_conversions as f64) < floor.min_conversions
                && model_conversions < floor.min_conversions);
        if small {
            notes.push(format!(
                "too small to judge: {n} people, {rule_conversions} conversions in the rule's audience and {} in the model's; a verdict needs at least {} people and {} conversions in one of the two audiences",
                count_text(model_conversions),
                floor.min_audience,
                floor.min_conversions
            ));
            (Some(diff), Verdict::TooSmall)
        } else {
            (Some(diff), Verdict::NoSignificantDifference)
        }
    };
    if n > 0 && verdict != Verdict::TooSmall && (rule_conversions as f64) < floor.min_conversions {
        notes.push(format!(
            "only {rule_conversions} conversion(s) in the rule's audience: its rate is uncertain"
        ));
    }
    let tied_at_cut = cut.tied();
    if n > 0 && tied_at_cut as f64 > 0.01 * n as f64 {
        notes.push(format!(
            "{tied_at_cut} people share the score at the model's cut ({} of them needed): the model's figures are the expected values over them, as if drawn at random",
            cut.taken
        ));
    }
    let model_reach_at_rule_rate =
        (n > 0).then(|| reach_at_rate(ranking, labels, rule_conversions as u64, n as u64));
    RuleComparison {
        size: n,
        share: n as f64 / total.max(1) as f64,
        rule_conversions,
        rule_rate,
        rule_lift: lift(rule_rate),
        model_conversions,
        model_rate,
        model_lift: lift(model_rate),
        extra_conversions: model_conversions - rule_conversions as f64,
        overlap: Overlap {
            both,
            rule_only,
            model_only,
            both_rate: ratio(both_conversions, both),
            rule_only_rate: ratio(rule_conversions as f64 - both_conversions, rule_only),
            model_only_rate: ratio(model_conversions - both_conversions, model_only),
        },
        tied_at_cut,
        rule_tpr,
        rule_fpr,
        rule_auc,
        rate_diff,
        rate_diff_ci: None,
        verdict,
        model_reach_at_rule_rate,
        notes,
    }
}

/// A count that may be an expected (fractional) value, as text: `12` or `11.5`.
pub fn count_text(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The largest k whose expected precision@k in the model's ranking is at least the rate
/// `conversions / size` (0 when none is). Within a group of equal scores the expected
/// conversions grow linearly with k, so the condition is checked exactly, in integers, at the
/// best k of each group.
pub fn reach_at_rate(ranking: &Ranking, labels: &[u8], conversions: u64, size: u64) -> usize {
    // C(k) >= (conversions / size) k, with C(k) = C_a + (k - a) c / g inside a group
    // [a, a + g) of c conversions:  size (g C_a + (k - a) c) >= conversions g k.
    let (num, den) = (i128::from(conversions), i128::from(size));
    let mut best = 0usize;
    let mut before = 0i128; // conversions above the group
    for (g, (rows, c)) in ranking.group_counts(labels).into_iter().enumerate() {
        let a = ranking.group(g).start as i128;
        let (rows, c) = (rows as i128, c as i128);
        let holds = |k: i128| den * (rows * before + (k - a) * c) >= num * rows * k;
        let end = a + rows;
        if holds(end) {
            best = end as usize;
        } else {
            // The condition is linear in k: it holds on a prefix of the group's positions when
            // the group converts below the rate. Largest k in (a, end) that holds, if any.
            let slope = den * c - num * rows;
            if slope < 0 {
                let intercept = den * rows * before - den * c * a;
                // holds(k) <=> intercept + slope k >= 0 <=> k <= intercept / -slope
                let k = intercept.div_euclid(-slope);
                if k > a && k < end && holds(k) {
                    best = best.max(k as usize);
                }
            }
        }
        before += c;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// A ranking of distinct scores in row order (row 0 best).
    fn in_row_order(n: usize) -> Ranking {
        let scores: Vec<f64> = (0..n).map(|i| 1.0 - i as f64 / n as f64).collect();
        Ranking::new(&scores, &vec![0; n])
    }

    #[test]
    fn auc_by_hand() {
        // Pairs (pos, neg): (0.9,0.1) win, (0.9,0.4) win, (0.4,0.1) win, (0.4,0.4) tie:
        // (3 + 0.5) / 4 = 0.875.
        let scores = [0.9, 0.4, 0.1, 0.4];
        let labels = [1, 1, 0, 0];
        assert!(close(auc(&scores, &labels).unwrap(), 0.875));
        assert_eq!(auc(&[0.3, 0.2], &[1, 1]), None);
        // Perfectly wrong ranking.
        assert!(close(auc(&[0.1, 0.9], &[1, 0]).unwrap(), 0.0));
    }

    #[test]
    fn leading_counts_the_prefix_that_satisfies() {
        let mut stream = bootstrap::Stream::new(31, 0);
        for _ in 0..2000 {
            let mut xs: Vec<i64> = (0..stream.below(70))
                .map(|_| stream.below(12) as i64)
                .collect();
            xs.sort_unstable();
            let t = stream.below(14) as i64;
            assert_eq!(leading(&xs, |x| x < t), xs.partition_point(|&x| x < t));
            assert_eq!(leading(&xs, |x| x <= t), xs.partition_point(|&x| x <= t));
        }
        assert_eq!(leading(&[], |_| true), 0);
        assert_eq!(leading(&[1, 2, 3], |_| true), 3);
    }

    #[test]
    fn auc_is_the_exact_pair_count_whatever_the_ties() {
        // Scores from a few values (heavy ties, -0 beside +0, infinities, NaN), counted against
        // every pair by hand; the buffers are reused from one set to the next.
        let pool = [
            -0.0,
            0.0,
            1.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
            -1e-300,
            7.0,
        ];
        let mut stream = bootstrap::Stream::new(29, 0);
        let mut buffers = AucBuffers::default();
        for n in [1usize, 2, 3, 10, 100, 1000] {
            for _ in 0..20 {
                let (mut scores, mut labels) = (Vec::new(), Vec::new());
                for _ in 0..n {
                    scores.push(pool[stream.below(pool.len())]);
                    labels.push(u8::from(stream.below(4) == 0));
                }
                let (mut twice, mut pairs) = (0u64, 0u64);
                for (i, &y) in labels.iter().enumerate() {
                    for (j, &z) in labels.iter().enumerate() {
                        if y == 1 && z == 0 {
                            let (a, b) = (scores[i], scores[j]);
                            pairs += 1;
                            // NaN ranks below every number and ties with NaN.
                            twice += match (a.is_nan(), b.is_nan()) {
                                (true, true) => 1,
                                (true, false) => 0,
                                (false, true) => 2,
                                _ if a > b => 2,
                                _ if a == b => 1,
                                _ => 0,
                            };
                        }
                    }
                }
                let ours = buffers.auc(&scores, &labels);
                let fresh = auc(&scores, &labels);
                assert_eq!(ours.map(f64::to_bits), fresh.map(f64::to_bits));
                // Cut into parts (more than rows, too), the count is the same.
                for parts in [2, 3, 7, n + 1] {
                    let cut = buffers.auc_in_parts(&scores, &labels, parts);
                    assert_eq!(
                        cut.map(f64::to_bits),
                        ours.map(f64::to_bits),
                        "{parts} parts"
                    );
                }
                if pairs == 0 {
                    assert_eq!(ours, None);
                    continue;
                }
                let p = labels.iter().filter(|&&y| y == 1).count() as f64;
                let expected = (twice as f64 / 2.0) / (p * (n as f64 - p));
                assert_eq!(
                    ours.unwrap().to_bits(),
                    expected.to_bits(),
                    "{scores:?} {labels:?}"
                );
                // The AUC shown beside DeLong's interval is this one, to the last bit.
                let (with_ci, _) = auc_with_ci(&scores, &labels).unwrap();
                assert_eq!(with_ci.to_bits(), expected.to_bits());
            }
        }
    }

    #[test]
    fn delong_interval_by_hand() {
        // Positives 0.9, 0.8, 0.3; negatives 0.7, 0.2.
        // V10 = [1, 1, 0.5]; V01 = [(2 above 0.7)/3, 3/3] = [2/3, 1].
        // AUC = 2.5/3. var = s²(V10)/3 + s²(V01)/2 = (1/12)/3 + (1/18)/2 = 1/36 + 1/36 = 1/18.
        let scores = [0.9, 0.8, 0.3, 0.7, 0.2];
        let labels = [1, 1, 1, 0, 0];
        let (a, ci) = auc_with_ci(&scores, &labels).unwrap();
        assert!(close(a, 2.5 / 3.0));
        let half = Z_95 * (1.0f64 / 18.0).sqrt();
        let (lo, hi) = ci.unwrap();
        assert!(close(lo, a - half));
        assert!(close(hi, 1.0), "clipped to 1");
    }

    #[test]
    fn log_loss_by_hand() {
        let v = log_loss(&[0.8, 0.4], &[1, 0]).unwrap();
        assert!(close(v, -(0.8f64.ln() + 0.6f64.ln()) / 2.0));
        assert!(log_loss(&[1.0], &[0]).unwrap().is_finite());
    }

    #[test]
    fn bins_match_numpy_linspace() {
        // np.linspace(1, 11, 12, False, dtype=int) = [1,1,2,3,4,5,6,6,7,8,9,10]
        let bins: Vec<usize> = (0..12).map(|p| bin_of_position(p, 12, 10)).collect();
        assert_eq!(bins, [1, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn precision_lift_and_reach() {
        let labels = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        let ranking = in_row_order(10);
        assert_eq!(precision_at(&ranking, &labels, 2), Some(0.5));
        assert!(close(lift_at(&ranking, &labels, 2).unwrap(), 2.5));
        assert_eq!(precision_at(&ranking, &labels, 0), None);
        assert_eq!(reach_at_rate(&ranking, &labels, 1, 2), 4);
        assert_eq!(reach_at_rate(&ranking, &labels, 1, 5), 10);
        assert_eq!(reach_at_rate(&ranking, &labels, 1, 1), 1);
    }

    #[test]
    fn precision_and_reach_are_pro_rata_among_equal_scores() {
        // Scores: 0.9 (row 0, converts), then a group of four at 0.5 holding 2 conversions,
        // then 0.1 (row 5).
        let scores = [0.9, 0.5, 0.5, 0.5, 0.5, 0.1];
        let labels = [1, 1, 0, 1, 0, 0];
        let ranking = Ranking::new(&scores, &[9, 8, 7, 6, 5, 4]);
        // Top 2: row 0 and a quarter of the group: 1 + 2/4.
        assert!(close(conversions_at(&ranking, &labels, 2), 1.5));
        assert!(close(conversions_at(&ranking, &labels, 3), 2.0));
        assert!(close(conversions_at(&ranking, &labels, 5), 3.0));
        // Reach at rate 2/3: C(k) = 1 + (k - 1)/2 inside the group, >= 2k/3 up to k = 3.
        assert_eq!(reach_at_rate(&ranking, &labels, 2, 3), 3);
        // At rate 0.6 (3/5): 1 + (k-1)/2 >= 0.6 k <=> k <= 5: the whole group.
        assert_eq!(reach_at_rate(&ranking, &labels, 3, 5), 5);
        // At rate 1: only the first row.
        assert_eq!(reach_at_rate(&ranking, &labels, 1, 1), 1);
        // The reach agrees with a direct scan of the expected precision at every k.
        for (c, s) in [(1u64, 2u64), (2, 3), (3, 5), (1, 3), (1, 6), (5, 6)] {
            let direct = (1..=6)
                .filter(|&k| {
                    conversions_at(&ranking, &labels, k) * s as f64 >= c as f64 * k as f64 - 1e-9
                })
                .max()
                .unwrap_or(0);
            assert_eq!(reach_at_rate(&ranking, &labels, c, s), direct, "{c}/{s}");
        }
    }

    fn compare_one(rows: &[usize], ranking: &Ranking, labels: &[u8]) -> RuleComparison {
        let floor = RuleFloor {
            min_audience: 1,
            min_conversions: 0.0,
        };
        compare_rules(&[rows.to_vec()], ranking, labels, 500, 1, &floor).remove(0)
    }

    #[test]
    fn rule_comparison_by_hand() {
        // 10 rows; labels: rows 0,1,2 convert. Model order = 0..10.
        // Rule selects rows 2,5,6,7 (n = 4): rule conversions 1; model top 4 = 0,1,2,3: 3.
        let labels = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let c = compare_one(&[2, 5, 6, 7], &in_row_order(10), &labels);
        assert_eq!(c.size, 4);
        assert_eq!(c.rule_conversions, 1);
        assert_eq!(c.model_conversions, 3.0);
        assert_eq!(c.extra_conversions, 2.0);
        assert_eq!(c.rule_rate, Some(0.25));
        assert_eq!(c.model_rate, Some(0.75));
        assert!(close(c.rule_lift.unwrap(), 0.25 / 0.3));
        assert_eq!(c.overlap.both, 1.0);
        assert_eq!(c.overlap.rule_only, 3.0);
        assert_eq!(c.overlap.model_only, 3.0);
        assert_eq!(c.overlap.both_rate, Some(1.0));
        assert_eq!(c.overlap.rule_only_rate, Some(0.0));
        assert_eq!(c.overlap.model_only_rate, Some(2.0 / 3.0));
        assert_eq!(c.tied_at_cut, 0);
        // TPR = 1/3, FPR = 3/7.
        assert!(close(
            c.rule_auc.unwrap(),
            (1.0 + 1.0 / 3.0 - 3.0 / 7.0) / 2.0
        ));
        assert_eq!(c.rate_diff, Some(0.5));
        // Model precision@k >= 0.25 up to k = 10 (3/10 = 0.3).
        assert_eq!(c.model_reach_at_rule_rate, Some(10));
        let (lo, hi) = c.rate_diff_ci.unwrap();
        assert!(lo <= 0.5 && 0.5 <= hi);
    }

    #[test]
    fn a_cut_inside_equal_scores_counts_the_group_pro_rata() {
        // Two distinct scores on 100 rows sorted by outcome: rows 0-29 convert. The model scores
        // rows 0-9 high and every other row the same: its top 40 is rows 0-9 plus 30 of the 90
        // tied rows, which hold 20 conversions. Whatever order the tied rows came in, the model's
        // expected conversions are 10 + 30 * 20/90.
        let labels: Vec<u8> = (0..100).map(|i| u8::from(i < 30)).collect();
        let scores: Vec<f64> = (0..100).map(|i| if i < 10 { 0.8 } else { 0.3 }).collect();
        let rule: Vec<usize> = (50..90).collect();
        for keys in [
            (0..100).collect::<Vec<u64>>(),
            (0..100).rev().collect(),
            (0..100).map(|i| (i * 37) % 101).collect(),
        ] {
            let ranking = Ranking::new(&scores, &keys);
            let c = compare_one(&rule, &ranking, &labels);
            assert!(close(c.model_conversions, 10.0 + 30.0 * 20.0 / 90.0));
            assert_eq!(c.tied_at_cut, 90);
            // Rows 50-89 are all in the tied group: each is in M with weight 30/90.
            assert!(close(c.overlap.both, 40.0 / 3.0));
            assert!(close(c.overlap.both_rate.unwrap(), 0.0));
            assert!(
                c.notes
                    .iter()
                    .any(|n| n.contains("90 people share the score"))
            );
            let deciles = decile_table(&ranking, &labels);
            // Decile 1 is rows 0-9 exactly; decile 2 is ten tied rows: 10 * 20/90 conversions.
            assert!(close(deciles[0].cnt_resp, 10.0));
            assert_eq!(deciles[0].tied_across_boundary, 0);
            assert!(close(deciles[1].cnt_resp, 100.0 / 45.0));
            assert_eq!(deciles[1].tied_across_boundary, 10);
            assert!(close(deciles[9].cum_resp, 30.0));
        }
    }

    #[test]
    fn small_and_degenerate_rules_get_no_verdict() {
        // The model's best 50 all convert, then one in ten.
        let labels: Vec<u8> = (0..200).map(|i| u8::from(i < 50 || i % 10 == 0)).collect();
        let ranking = in_row_order(200);
        let floor = RuleFloor::default();
        let run =
            |rows: Vec<usize>| compare_rules(&[rows], &ranking, &labels, 200, 1, &floor).remove(0);
        // One person who converted: the old interval was [1, 1] and "model better".
        let one = run(vec![0]);
        assert_eq!(one.verdict, Verdict::TooSmall);
        assert_eq!(one.rate_diff_ci, None);
        assert!(
            one.notes[0].contains("too small to judge"),
            "{:?}",
            one.notes
        );
        // Three people, 3/3 against the model's 3 best, 3/3.
        assert_eq!(run(vec![1, 2, 3]).verdict, Verdict::TooSmall);
        // 40 people and fewer than 5 conversions on both sides: too small. Rows 100-105 are the
        // only conversions of another table; the rule takes 40 low-ranked rows, the model's top 40
        // (rows 0-39) holds none.
        let rare: Vec<u8> = (0..200)
            .map(|i| u8::from((100..106).contains(&i)))
            .collect();
        let c = compare_rules(&[(150..190).collect()], &ranking, &rare, 200, 1, &floor).remove(0);
        assert_eq!(c.verdict, Verdict::TooSmall);
        // With one side at 5 conversions or more, it is judged.
        let c = compare_rules(&[(95..135).collect()], &ranking, &rare, 200, 1, &floor).remove(0);
        assert_eq!(c.verdict, Verdict::RuleBetter);
        let nobody = run(vec![]);
        assert_eq!(nobody.verdict, Verdict::NotComparable);
        assert_eq!(nobody.rule_rate, None);
        let everybody = run((0..200).collect());
        assert_eq!(everybody.verdict, Verdict::Identical);
        let no_positives =
            compare_rules(&[vec![0, 1]], &ranking, &[0; 200], 100, 1, &floor).remove(0);
        assert_eq!(no_positives.verdict, Verdict::NotComparable);
        assert_eq!(no_positives.rule_auc, None);
        // Big enough: judged.
        let judged = run((100..160).collect());
        assert_eq!(judged.verdict, Verdict::ModelBetter);
    }

    #[test]
    fn verdict_codes_are_the_json_values() {
        for v in [
            Verdict::ModelBetter,
            Verdict::RuleBetter,
            Verdict::NoSignificantDifference,
            Verdict::TooSmall,
            Verdict::Identical,
            Verdict::NotComparable,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.code());
        }
    }

    #[test]
    fn calibration_by_hand() {
        // Ten rows in two tied groups of five (deciles of one row each): scores 0.8 and 0.2;
        // the first group converts 4 of 5, the second 1 of 5: perfectly calibrated.
        let scores = [0.8, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.2, 0.2];
        let labels = [1, 1, 0, 1, 1, 0, 0, 1, 0, 0];
        let ranking = Ranking::new(&scores, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let c = Calibration::of_deciles(&decile_table(&ranking, &labels)).unwrap();
        assert_eq!(c.rows, 10);
        assert!((c.base_rate - 0.5).abs() < 1e-12);
        assert!(c.error < 1e-12, "{}", c.error);
        assert!((c.tolerance() - 0.125).abs() < 1e-15);
        // Distinct scores, the outcome the reverse of them: badly calibrated.
        let scores: Vec<f64> = (0..10).map(|i| 0.9 - 0.05 * i as f64).collect();
        let labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        let ranking = Ranking::new(&scores, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let c = Calibration::of_deciles(&decile_table(&ranking, &labels)).unwrap();
        // One row per decile: the error is the mean of |score - outcome|.
        let by_hand: f64 = scores
            .iter()
            .zip(labels)
            .map(|(s, y)| (s - f64::from(y)).abs())
            .sum::<f64>()
            / 10.0;
        assert!((c.error - by_hand).abs() < 1e-12);
        assert!(!c.within_tolerance());
    }

    #[test]
    fn curves_by_hand() {
        // Rows in order; rows 0 and 2 of 4 convert.
        let labels = [1, 0, 1, 0];
        let (gains, roc) = curves(&in_row_order(4), &labels, 4);
        assert_eq!(
            gains,
            [(0.0, 0.0), (0.25, 0.5), (0.5, 0.5), (0.75, 1.0), (1.0, 1.0)]
        );
        assert_eq!(
            roc,
            [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        // One tied group of four: the curves are the diagonal, pro rata.
        let tied = Ranking::new(&[0.5; 4], &[0, 1, 2, 3]);
        let (gains, _) = curves(&tied, &labels, 2);
        assert_eq!(gains, [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)]);
    }

    #[test]
    fn decile_table_counts() {
        let n = 100;
        let labels: Vec<u8> = (0..n).map(|i| u8::from(i % 4 == 0)).collect();
        let table = decile_table(&in_row_order(n), &labels);
        assert_eq!(table.len(), 10);
        assert_eq!(table.iter().map(|r| r.cnt_cust).sum::<usize>(), 100);
        assert!(close(table.iter().map(|r| r.cnt_resp).sum::<f64>(), 25.0));
        let last = table.last().unwrap();
        assert!(close(last.cum_resp_pct.unwrap(), 100.0));
        assert!(close(last.lift.unwrap(), 1.0));
        // Wizard: all 25 positives in the first 3 deciles (10 + 10 + 5).
        assert_eq!(table[0].cnt_resp_wiz, 10);
        assert_eq!(table[2].cnt_resp_wiz, 5);
        assert!(table.iter().all(|r| r.tied_across_boundary == 0));
    }
}
