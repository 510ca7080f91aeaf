//! The numbers `compare` reports, with the definitions of reference/metrics.md.
//!
//! Conventions: `labels` are 0/1; an *ordering* is a permutation of row indexes, best first, with
//! ties in score broken by id so that the same inputs always give the same audience. A value that
//! is undefined (a rate over nobody, an AUC with one class) is `None`, never NaN.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};
use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Resamples in the paired bootstrap of a rate difference.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// ROC AUC = P(score of a positive > score of a negative) + P(tie)/2 (Mann–Whitney U / (P·N)).
/// None when either class is absent.
pub fn auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let (positives, negatives) = split_by_class(scores, labels);
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    // For each positive: negatives strictly below plus half of those tied.
    let total: f64 = positives
        .iter()
        .map(|&s| placement(&negatives, s, false))
        .sum();
    Some(total / (positives.len() as f64 * negatives.len() as f64))
}

/// AUC with DeLong's 95% interval (clipped to [0, 1]). The interval is None when a class has a
/// single member, since the variance then cannot be estimated.
pub fn auc_with_ci(scores: &[f64], labels: &[u8]) -> Option<(f64, Option<(f64, f64)>)> {
    let (positives, negatives) = split_by_class(scores, labels);
    let (m, n) = (positives.len(), negatives.len());
    if m == 0 || n == 0 {
        return None;
    }
    // DeLong, DeLong & Clarke-Pearson (1988): structural components of each observation.
    let v10: Vec<f64> = positives
        .iter()
        .map(|&s| placement(&negatives, s, false) / n as f64)
        .collect();
    let v01: Vec<f64> = negatives
        .iter()
        .map(|&s| placement(&positives, s, true) / m as f64)
        .collect();
    let auc = v10.iter().sum::<f64>() / m as f64;
    if m < 2 || n < 2 {
        return Some((auc, None));
    }
    let variance = sample_variance(&v10) / m as f64 + sample_variance(&v01) / n as f64;
    let half = Z_95 * variance.max(0.0).sqrt();
    Some((auc, Some(((auc - half).max(0.0), (auc + half).min(1.0)))))
}

fn split_by_class(scores: &[f64], labels: &[u8]) -> (Vec<f64>, Vec<f64>) {
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for (&s, &y) in scores.iter().zip(labels) {
        if y == 1 {
            positives.push(s);
        } else {
            negatives.push(s);
        }
    }
    positives.sort_by(f64::total_cmp);
    negatives.sort_by(f64::total_cmp);
    (positives, negatives)
}

/// In sorted `others`: how many lie below `s` (above it when `above`), ties counting one half.
fn placement(others: &[f64], s: f64, above: bool) -> f64 {
    let below = others.partition_point(|&x| x < s);
    let not_above = others.partition_point(|&x| x <= s);
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

/// A key that orders ids: numerically when every id is an integer, otherwise as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdKey {
    Number(i128),
    Text(String),
}

/// Sort keys for ids (all numeric or all text, so they compare consistently).
pub fn id_keys<'a, I>(ids: I) -> Vec<IdKey>
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: Clone,
{
    let ids = ids.into_iter();
    let numbers: Option<Vec<i128>> = ids.clone().map(|s| s.trim().parse::<i128>().ok()).collect();
    match numbers {
        Some(n) => n.into_iter().map(IdKey::Number).collect(),
        None => ids.map(|s| IdKey::Text(s.to_string())).collect(),
    }
}

/// Rows by descending score, ties by ascending id: the model's ranking.
pub fn ranking(scores: &[f64], ids: &[IdKey]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then_with(|| ids[a].cmp(&ids[b]))
    });
    order
}

/// The bin (1-based, 1 = best) of the row at 0-based position `position` of `n` when cut into
/// `bins` near-equal groups, computed as kds does with `np.linspace(1, bins+1, n, False, dtype=int)`.
pub fn bin_of_position(position: usize, n: usize, bins: usize) -> usize {
    let step = bins as f64 / n as f64;
    (position as f64 * step + 1.0) as usize
}

/// Conversions among the first k rows of an ordering.
pub fn conversions_at(order: &[usize], labels: &[u8], k: usize) -> usize {
    order[..k.min(order.len())]
        .iter()
        .filter(|&&r| labels[r] == 1)
        .count()
}

/// Precision@k: the conversion rate of the first k rows. None for k = 0.
pub fn precision_at(order: &[usize], labels: &[u8], k: usize) -> Option<f64> {
    ratio(conversions_at(order, labels, k) as f64, k as f64)
}

/// Lift@k: precision@k over the base rate. None when either is undefined or the base rate is 0.
pub fn lift_at(order: &[usize], labels: &[u8], k: usize) -> Option<f64> {
    let base = base_rate(labels)?;
    precision_at(order, labels, k).and_then(|p| ratio(p, base))
}

/// The share of positives. None for no rows.
pub fn base_rate(labels: &[u8]) -> Option<f64> {
    ratio(
        labels.iter().filter(|&&y| y == 1).count() as f64,
        labels.len() as f64,
    )
}

/// One row of the kds-style decile table. Percentages are in percent, as kds prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecileRow {
    pub decile: usize,
    pub prob_min: f64,
    pub prob_max: f64,
    pub prob_avg: f64,
    pub cnt_cust: usize,
    pub cnt_resp: usize,
    pub cnt_non_resp: usize,
    pub cnt_resp_rndm: f64,
    pub cnt_resp_wiz: usize,
    pub resp_rate: f64,
    pub cum_cust: usize,
    pub cum_resp: usize,
    pub cum_resp_wiz: usize,
    pub cum_non_resp: usize,
    pub cum_cust_pct: f64,
    pub cum_resp_pct: Option<f64>,
    pub cum_resp_pct_wiz: Option<f64>,
    pub cum_non_resp_pct: Option<f64>,
    #[serde(rename = "KS")]
    pub ks: Option<f64>,
    pub lift: Option<f64>,
}

/// The decile table of kds' `decile_table` (unrounded), for rows in `order` (best first).
/// Deciles with no rows (fewer than 10 rows in all) are left out.
pub fn decile_table(order: &[usize], scores: &[f64], labels: &[u8]) -> Vec<DecileRow> {
    let n = order.len();
    let total_resp = labels.iter().filter(|&&y| y == 1).count();
    let total_non = n - total_resp;
    // kds's "wizard": the same bins over rows sorted by the label itself.
    let mut wizard = [0usize; 11];
    for position in 0..total_resp {
        wizard[bin_of_position(position, n, 10)] += 1;
    }
    let mut rows: Vec<DecileRow> = Vec::new();
    let (mut cum_cust, mut cum_resp, mut cum_wiz, mut cum_non) = (0, 0, 0, 0);
    let mut position = 0;
    for (decile, &wizard_count) in wizard.iter().enumerate().skip(1) {
        let start = position;
        while position < n && bin_of_position(position, n, 10) == decile {
            position += 1;
        }
        let members = &order[start..position];
        if members.is_empty() {
            continue;
        }
        let probs: Vec<f64> = members.iter().map(|&r| scores[r]).collect();
        let cnt_resp = members.iter().filter(|&&r| labels[r] == 1).count();
        let cnt_cust = members.len();
        cum_cust += cnt_cust;
        cum_resp += cnt_resp;
        cum_wiz += wizard_count;
        cum_non += cnt_cust - cnt_resp;
        let cum_cust_pct = cum_cust as f64 * 100.0 / n as f64;
        let cum_resp_pct = ratio(cum_resp as f64 * 100.0, total_resp as f64);
        let cum_non_resp_pct = ratio(cum_non as f64 * 100.0, total_non as f64);
        rows.push(DecileRow {
            decile,
            prob_min: probs.iter().copied().fold(f64::INFINITY, f64::min),
            prob_max: probs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            prob_avg: probs.iter().sum::<f64>() / cnt_cust as f64,
            cnt_cust,
            cnt_resp,
            cnt_non_resp: cnt_cust - cnt_resp,
            cnt_resp_rndm: total_resp as f64 / 10.0,
            cnt_resp_wiz: wizard_count,
            resp_rate: cnt_resp as f64 * 100.0 / cnt_cust as f64,
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
    /// The rule selects everybody: the model's audience is the same people.
    Identical,
    /// The rule selects nobody, or there are no positives: nothing to compare.
    NotComparable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::ModelBetter => "model better",
            Verdict::RuleBetter => "rule better",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::Identical => "identical audiences",
            Verdict::NotComparable => "not comparable",
        }
    }
}

/// A rule's audience against the model's audience of the same size, on the evaluation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleComparison {
    /// n = |R|.
    pub size: usize,
    /// n / |E|.
    pub share: f64,
    pub rule_conversions: usize,
    pub rule_rate: Option<f64>,
    pub rule_lift: Option<f64>,
    pub model_conversions: usize,
    pub model_rate: Option<f64>,
    pub model_lift: Option<f64>,
    /// Model conversions minus rule conversions.
    pub extra_conversions: i64,
    pub overlap: Overlap,
    /// The rule as one point on the ROC plane, and its AUC (1 + TPR − FPR) / 2.
    pub rule_tpr: Option<f64>,
    pub rule_fpr: Option<f64>,
    pub rule_auc: Option<f64>,
    /// 95% paired-bootstrap interval of (model rate − rule rate).
    pub rate_diff: Option<f64>,
    pub rate_diff_ci: Option<(f64, f64)>,
    pub verdict: Verdict,
    /// The largest audience the model can pick whose conversion rate is at least the rule's.
    pub model_reach_at_rule_rate: Option<usize>,
    /// A plain sentence when something makes the numbers degenerate.
    pub note: Option<String>,
}

/// How the two audiences intersect, with each part's conversion rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// |R ∩ M|
    pub both: usize,
    /// |R \ M|
    pub rule_only: usize,
    /// |M \ R|
    pub model_only: usize,
    pub both_rate: Option<f64>,
    pub rule_only_rate: Option<f64>,
    pub model_only_rate: Option<f64>,
}

/// Compares the rule audience (`in_rule[r]` for each evaluation row) with the first |R| rows of
/// the model's `order`. `seed` fixes the bootstrap.
pub fn compare_rule(in_rule: &[bool], order: &[usize], labels: &[u8], seed: u64) -> RuleComparison {
    let total = labels.len();
    let positives = labels.iter().filter(|&&y| y == 1).count();
    let base = base_rate(labels);
    let n = in_rule.iter().filter(|&&b| b).count();
    let mut in_model = vec![false; total];
    for &r in &order[..n] {
        in_model[r] = true;
    }
    // Counts by (in rule, in model, label): index = rule*4 + model*2 + y.
    let mut cells = [0u64; 8];
    for r in 0..total {
        cells[usize::from(in_rule[r]) * 4
            + usize::from(in_model[r]) * 2
            + usize::from(labels[r])] += 1;
    }
    let c = |rule: usize, model: usize, y: usize| cells[rule * 4 + model * 2 + y] as usize;
    let rule_conversions = c(1, 0, 1) + c(1, 1, 1);
    let model_conversions = c(0, 1, 1) + c(1, 1, 1);
    let both = c(1, 1, 0) + c(1, 1, 1);
    let rule_only = c(1, 0, 0) + c(1, 0, 1);
    let model_only = c(0, 1, 0) + c(0, 1, 1);
    let rule_rate = ratio(rule_conversions as f64, n as f64);
    let model_rate = ratio(model_conversions as f64, n as f64);
    let lift = |rate: Option<f64>| rate.zip(base).and_then(|(r, b)| ratio(r, b));
    let negatives = total - positives;
    let rule_tpr = ratio(rule_conversions as f64, positives as f64);
    let rule_fpr = ratio((n - rule_conversions) as f64, negatives as f64);
    let rule_auc = rule_tpr.zip(rule_fpr).map(|(t, f)| (1.0 + t - f) / 2.0);

    let mut note = None;
    let (rate_diff, rate_diff_ci, verdict) = if n == 0 {
        note = Some("the rule selects nobody in the evaluation rows".to_string());
        (None, None, Verdict::NotComparable)
    } else if n == total {
        note = Some("the rule selects everybody: the model's audience is the same people".into());
        (Some(0.0), Some((0.0, 0.0)), Verdict::Identical)
    } else if positives == 0 {
        note = Some("the evaluation rows hold no conversions: rates cannot differ".into());
        (Some(0.0), None, Verdict::NotComparable)
    } else {
        let diff = model_rate.unwrap_or(0.0) - rule_rate.unwrap_or(0.0);
        let ci = bootstrap_rate_diff(&cells, BOOTSTRAP_RESAMPLES, seed);
        let verdict = match ci {
            Some((lo, _)) if lo > 0.0 => Verdict::ModelBetter,
            Some((_, hi)) if hi < 0.0 => Verdict::RuleBetter,
            _ => Verdict::NoSignificantDifference,
        };
        (Some(diff), ci, verdict)
    };
    let model_reach_at_rule_rate = rule_rate.map(|rate| reach_at_rate(order, labels, rate));
    RuleComparison {
        size: n,
        share: n as f64 / total.max(1) as f64,
        rule_conversions,
        rule_rate,
        rule_lift: lift(rule_rate),
        model_conversions,
        model_rate,
        model_lift: lift(model_rate),
        extra_conversions: model_conversions as i64 - rule_conversions as i64,
        overlap: Overlap {
            both,
            rule_only,
            model_only,
            both_rate: ratio(c(1, 1, 1) as f64, both as f64),
            rule_only_rate: ratio(c(1, 0, 1) as f64, rule_only as f64),
            model_only_rate: ratio(c(0, 1, 1) as f64, model_only as f64),
        },
        rule_tpr,
        rule_fpr,
        rule_auc,
        rate_diff,
        rate_diff_ci,
        verdict,
        model_reach_at_rule_rate,
        note,
    }
}

/// The largest k whose precision@k in `order` is at least `rate` (0 when none is).
pub fn reach_at_rate(order: &[usize], labels: &[u8], rate: f64) -> usize {
    let mut conversions = 0usize;
    let mut best = 0;
    for (i, &r) in order.iter().enumerate() {
        conversions += usize::from(labels[r]);
        let k = i + 1;
        // Compare conversions/k >= rate without dividing, so equal rates count exactly.
        if conversions as f64 >= rate * k as f64 - 1e-12 * k as f64 {
            best = k;
        }
    }
    best
}

/// Paired bootstrap of (model rate − rule rate) over the evaluation rows.
///
/// Resampling |E| rows with replacement only matters through how many fall in each of the eight
/// (in rule, in model, converted) cells, so each resample draws those counts from the multinomial
/// directly: the same distribution as resampling rows, at a cost independent of |E|. Resamples
/// where either audience is empty are skipped. Returns the 2.5th and 97.5th percentiles (linear
/// interpolation, as numpy's default).
pub fn bootstrap_rate_diff(cells: &[u64; 8], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    let total: u64 = cells.iter().sum();
    if total == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut diffs = Vec::with_capacity(resamples);
    let mut draw = [0u64; 8];
    for _ in 0..resamples {
        let mut remaining = total;
        let mut mass_left = total;
        for k in 0..8 {
            if k == 7 || remaining == 0 {
                draw[k] = remaining;
                remaining = 0;
                continue;
            }
            let p = cells[k] as f64 / mass_left as f64;
            let x = if p <= 0.0 {
                0
            } else if p >= 1.0 {
                remaining
            } else {
                Binomial::new(remaining, p)
                    .map(|b| b.sample(&mut rng))
                    .unwrap_or(0)
            };
            draw[k] = x;
            remaining -= x;
            mass_left -= cells[k];
        }
        let d = |rule: usize, model: usize, y: usize| draw[rule * 4 + model * 2 + y] as f64;
        let rule_n = d(1, 0, 0) + d(1, 0, 1) + d(1, 1, 0) + d(1, 1, 1);
        let model_n = d(0, 1, 0) + d(0, 1, 1) + d(1, 1, 0) + d(1, 1, 1);
        if rule_n == 0.0 || model_n == 0.0 {
            continue;
        }
        let rule_rate = (d(1, 0, 1) + d(1, 1, 1)) / rule_n;
        let model_rate = (d(0, 1, 1) + d(1, 1, 1)) / model_n;
        diffs.push(model_rate - rule_rate);
    }
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    Some((quantile(&diffs, 0.025), quantile(&diffs, 0.975)))
}

/// numpy's default (linear) quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
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
    fn ranking_breaks_ties_by_id() {
        let ids = id_keys(["10", "9", "11"]);
        assert_eq!(ranking(&[0.5, 0.5, 0.7], &ids), [2, 1, 0]);
        let ids = id_keys(["b", "a"]);
        assert_eq!(ranking(&[0.5, 0.5], &ids), [1, 0]);
    }

    #[test]
    fn bins_match_numpy_linspace() {
        // np.linspace(1, 11, 12, False, dtype=int) = [1,1,2,3,4,5,6,6,7,8,9,10]
        let bins: Vec<usize> = (0..12).map(|p| bin_of_position(p, 12, 10)).collect();
        assert_eq!(bins, [1, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn precision_and_lift() {
        let labels = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        let order: Vec<usize> = (0..10).collect();
        assert_eq!(precision_at(&order, &labels, 2), Some(0.5));
        assert!(close(lift_at(&order, &labels, 2).unwrap(), 2.5));
        assert_eq!(precision_at(&order, &labels, 0), None);
        assert_eq!(reach_at_rate(&order, &labels, 0.5), 4);
        assert_eq!(reach_at_rate(&order, &labels, 0.2), 10);
    }

    #[test]
    fn rule_comparison_by_hand() {
        // 10 rows; labels: rows 0,1,2 convert. Model order = 0..10.
        // Rule selects rows 2,5,6,7 (n = 4): rule conversions 1; model top 4 = 0,1,2,3: 3.
        let labels = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let order: Vec<usize> = (0..10).collect();
        let mut in_rule = [false; 10];
        for r in [2, 5, 6, 7] {
            in_rule[r] = true;
        }
        let c = compare_rule(&in_rule, &order, &labels, 1);
        assert_eq!(c.size, 4);
        assert_eq!(c.rule_conversions, 1);
        assert_eq!(c.model_conversions, 3);
        assert_eq!(c.extra_conversions, 2);
        assert_eq!(c.rule_rate, Some(0.25));
        assert_eq!(c.model_rate, Some(0.75));
        assert!(close(c.rule_lift.unwrap(), 0.25 / 0.3));
        assert_eq!(c.overlap.both, 1);
        assert_eq!(c.overlap.rule_only, 3);
        assert_eq!(c.overlap.model_only, 3);
        assert_eq!(c.overlap.both_rate, Some(1.0));
        assert_eq!(c.overlap.rule_only_rate, Some(0.0));
        assert_eq!(c.overlap.model_only_rate, Some(2.0 / 3.0));
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
    fn degenerate_rules_are_explained() {
        let labels = [1, 0, 0];
        let order = [0, 1, 2];
        let nobody = compare_rule(&[false; 3], &order, &labels, 1);
        assert_eq!(nobody.verdict, Verdict::NotComparable);
        assert_eq!(nobody.rule_rate, None);
        assert!(nobody.note.is_some());
        let everybody = compare_rule(&[true; 3], &order, &labels, 1);
        assert_eq!(everybody.verdict, Verdict::Identical);
        let no_positives = compare_rule(&[true, false, false], &order, &[0, 0, 0], 1);
        assert_eq!(no_positives.verdict, Verdict::NotComparable);
        assert_eq!(no_positives.rule_auc, None);
    }

    #[test]
    fn bootstrap_is_deterministic_and_centred() {
        // A strong real difference: model audience 60% vs rule 20%, 500 each of 2000 rows.
        let cells = [900, 100, 150, 100, 300, 50, 50, 350];
        let a = bootstrap_rate_diff(&cells, 2000, 7).unwrap();
        let b = bootstrap_rate_diff(&cells, 2000, 7).unwrap();
        assert_eq!(a, b);
        let rule_rate = (50.0 + 350.0) / (300.0 + 50.0 + 50.0 + 350.0);
        let model_rate = (100.0 + 350.0) / (150.0 + 100.0 + 50.0 + 350.0);
        let diff = model_rate - rule_rate;
        assert!(a.0 < diff && diff < a.1, "{a:?} should contain {diff}");
    }

    #[test]
    fn decile_table_counts() {
        let n = 100;
        let scores: Vec<f64> = (0..n).map(|i| 1.0 - i as f64 / n as f64).collect();
        let labels: Vec<u8> = (0..n).map(|i| u8::from(i % 4 == 0)).collect();
        let order = ranking(
            &scores,
            &id_keys(
                (0..n)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            ),
        );
        let table = decile_table(&order, &scores, &labels);
        assert_eq!(table.len(), 10);
        assert_eq!(table.iter().map(|r| r.cnt_cust).sum::<usize>(), 100);
        assert_eq!(table.iter().map(|r| r.cnt_resp).sum::<usize>(), 25);
        let last = table.last().unwrap();
        assert!(close(last.cum_resp_pct.unwrap(), 100.0));
        assert!(close(last.lift.unwrap(), 1.0));
        // Wizard: all 25 positives in the first 3 deciles (10 + 10 + 5).
        assert_eq!(table[0].cnt_resp_wiz, 10);
        assert_eq!(table[2].cnt_resp_wiz, 5);
    }
}
