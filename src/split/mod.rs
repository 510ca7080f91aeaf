//! Dividing a history into rows the model learns from and rows it is judged on.
//!
//! The random split is stratified: each class is shuffled with a seeded ChaCha8 generator (whose
//! stream is fixed by its specification, so a seed means the same split on every machine and
//! version) and the first `round(fraction * class size)` rows of each class are held out.

pub mod time;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use time::{TimeColumn, TimePoint, TimeRange};

/// Row indexes (into the loaded table, ascending) of each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Rows the trees are grown on.
    pub fit: Vec<usize>,
    /// Training rows used only to decide when to stop adding trees (may be empty).
    pub early_stopping: Vec<usize>,
    /// Held-out rows: the evaluation set E of `compare` and the holdout metrics of `train`.
    pub holdout: Vec<usize>,
    /// For a time split: the span of each part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ranges: Option<PartRanges>,
}

/// The time span of each part of a time split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRanges {
    pub fit: Option<TimeRange>,
    pub early_stopping: Option<TimeRange>,
    pub holdout: Option<TimeRange>,
}

/// "fit 2023-01-01 to 2023-08-20; early stopping ...; held out ...", parts without rows left out.
impl std::fmt::Display for PartRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("fit", &self.fit),
            ("early stopping", &self.early_stopping),
            ("held out", &self.holdout),
        ]
        .into_iter()
        .filter_map(|(name, range)| range.as_ref().map(|r| format!("{name} {r}")))
        .collect();
        write!(f, "{}", parts.join("; "))
    }
}

impl Split {
    /// All training rows (fit and early stopping), ascending.
    pub fn training(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self
            .fit
            .iter()
            .chain(&self.early_stopping)
            .copied()
            .collect();
        rows.sort_unstable();
        rows
    }
}

/// Stratified random selection of `fraction` of `rows` (by their labels), returned as
/// (kept, selected), both ascending.
pub fn stratified(
    rows: &[usize],
    labels: &[u8],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kept = Vec::new();
    let mut selected = Vec::new();
    for class in [0u8, 1u8] {
        let mut members: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&r| labels[r] == class)
            .collect();
        members.shuffle(&mut rng);
        let take = (fraction * members.len() as f64).round() as usize;
        selected.extend_from_slice(&members[..take]);
        kept.extend_from_slice(&members[take..]);
    }
    kept.sort_unstable();
    selected.sort_unstable();
    (kept, selected)
}

/// The random split: a stratified holdout, then a stratified early-stopping part of what remains.
pub fn random_split(
    labels: &[u8],
    test_fraction: f64,
    early_stopping_fraction: f64,
    seed: u64,
) -> Split {
    let all: Vec<usize> = (0..labels.len()).collect();
    let (training, holdout) = stratified(&all, labels, test_fraction, seed);
    let (fit, early_stopping) = stratified(
        &training,
        labels,
        early_stopping_fraction,
        seed.wrapping_add(1),
    );
    Split {
        fit,
        early_stopping,
        holdout,
        time_ranges: None,
    }
}

/// The time split: rows before `cutoff` train, the rest are held out; the early-stopping part is
/// the latest `early_stopping_fraction` of the training rows in time order (rows at the same time
/// by row), so that it too lies in the future of what the trees see. The caller refuses rows
/// with no time value.
pub fn time_split(times: &TimeColumn, cutoff: TimePoint, early_stopping_fraction: f64) -> Split {
    let (mut training, holdout): (Vec<usize>, Vec<usize>) =
        (0..times.len()).partition(|&row| times.before(row, cutoff));
    training.sort_by(|&a, &b| times.cmp_rows(a, b).then(a.cmp(&b)));
    let take = (early_stopping_fraction * training.len() as f64).round() as usize;
    let mut early_stopping = training.split_off(training.len() - take);
    let mut fit = training;
    fit.sort_unstable();
    early_stopping.sort_unstable();
    let time_ranges = Some(PartRanges {
        fit: times.range(&fit),
        early_stopping: times.range(&early_stopping),
        holdout: times.range(&holdout),
    });
    Split {
        fit,
        early_stopping,
        holdout,
        time_ranges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_keeps_class_shares_and_is_deterministic() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 10 == 0)).collect();
        let a = random_split(&labels, 0.3, 0.2, 42);
        let b = random_split(&labels, 0.3, 0.2, 42);
        assert_eq!(a, b);
        assert_eq!(a.holdout.len(), 300);
        assert_eq!(a.holdout.iter().filter(|&&r| labels[r] == 1).count(), 30);
        assert_eq!(a.early_stopping.len(), 140);
        assert_eq!(a.fit.len() + a.early_stopping.len() + a.holdout.len(), 1000);
        let c = random_split(&labels, 0.3, 0.2, 43);
        assert_ne!(a.holdout, c.holdout);
        let mut all: Vec<usize> = a.training().into_iter().chain(a.holdout.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    fn times(values: &[&str], format: Option<&str>) -> TimeColumn {
        let column: arrow::array::ArrayRef =
            std::sync::Arc::new(arrow::array::StringArray::from(values.to_vec()));
        TimeColumn::read(&column, format).unwrap()
    }

    #[test]
    fn time_split_by_cutoff() {
        let t = times(
            &["2024-01-05", "2024-03-01", "2023-12-31", "2024-02-01"],
            None,
        );
        let s = time_split(&t, t.cutoff("2024-02-01", None).unwrap(), 0.5);
        assert_eq!(s.holdout, [1, 3]);
        assert_eq!(s.fit, [2]);
        assert_eq!(s.early_stopping, [0]);
        let ranges = s.time_ranges.unwrap();
        assert_eq!(
            ranges.holdout.unwrap().to_string(),
            "2024-02-01 to 2024-03-01"
        );
        assert_eq!(ranges.fit.unwrap().to_string(), "2023-12-31");
    }

    #[test]
    fn unpadded_and_us_dates_split_in_true_time_order() {
        // As text, "2024-1-15" > "2024-10-01" and "9/1/2024" > "10/2/2024": both wrong.
        let t = times(&["2024-1-15", "2024-10-01", "2024-9-30", "2024-2-1"], None);
        let s = time_split(&t, t.cutoff("2024-9-1", None).unwrap(), 0.5);
        assert_eq!(s.holdout, [1, 2]);
        // Early stopping: the latest training row in time (row 3, February), not in text order.
        assert_eq!(s.early_stopping, [3]);
        assert_eq!(s.fit, [0]);
        let t = times(
            &["9/1/2024", "10/2/2024", "1/5/2025", "12/31/2023"],
            Some("%m/%d/%Y"),
        );
        let s = time_split(&t, t.cutoff("10/1/2024", Some("%m/%d/%Y")).unwrap(), 0.0);
        assert_eq!(s.fit, [0, 3]);
        assert_eq!(s.holdout, [1, 2]);
    }

    #[test]
    fn numeric_times_compare_as_numbers() {
        let column: arrow::array::ArrayRef =
            std::sync::Arc::new(arrow::array::Float64Array::from(vec![9.0, 10.0, 100.0]));
        let t = TimeColumn::read(&column, None).unwrap();
        let s = time_split(&t, t.cutoff("10", None).unwrap(), 0.0);
        assert_eq!(s.fit, [0]);
        assert_eq!(s.holdout, [1, 2]);
    }
}
