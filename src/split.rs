//! Dividing a history into rows the model learns from and rows it is judged on.
//!
//! The random split is stratified: each class is shuffled with a seeded ChaCha8 generator (whose
//! stream is fixed by its specification, so a seed means the same split on every machine and
//! version) and the first `round(fraction * class size)` rows of each class are held out.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Row indexes (into the loaded table, ascending) of each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Rows the trees are grown on.
    pub fit: Vec<usize>,
    /// Training rows used only to decide when to stop adding trees (may be empty).
    pub early_stopping: Vec<usize>,
    /// Held-out rows: the evaluation set E of `compare` and the holdout metrics of `train`.
    pub holdout: Vec<usize>,
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
    }
}

fn before(value: &str, cutoff: &str) -> bool {
    match (value.trim().parse::<f64>(), cutoff.trim().parse::<f64>()) {
        (Ok(v), Ok(c)) => v < c,
        _ => value < cutoff,
    }
}

/// The time split: rows before `cutoff` train, the rest are held out; the early-stopping part is
/// the latest `early_stopping_fraction` of the training rows, so that it too lies in the future of
/// what the trees see. Rows with no time value are an error for the caller to report.
pub fn time_split(
    times: &[Option<String>],
    cutoff: &str,
    early_stopping_fraction: f64,
) -> std::result::Result<Split, usize> {
    let mut training = Vec::new();
    let mut holdout = Vec::new();
    for (row, t) in times.iter().enumerate() {
        let t = t.as_deref().ok_or(row)?;
        if before(t, cutoff) {
            training.push(row);
        } else {
            holdout.push(row);
        }
    }
    // Latest rows of the training period stop the boosting.
    let mut by_time = training.clone();
    by_time.sort_by(|&a, &b| {
        let (ta, tb) = (
            times[a].as_deref().unwrap_or(""),
            times[b].as_deref().unwrap_or(""),
        );
        let order = if before(ta, tb) {
            std::cmp::Ordering::Less
        } else if before(tb, ta) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        };
        order.then(a.cmp(&b))
    });
    let take = (early_stopping_fraction * by_time.len() as f64).round() as usize;
    let mut early_stopping = by_time.split_off(by_time.len() - take);
    let mut fit = by_time;
    fit.sort_unstable();
    early_stopping.sort_unstable();
    Ok(Split {
        fit,
        early_stopping,
        holdout,
    })
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

    #[test]
    fn time_split_by_cutoff() {
        let times: Vec<Option<String>> = ["2024-01-05", "2024-03-01", "2023-12-31", "2024-02-01"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let s = time_split(&times, "2024-02-01", 0.5).unwrap();
        assert_eq!(s.holdout, [1, 3]);
        assert_eq!(s.fit, [2]);
        assert_eq!(s.early_stopping, [0]);
        assert_eq!(time_split(&[None], "1", 0.0), Err(0));
    }

    #[test]
    fn numeric_times_compare_as_numbers() {
        let times: Vec<Option<String>> = ["9", "10", "100"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let s = time_split(&times, "10", 0.0).unwrap();
        assert_eq!(s.fit, [0]);
        assert_eq!(s.holdout, [1, 2]);
    }
}
