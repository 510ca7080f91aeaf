//! From table columns to LightGBM's feature matrix.
//!
//! Numeric columns become f64 with NaN for missing. Categorical columns become integer codes into a
//! vocabulary of the sorted distinct *training* values; a missing or unseen value becomes NaN, which
//! every LightGBM categorical split sends right (exactly what Python's pandas path does with its
//! `pandas_categorical` list). The vocabulary is saved with the model so that scoring reproduces
//! the training codes whatever order values arrive in.
//!
//! A field's text becomes a model input by one rule, the same in training, `score` and the
//! server ([`number_of`], [`category_of`]): a number may have surrounding spaces; an empty field
//! or one of `data.na_values` is missing; anything else that does not parse as a number in a
//! numeric feature is an error naming the column, the row and the value (never a silent
//! missing value). A category is its text exactly as written.

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use crate::data::vocabulary::Vocabulary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    Numeric,
    Categorical,
}

/// One model input: a column of the table and how it is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: FeatureKind,
    /// For categorical features: the training values, code = position. Sorted numerically when
    /// every value is a number (`numeric_categories`), otherwise by their UTF-8 bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub numeric_categories: bool,
    /// For categorical features without a vocabulary (a bare model file with no
    /// pandas_categorical line): the column holds LightGBM's integer codes themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub codes: bool,
}

/// A column the planner left out, and why: shown to the user so nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedColumn {
    pub name: String,
    pub reason: String,
}

/// The model's inputs in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSet {
    pub features: Vec<Feature>,
    /// Field texts read as missing besides the empty field (`data.na_values`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub na_values: Vec<String>,
}

/// A numeric field's value: NaN when missing (empty, or one of `na_values` after trimming),
/// None when the text is not a number.
pub fn number_of(text: &str, na_values: &[String]) -> Option<f64> {
    if na_values.is_empty()
        && let Some(value) = plain_decimal(text.as_bytes())
    {
        return Some(value);
    }
    let t = text.trim();
    if t.is_empty() || na_values.iter().any(|v| v == t) {
        return Some(f64::NAN);
    }
    t.parse::<f64>().ok()
}

/// The value of `-?digits(.digits)?` with at most 15 digits in all, None for any other text.
/// Such a number is an integer below 2^53 divided by a power of ten up to 10^15, both exact in
/// f64, so the one correctly rounded division gives the correctly rounded value that `parse`
/// gives, bit for bit, without its general algorithm.
pub(crate) fn plain_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let mut mantissa = 0u64;
    let mut count = 0usize;
    let mut fraction_digits = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            b'.' if fraction_digits.is_none() && i > 0 && i + 1 < digits.len() => {
                fraction_digits = Some(digits.len() - i - 1);
            }
            _ => return None,
        }
        if count > 15 {
            return None;
        }
    }
    if count == 0 {
        return None;
    }
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let magnitude = mantissa as f64 / POWERS[fraction_digits.unwrap_or(0)];
    Some(if negative { -magnitude } else { magnitude })
}

/// A categorical field's category: None when missing (empty, or one of `na_values`). The text
/// is compared as written, as the training values were read.
pub fn category_of<'a>(text: &'a str, na_values: &[String]) -> Option<&'a str> {
    (!is_missing_text(text.as_bytes(), na_values)).then_some(text)
}

/// Whether a field's text, as written, means missing: empty, or one of `na_values`.
pub fn is_missing_text(text: &[u8], na_values: &[String]) -> bool {
    text.is_empty() || na_values.iter().any(|v| v.as_bytes() == text)
}

/// The error for a numeric feature's field that is not a number (`row` 1-based).
pub fn not_a_number(row: u64, column: &str, text: &str) -> String {
    format!(
        "data row {row}: column {column:?} holds {text:?}, which is not a number (the feature is numeric); list it in data.na_values if it means missing"
    )
}

/// A text column the planner would make categorical, yet whose values are nearly all numbers:
/// a numeric attribute with a few stray values ("n/a", "1,234"), which would otherwise silently
/// become a category. Reported unless the column is declared categorical.
#[derive(Debug, Clone, PartialEq)]
pub struct StrayText {
    pub column: String,
    /// 0-based row and value of the first non-number.
    pub row: usize,
    pub value: String,
    pub strays: usize,
    pub numbers: usize,
}

/// A column counts as numeric with strays when at least this share of its values are numbers.
const NUMERIC_SHARE: f64 = 0.9;
/// How often (in rows) the search for stray texts asks whether a column can still qualify.
const STRAY_CHECK_ROWS: usize = 4096;

/// A dense row-major f64 matrix, the layout LightGBM's `*FromMat` calls read.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub values: Vec<f64>,
    pub rows: usize,
    pub cols: usize,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f64] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }
}

/// How many values of each categorical feature were not in the training vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnseenCounts {
    pub by_feature: Vec<(String, u64)>,
}

impl UnseenCounts {
    pub fn total(&self) -> u64 {
        self.by_feature.iter().map(|(_, n)| n).sum()
    }

    pub fn add(&mut self, other: &UnseenCounts) {
        for (name, n) in &other.by_feature {
            match self.by_feature.iter_mut().find(|(m, _)| m == name) {
                Some((_, total)) => *total += n,
                None => self.by_feature.push((name.clone(), *n)),
            }
        }
    }
}

impl FeatureSet {
    /// Decides which columns are features and of which kind, in table order.
    ///
    /// `not_features` are the label, the id, exclusions and the time column; `categorical` forces
    /// numeric-looking columns to be categories. Text columns are categorical; numbers and booleans
    /// numeric; other types (dates, nested) are skipped and reported.
    pub fn plan(
        schema: &Schema,
        not_features: &[&str],
        categorical: &[String],
    ) -> (FeatureSet, Vec<SkippedColumn>) {
        let mut features = Vec::new();
        let mut skipped = Vec::new();
        for field in schema.fields() {
            let name = field.name();
            if not_features.contains(&name.as_str()) {
                continue;
            }
            let kind = if categorical.iter().any(|c| c == name) {
                Some(FeatureKind::Categorical)
            } else {
                match field.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        Some(FeatureKind::Categorical)
                    }
                    DataType::Boolean => Some(FeatureKind::Numeric),
                    t if t.is_numeric() => Some(FeatureKind::Numeric),
                    _ => None,
                }
            };
            match kind {
                Some(kind) => features.push(Feature {
                    name: name.clone(),
                    kind,
                    categories: Vec::new(),
                    numeric_categories: false,
                    codes: false,
                }),
                None => skipped.push(SkippedColumn {
                    name: name.clone(),
                    reason: format!(
                        "type {} is neither numeric nor text; cast it in the file or exclude it",
                        field.data_type()
                    ),
                }),
            }
        }
        (
            FeatureSet {
                features,
                na_values: Vec::new(),
            },
            skipped,
        )
    }

    /// Learns each categorical feature's vocabulary from the given training rows.
    pub fn fit_categories(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
    ) -> std::result::Result<(), String> {
        use rayon::prelude::*;
        let na_values = &self.na_values;
        // A feature at a time on every core; each one's distinct values sorted as text. The
        // error reported is the first feature's, as one pass would meet it.
        let fitted: Vec<std::result::Result<(), String>> = self
            .features
            .par_iter_mut()
            .filter(|feature| feature.kind == FeatureKind::Categorical && !feature.codes)
            .map(|feature| {
                let column = column_of(batch, &feature.name)?;
                let text = category_text(column)?;
                let mut distinct: hashbrown::HashSet<&str> = hashbrown::HashSet::new();
                for &r in rows {
                    if text.is_valid(r)
                        && let Some(value) = category_of(text.value(r), na_values)
                    {
                        distinct.insert(value);
                    }
                }
                let mut values: Vec<&str> = distinct.into_iter().collect();
                values.sort_unstable();
                let numbers: Option<Vec<f64>> =
                    values.iter().map(|v| v.parse::<f64>().ok()).collect();
                let mut categories: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                feature.numeric_categories = false;
                if let Some(numbers) = numbers
                    && !numbers.is_empty()
                    && numbers.iter().all(|n| n.is_finite())
                {
                    let mut pairs: Vec<(f64, String)> =
                        numbers.into_iter().zip(categories).collect();
                    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                    categories = pairs.into_iter().map(|(_, s)| s).collect();
                    feature.numeric_categories = true;
                }
                feature.categories = categories;
                Ok(())
            })
            .collect();
        fitted.into_iter().collect()
    }

    /// A categorical feature's value listed twice (feature, value): a model file that lists one
    /// would code the value two ways.
    pub fn repeated_category(&self) -> Option<(&str, &str)> {
        self.features.iter().find_map(|f| {
            let mut seen = hashbrown::HashSet::new();
            f.categories
                .iter()
                .find(|c| !seen.insert(c.as_str()))
                .map(|c| (f.name.as_str(), c.as_str()))
        })
    }

    /// Names of the features, in order.
    pub fn names(&self) -> Vec<&str> {
        self.features.iter().map(|f| f.name.as_str()).collect()
    }

    /// The columns to read as text: categorical features with a vocabulary (integer-coded ones
    /// are read as numbers).
    pub fn text_columns(&self) -> Vec<String> {
        self.features
            .iter()
            .filter(|f| f.kind == FeatureKind::Categorical && !f.codes)
            .map(|f| f.name.clone())
            .collect()
    }

    /// The columns fed to the model as numbers: numeric features and integer-coded categoricals.
    pub fn numeric_columns(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.kind == FeatureKind::Numeric || f.codes)
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Indexes (in feature order) of the categorical features, for LightGBM's `categorical_feature`.
    pub fn categorical_indexes(&self) -> Vec<usize> {
        self.features
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FeatureKind::Categorical)
            .map(|(i, _)| i)
            .collect()
    }

    /// The features the batch lacks (an error for the caller to report by name).
    pub fn missing_columns(&self, schema: &Schema) -> Vec<String> {
        self.features
            .iter()
            .filter(|f| schema.column_with_name(&f.name).is_none())
            .map(|f| f.name.clone())
            .collect()
    }

    /// The categorical features whose column is text although nearly every value of it in `rows`
    /// is a number (see [`StrayText`]), leaving out the `declared` categorical columns.
    pub fn stray_texts(
        &self,
        batch: &RecordBatch,
        rows: &[usize],
        declared: &[String],
    ) -> std::result::Result<Vec<StrayText>, String> {
        use rayon::prelude::*;
        // A feature at a time on every core, reported (and failing) in feature order.
        let found: Vec<std::result::Result<Option<StrayText>, String>> = self
            .features
            .par_iter()
            .filter(|feature| {
                feature.kind == FeatureKind::Categorical
                    && !feature.codes
                    && !declared.contains(&feature.name)
            })
            .map(|feature| {
                let column = column_of(batch, &feature.name)?;
                let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
                    return Ok(None);
                };
                let (mut numbers, mut strays, mut first) = (0usize, 0usize, None);
                for (i, &r) in rows.iter().enumerate() {
                    // A text column stops being read once even numbers in every row left
                    // could not make NUMERIC_SHARE of it (a margin of a whole value keeps
                    // rounding out of the decision).
                    if i % STRAY_CHECK_ROWS == 0
                        && NUMERIC_SHARE * strays as f64
                            > (1.0 - NUMERIC_SHARE) * (numbers + rows.len() - i) as f64 + 1.0
                    {
                        return Ok(None);
                    }
                    if !text.is_valid(r) {
                        continue;
                    }
                    let value = text.value(r);
                    match number_of(value, &self.na_values) {
                        Some(x) if x.is_nan() => {}
                        Some(_) => numbers += 1,
                        None => {
                            strays += 1;
                            first.get_or_insert((r, value.to_string()));
                        }
                    }
                }
                Ok(match first {
                    Some((row, value))
                        if numbers >= 10
                            && numbers as f64 >= NUMERIC_SHARE * (numbers + strays) as f64 =>
                    {
                        Some(StrayText {
                            column: feature.name.clone(),
                            row,
                            value,
                            strays,
                            numbers,
                        })
                    }
                    _ => None,
                })
            })
            .collect();
        let found: Vec<Option<StrayText>> =
            found.into_iter().collect::<std::result::Result<_, _>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Encodes the given rows (all rows when `None`) into a row-major matrix (messages number
    /// rows from the batch's first). For batch after batch, build an `encoder` once.
    pub fn encode(
        &self,
        batch: &RecordBatch,
        rows: Option<&[usize]>,
    ) -> std::result::Result<(Matrix, UnseenCounts), String> {
        self.encoder().encode_from(batch, rows, 0)
    }

    /// An encoder for batch after batch, each vocabulary indexed once.
    pub fn encoder(&self) -> BatchEncoder {
        let codes = self
            .features
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Categorical if !f.codes => {
                    Vocabulary::new(f.categories.iter().map(String::as_bytes))
                }
                _ => Vocabulary::default(),
            })
            .collect();
        BatchEncoder {
            set: self.clone(),
            codes,
        }
    }

    /// The JSON LightGBM's Python package appends to model.txt as `pandas_categorical:`: the
    /// category list of each categorical feature, in feature order, numbers as JSON numbers.
    pub fn pandas_categorical(&self) -> serde_json::Value {
        let lists: Vec<serde_json::Value> = self
            .features
            .iter()
            .filter(|f| f.kind == FeatureKind::Categorical)
            .map(|f| {
                serde_json::Value::Array(
                    f.categories
                        .iter()
                        .map(|v| {
                            if f.numeric_categories {
                                if let Ok(i) = v.parse::<i64>() {
                                    return serde_json::Value::from(i);
                                }
                                if let Some(n) =
                                    v.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
                                {
                                    return serde_json::Value::Number(n);
                                }
                            }
                            serde_json::Value::String(v.clone())
                        })
                        .collect(),
                )
            })
            .collect();
        serde_json::Value::Array(lists)
    }
}

/// A feature set made ready to encode many batches: the value-to-code map of each categorical
/// feature built once (and hashed with foldhash, seeded per process, rather than SipHash).
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    set: FeatureSet,
    /// Per feature: a categorical value's code (empty for other features).
    codes: Vec<Vocabulary>,
}

impl BatchEncoder {
    /// The model's inputs in order.
    pub fn features(&self) -> &[Feature] {
        &self.set.features
    }

    /// Field texts read as missing besides the empty field.
    pub fn na_values(&self) -> &[String] {
        &self.set.na_values
    }

    /// The training code of the value (as bytes) of categorical feature `feature`; None when
    /// unseen.
    pub fn category_code(&self, feature: usize, value: &[u8]) -> Option<usize> {
        self.codes[feature].get(value)
    }

    /// `encode` for a batch whose first row is data row `first_row + 1` of its file.
    pub fn encode_from(
        &self,
        batch: &RecordBatch,
        rows: Option<&[usize]>,
        first_row: usize,
    ) -> std::result::Result<(Matrix, UnseenCounts), String> {
        use rayon::prelude::*;
        let n = rows.map_or(batch.num_rows(), |r| r.len());
        let cols = self.set.features.len();
        // A column that cannot be read at all fails where one pass, column after column, would
        // meet it: after every value of the columns before it.
        let mut columns = Vec::with_capacity(cols);
        let mut unreadable = None;
        for (c, feature) in self.set.features.iter().enumerate() {
            match self.source_of(batch, c, feature) {
                Ok(source) => columns.push(source),
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            }
        }
        let mut values = vec![f64::NAN; n * cols];
        // Blocks of rows on every core, each into its own stretch of the matrix.
        let blocks: Vec<std::result::Result<Vec<u64>, EncodeError>> = values
            .par_chunks_mut((ENCODE_BLOCK_ROWS * cols).max(1))
            .enumerate()
            .map(|(block, out)| {
                let start = block * ENCODE_BLOCK_ROWS;
                let end = start + out.len() / cols.max(1);
                self.encode_rows(&columns, cols, rows, start..end, out, first_row)
            })
            .collect();
        let mut unseen_counts = vec![0u64; cols];
        let mut first_error: Option<EncodeError> = None;
        for block in blocks {
            match block {
                Ok(counts) => unseen_counts
                    .iter_mut()
                    .zip(counts)
                    .for_each(|(t, c)| *t += c),
                // A block stops at the first column failing in it: the least (column, row)
                // over the blocks is the error one pass, column after column, meets first.
                Err(e) => {
                    if first_error
                        .as_ref()
                        .is_none_or(|f| (e.column, e.row) < (f.column, f.row))
                    {
                        first_error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.message);
        }
        if let Some(e) = unreadable {
            return Err(e);
        }
        let unseen = UnseenCounts {
            by_feature: self
                .set
                .features
                .iter()
                .zip(unseen_counts)
                .filter(|&(_, count)| count > 0)
                .map(|(f, count)| (f.name.clone(), count))
                .collect(),
        };
        Ok((
            Matrix {
                values,
                rows: n,
                cols,
            },
            unseen,
        ))
    }

    /// Where `feature`'s values come from in `batch`, and how they are read.
    fn source_of<'a>(
        &'a self,
        batch: &'a RecordBatch,
        index: usize,
        feature: &Feature,
    ) -> std::result::Result<ColumnSource<'a>, String> {
        let column = column_of(batch, &feature.name)?;
        // Integer-coded categoricals go to LightGBM as the numbers they are.
        let as_number = feature.kind == FeatureKind::Numeric || feature.codes;
        if as_number && let Some(text) = column.as_any().downcast_ref::<StringArray>() {
            return Ok(ColumnSource::NumberText(text));
        }
        if as_number {
            let numbers = cast(column.as_ref(), &DataType::Float64)
                .map_err(|e| format!("column {:?} cannot be read as numbers: {e}", feature.name))?;
            let numbers = numbers
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or("internal: cast to Float64 did not give Float64")?
                .clone();
            return Ok(ColumnSource::Numbers(numbers));
        }
        Ok(ColumnSource::Categories(
            category_text(column)?,
            &self.codes[index],
        ))
    }

    /// Encodes rows `range` (of `rows`, or of the batch) into `out` (row-major, `cols` values a
    /// row) for the leading features `columns` are of; returns the unseen categories per
    /// feature. Columns are taken one after another: an error is the first failing value of the
    /// first column that has one.
    fn encode_rows(
        &self,
        columns: &[ColumnSource<'_>],
        cols: usize,
        rows: Option<&[usize]>,
        range: std::ops::Range<usize>,
        out: &mut [f64],
        first_row: usize,
    ) -> std::result::Result<Vec<u64>, EncodeError> {
        let mut misses = vec![0u64; cols];
        for (c, (column, feature)) in columns.iter().zip(&self.set.features).enumerate() {
            for (i, slot) in range.clone().zip(out.iter_mut().skip(c).step_by(cols)) {
                let r = rows.map_or(i, |rows| rows[i]);
                match column {
                    // A text column for a numeric feature: every value by the one rule, so that a
                    // value that is not a number is an error, not a silent missing value.
                    ColumnSource::NumberText(text) => {
                        if text.is_valid(r) {
                            let value = text.value(r);
                            *slot = number_of(value, &self.set.na_values).ok_or_else(|| {
                                EncodeError {
                                    column: c,
                                    row: i,
                                    message: not_a_number(
                                        (first_row + r + 1) as u64,
                                        &feature.name,
                                        value,
                                    ),
                                }
                            })?;
                        }
                    }
                    ColumnSource::Numbers(numbers) => {
                        if numbers.is_valid(r) {
                            *slot = numbers.value(r);
                        }
                    }
                    ColumnSource::Categories(text, codes) => {
                        if !text.is_valid(r) {
                            continue;
                        }
                        let Some(value) = category_of(text.value(r), &self.set.na_values) else {
                            continue;
                        };
                        match codes.get(value.as_bytes()) {
                            Some(code) => *slot = code as f64,
                            None => misses[c] += 1,
                        }
                    }
                }
            }
        }
        Ok(misses)
    }
}

/// Rows encoded as one task.
const ENCODE_BLOCK_ROWS: usize = 1 << 14;

/// A value that does not encode: its feature, its position among the rows encoded, and the
/// message.
struct EncodeError {
    column: usize,
    row: usize,
    message: String,
}

/// A feature's column, ready to be read row by row.
enum ColumnSource<'a> {
    /// Text read by the numeric value rule.
    NumberText(&'a StringArray),
    Numbers(Float64Array),
    /// Text coded through the vocabulary.
    Categories(StringArray, &'a Vocabulary),
}

fn column_of<'a>(batch: &'a RecordBatch, name: &str) -> std::result::Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("missing feature column {name:?}"))
}

/// A categorical column as text. Whole-number floats print without `.0`, as in the file.
fn category_text(column: &ArrayRef) -> std::result::Result<StringArray, String> {
    // Text columns (the common case) are used as they are, without copying each value.
    if let Some(text) = column.as_any().downcast_ref::<StringArray>() {
        return Ok(text.clone());
    }
    let strings = super::as_strings(column)?;
    Ok(StringArray::from(strings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("age", DataType::Float64, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("y", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(30.0),
                    None,
                    Some(-1.5),
                    Some(0.0),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("paris"),
                    Some("berlin"),
                    Some(""),
                    None,
                ])),
                Arc::new(StringArray::from(vec!["yes", "no", "no", "no"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn stray_texts_are_found_as_a_full_count_finds_them() {
        // Columns near the numeric share, strays first, last or spread, some with missing
        // values: the search that stops early reports exactly what counting every row does.
        let rows = 3 * STRAY_CHECK_ROWS + 17;
        let mut names = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut expected = Vec::new();
        for (c, strays) in [
            0,
            1,
            rows / 20,
            rows / 12,
            rows / 11,
            rows / 10 - 1,
            rows / 10,
            rows / 10 + 1,
            rows / 4,
            rows,
        ]
        .into_iter()
        .enumerate()
        {
            for (o, order) in ["first", "last", "spread"].into_iter().enumerate() {
                let is_stray = |r: usize| match order {
                    "first" => r < strays,
                    "last" => r >= rows - strays,
                    _ => {
                        strays > 0
                            && r.is_multiple_of(rows.div_ceil(strays))
                            && r / rows.div_ceil(strays) < strays
                    }
                };
                let values: Vec<Option<String>> = (0..rows)
                    .map(|r| match (is_stray(r), (r + c + o) % 50) {
                        (true, _) => Some(format!("n/a{r}")),
                        (false, 0) => None,
                        (false, 1) => Some(String::new()),
                        (false, _) => Some(format!("{}.5", r % 100)),
                    })
                    .collect();
                let name = format!("c{c}_{order}");
                // Counted row by row, the rule as the search states it.
                let (mut numbers, mut found, mut first) = (0usize, 0usize, None);
                for (r, v) in values.iter().enumerate() {
                    match v.as_deref().map(|t| number_of(t, &[])) {
                        None => {}
                        Some(Some(x)) if x.is_nan() => {}
                        Some(Some(_)) => numbers += 1,
                        Some(None) => {
                            found += 1;
                            first.get_or_insert(r);
                        }
                    }
                }
                if let Some(row) = first
                    && numbers >= 10
                    && numbers as f64 >= NUMERIC_SHARE * (numbers + found) as f64
                {
                    expected.push((name.clone(), row, found, numbers));
                }
                columns.push(Arc::new(StringArray::from(values)));
                names.push(name);
            }
        }
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let (set, _) = FeatureSet::plan(&batch.schema(), &[], &[]);
        let every: Vec<usize> = (0..rows).collect();
        let found: Vec<(String, usize, usize, usize)> = set
            .stray_texts(&batch, &every, &[])
            .unwrap()
            .into_iter()
            .map(|s| (s.column, s.row, s.strays, s.numbers))
            .collect();
        assert_eq!(found, expected);
        // Both sides of the share are among the cases.
        assert!(expected.iter().any(|e| e.0.starts_with("c2_")));
        assert!(expected.iter().any(|e| e.0 == "c3_first"));
        assert!(!expected.iter().any(|e| e.0.starts_with("c8_")));
    }

    #[test]
    fn plain_decimals_read_as_parse_reads_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let alphabet = b"0123456789-.+e ";
        let mut read = 0;
        for case in 0..200_000 {
            let text: String = if case % 2 == 0 {
                let len = rng.random_range(0..20);
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                    .collect()
            } else {
                let value = rng.random::<f64>() * 10f64.powi(rng.random_range(-3..12));
                let digits = rng.random_range(0..10);
                let sign = if rng.random_bool(0.3) { "-" } else { "" };
                format!("{sign}{value:.digits$}")
            };
            let parsed = text.parse::<f64>().ok();
            match plain_decimal(text.as_bytes()) {
                Some(value) => {
                    read += 1;
                    assert_eq!(Some(value.to_bits()), parsed.map(f64::to_bits), "{text:?}");
                }
                None => assert_eq!(number_of(&text, &[]).map(f64::to_bits), {
                    let t = text.trim();
                    if t.is_empty() {
                        Some(f64::NAN.to_bits())
                    } else {
                        t.parse::<f64>().ok().map(f64::to_bits)
                    }
                }),
            }
        }
        assert!(read > 50_000, "{read}");
        for (text, value) in [
            ("0.05", 0.05),
            ("-0", -0.0),
            ("007", 7.0),
            ("999999999999999", 999999999999999.0),
        ] {
            assert_eq!(
                plain_decimal(text.as_bytes()).map(f64::to_bits),
                Some(f64::to_bits(value))
            );
        }
        for text in [
            "",
            "-",
            "1.",
            ".5",
            "1.2.3",
            "+1",
            "1e5",
            " 1",
            "1234567890123456",
        ] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn plan_fit_and_encode() {
        let b = batch();
        let (mut set, skipped) = FeatureSet::plan(&b.schema(), &["y"], &[]);
        assert!(skipped.is_empty());
        assert_eq!(set.names(), ["age", "city"]);
        assert_eq!(set.categorical_indexes(), [1]);
        set.fit_categories(&b, &[0, 1, 2, 3]).unwrap();
        assert_eq!(set.features[1].categories, ["berlin", "paris"]);
        let (m, unseen) = set.encode(&b, None).unwrap();
        assert_eq!(m.row(0), [30.0, 1.0]);
        assert!(m.row(1)[0].is_nan());
        assert_eq!(m.row(1)[1], 0.0);
        assert!(m.row(2)[1].is_nan(), "empty string is missing");
        assert!(m.row(3)[1].is_nan(), "null is missing");
        assert_eq!(unseen.total(), 0);
    }

    #[test]
    fn unseen_categories_are_missing_and_counted() {
        let b = batch();
        let (mut set, _) = FeatureSet::plan(&b.schema(), &["y"], &[]);
        set.fit_categories(&b, &[0]).unwrap();
        assert_eq!(set.features[1].categories, ["paris"]);
        let (m, unseen) = set.encode(&b, Some(&[1, 0])).unwrap();
        assert!(m.row(0)[1].is_nan());
        assert_eq!(m.row(1)[1], 0.0);
        assert_eq!(unseen.by_feature, vec![("city".to_string(), 1)]);
    }

    #[test]
    fn blocks_report_the_error_one_pass_meets_first_and_sum_unseen_counts() {
        // Trained on numbers; the file scored holds text, with a bad value in each column,
        // the first column's far below the second's (in a later block of rows).
        let numeric = Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("city", DataType::Utf8, true),
        ]);
        let (mut set, _) = FeatureSet::plan(&numeric, &[], &[]);
        let rows = 3 * ENCODE_BLOCK_ROWS + 17;
        let city: Vec<&str> = (0..rows).map(|r| ["x", "y", "z"][r % 3]).collect();
        let fitted = RecordBatch::try_new(
            Arc::new(numeric.clone()),
            vec![
                Arc::new(Float64Array::from(vec![1.0; rows])),
                Arc::new(Float64Array::from(vec![2.0; rows])),
                Arc::new(StringArray::from(city.clone())),
            ],
        )
        .unwrap();
        set.fit_categories(&fitted, &[0, 1]).unwrap();
        assert_eq!(set.features[2].categories, ["x", "y"]);
        let (_, unseen) = set.encode(&fitted, None).unwrap();
        assert_eq!(
            unseen.by_feature,
            vec![("city".to_string(), (rows / 3) as u64)]
        );

        let text = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("city", DataType::Utf8, true),
        ]);
        let mut a: Vec<String> = (0..rows).map(|r| r.to_string()).collect();
        let mut b = a.clone();
        a[2 * ENCODE_BLOCK_ROWS + 5] = "n/a".into();
        b[3] = "?".into();
        let scored = RecordBatch::try_new(
            Arc::new(text),
            vec![
                Arc::new(StringArray::from(a)),
                Arc::new(StringArray::from(b)),
                Arc::new(StringArray::from(city)),
            ],
        )
        .unwrap();
        let error = set.encode(&scored, None).unwrap_err();
        assert_eq!(
            error,
            not_a_number((2 * ENCODE_BLOCK_ROWS + 6) as u64, "a", "n/a")
        );
        // Over a subset of rows, row numbers are the batch's own.
        let picked: Vec<usize> = (0..rows).rev().collect();
        let error = set.encode(&scored, Some(&picked)).unwrap_err();
        assert_eq!(
            error,
            not_a_number((2 * ENCODE_BLOCK_ROWS + 6) as u64, "a", "n/a")
        );
        let error = set.encode(&scored, Some(&[3, 1])).unwrap_err();
        assert_eq!(error, not_a_number(4, "b", "?"));
        let (m, _) = set.encode(&scored, Some(&[1, 2])).unwrap();
        assert_eq!(m.values[..5], [1.0, 1.0, 1.0, 2.0, 2.0]);
        assert!(m.values[5].is_nan(), "z was not seen in training");

        // A column that cannot be read at all comes after the bad values of the columns
        // before it, as in one pass.
        let without_b = |a: Vec<&str>| {
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("a", DataType::Utf8, true),
                    Field::new("city", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(StringArray::from(a)),
                    Arc::new(StringArray::from(vec!["x", "y", "x"])),
                ],
            )
            .unwrap()
        };
        let error = set
            .encode(&without_b(vec!["1", "2", "?"]), None)
            .unwrap_err();
        assert_eq!(error, not_a_number(3, "a", "?"));
        let error = set
            .encode(&without_b(vec!["1", "2", "3"]), None)
            .unwrap_err();
        assert_eq!(error, "missing feature column \"b\"");
    }

    #[test]
    fn numeric_categories_sort_by_value() {
        let schema = Schema::new(vec![Field::new("day", DataType::Float64, true)]);
        let b = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Float64Array::from(vec![10.0, 2.0, 1.0, 2.0]))],
        )
        .unwrap();
        let (mut set, _) = FeatureSet::plan(&b.schema(), &[], &["day".to_string()]);
        set.fit_categories(&b, &[0, 1, 2, 3]).unwrap();
        assert_eq!(set.features[0].categories, ["1", "2", "10"]);
        assert_eq!(set.pandas_categorical().to_string(), "[[1,2,10]]");
        let (m, _) = set.encode(&b, None).unwrap();
        assert_eq!(m.values, [2.0, 1.0, 0.0, 1.0]);
    }
}
