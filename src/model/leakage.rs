//! Signs that a feature knows the outcome: a column recorded after the promotion (a call's
//! duration, a redemption date) lets the model "predict" what it was told, and every verdict built
//! on it is wrong. Two signs are checked, each naming the feature: ranking the held-out rows by
//! that feature alone gives an AUC of at least [`LEAK_AUC`], or the feature takes more than
//! [`LEAK_GAIN_SHARE`] of the model's total gain.

use std::collections::HashMap;

use crate::data::encode::{FeatureKind, FeatureSet, Matrix};
use crate::metrics;
use crate::model::bundle::FeatureImportance;

/// A single feature whose AUC alone reaches this gets a "possible leak" note.
pub const LEAK_AUC: f64 = 0.95;
/// A single feature taking more than this share of the total gain gets a "possible leak" note.
pub const LEAK_GAIN_SHARE: f64 = 0.5;

/// Each feature's AUC on its own over `rows` of `matrix`, oriented (max of AUC and 1 − AUC).
/// A numeric feature ranks rows by its value (missing lowest); a categorical one by its
/// category's conversion rate, learnt from `reference` rows when given (the training rows), else
/// out of fold on `matrix` itself (rates from the even rows score the odd ones and the other way
/// round), so a category that identifies people cannot score itself. None when one class is absent.
pub fn single_feature_aucs(
    features: &FeatureSet,
    matrix: &Matrix,
    labels: &[u8],
    reference: Option<(&Matrix, &[u8])>,
) -> Vec<Option<f64>> {
    use rayon::prelude::*;
    // A feature at a time on every core.
    (0..features.features.len())
        .into_par_iter()
        .map(|j| {
            let values: Vec<f64> = match features.features[j].kind {
                FeatureKind::Numeric => (0..matrix.rows)
                    .map(|r| {
                        let v = matrix.row(r)[j];
                        if v.is_nan() { f64::NEG_INFINITY } else { v }
                    })
                    .collect(),
                FeatureKind::Categorical => match reference {
                    Some((m, y)) => {
                        let rates = CategoryRates::learn(m, y, j, |_| true);
                        (0..matrix.rows)
                            .map(|r| rates.rate(matrix.row(r)[j]))
                            .collect()
                    }
                    None => {
                        let even = CategoryRates::learn(matrix, labels, j, |r| r % 2 == 0);
                        let odd = CategoryRates::learn(matrix, labels, j, |r| r % 2 == 1);
                        (0..matrix.rows)
                            .map(|r| {
                                let rates = if r % 2 == 0 { &odd } else { &even };
                                rates.rate(matrix.row(r)[j])
                            })
                            .collect()
                    }
                },
            };
            metrics::auc(&values, labels).map(|a| a.max(1.0 - a))
        })
        .collect()
}

/// Conversion rate per category code (missing and unseen codes: the overall rate).
struct CategoryRates {
    by_code: HashMap<u64, (u64, u64)>,
    overall: f64,
}

impl CategoryRates {
    fn learn(m: &Matrix, y: &[u8], column: usize, include: impl Fn(usize) -> bool) -> Self {
        let mut by_code: HashMap<u64, (u64, u64)> = HashMap::new();
        let (mut rows, mut positives) = (0u64, 0u64);
        for r in (0..m.rows).filter(|&r| include(r)) {
            rows += 1;
            positives += u64::from(y[r]);
            let v = m.row(r)[column];
            if !v.is_nan() {
                let e = by_code.entry(v.to_bits()).or_default();
                e.0 += 1;
                e.1 += u64::from(y[r]);
            }
        }
        CategoryRates {
            by_code,
            overall: if rows == 0 {
                0.0
            } else {
                positives as f64 / rows as f64
            },
        }
    }

    fn rate(&self, code: f64) -> f64 {
        match self.by_code.get(&code.to_bits()) {
            Some(&(n, c)) if n > 0 => c as f64 / n as f64,
            _ => self.overall,
        }
    }
}

/// "Possible leak" sentences for the features that show either sign, most suspicious first.
pub fn leak_notes(
    features: &FeatureSet,
    aucs: &[Option<f64>],
    importance: &[FeatureImportance],
    rows_described: &str,
) -> Vec<String> {
    let mut notes = Vec::new();
    for (f, auc) in features.features.iter().zip(aucs) {
        if let Some(a) = auc
            && *a >= LEAK_AUC
        {
            notes.push(format!(
                "possible leak: the feature {:?} alone ranks the {rows_described} with an AUC of {a:.3}: if it is recorded after the promotion (or derived from its outcome), exclude it (data.exclude) and train again",
                f.name
            ));
        }
    }
    let total: f64 = importance.iter().map(|f| f.gain).sum();
    if total > 0.0 {
        for f in importance {
            let share = f.gain / total;
            if share > LEAK_GAIN_SHARE {
                notes.push(format!(
                    "possible leak: the feature {:?} takes {:.0}% of the model's total gain: if it is recorded after the promotion (or derived from its outcome), exclude it (data.exclude) and train again",
                    f.name,
                    share * 100.0
                ));
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::encode::Feature;

    fn feature(name: &str, kind: FeatureKind) -> Feature {
        Feature {
            name: name.into(),
            kind,
            categories: Vec::new(),
            numeric_categories: false,
            codes: false,
        }
    }

    #[test]
    fn a_feature_that_is_the_outcome_is_named() {
        // Columns: the outcome itself (numeric), noise, a category per person (an id).
        let n = 400;
        let labels: Vec<u8> = (0..n).map(|i| u8::from(i % 5 == 0)).collect();
        let mut values = Vec::new();
        for (i, &y) in labels.iter().enumerate() {
            values.extend([
                f64::from(y) * 100.0 + (i % 7) as f64,
                ((i * 31) % 17) as f64,
                i as f64,
            ]);
        }
        let matrix = Matrix {
            values,
            rows: n,
            cols: 3,
        };
        let features = FeatureSet {
            features: vec![
                feature("duration", FeatureKind::Numeric),
                feature("noise", FeatureKind::Numeric),
                feature("person", FeatureKind::Categorical),
            ],
            na_values: Vec::new(),
        };
        let aucs = single_feature_aucs(&features, &matrix, &labels, None);
        assert_eq!(aucs[0], Some(1.0));
        assert!(aucs[1].unwrap() < 0.7);
        // Out of fold, a category per person says nothing about the other fold.
        assert!((aucs[2].unwrap() - 0.5).abs() < 1e-12);
        let importance = vec![
            FeatureImportance {
                name: "duration".into(),
                gain: 70.0,
                splits: 3,
            },
            FeatureImportance {
                name: "noise".into(),
                gain: 30.0,
                splits: 9,
            },
        ];
        let notes = leak_notes(&features, &aucs, &importance, "held-out rows");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("\"duration\" alone") && notes[0].contains("1.000"));
        assert!(notes[1].contains("\"duration\" takes 70%"));
    }
}
