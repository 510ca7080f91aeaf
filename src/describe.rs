//! `columns`: what audience sees in a table before anything runs: each column's type as read,
//! its missing and distinct values, examples, and the role the configuration gives it.

use std::collections::HashSet;
use std::path::Path;

use arrow::datatypes::DataType;
use serde::Serialize;

use crate::config::{Config, SplitMethod};
use crate::data::encode::{FeatureKind, FeatureSet};
use crate::data::{LoadOptions, load_table, text_array};
use crate::{Error, Result};

/// One column of a table as audience reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    pub name: String,
    /// `number`, `text`, `boolean`, or Arrow's name for any other type.
    #[serde(rename = "type")]
    pub kind: String,
    pub nulls: usize,
    pub distinct: usize,
    /// Up to three distinct values, in file order.
    pub examples: Vec<String>,
    /// `label`, `id`, `excluded`, `time`, `feature (numeric)`, `feature (categorical)`, or
    /// `not a feature: <why>`.
    pub role: String,
}

/// A table's columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDescription {
    pub path: String,
    pub rows: usize,
    pub columns: Vec<ColumnSummary>,
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::Float64 | DataType::Float32 => "number".into(),
        t if t.is_integer() => "number".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Boolean => "boolean".into(),
        other => other.to_string(),
    }
}

/// Describes `path` read as `config` reads its history (delimiter, missing-value texts, the
/// label, id and categorical columns as text), with each column's role under `config`.
pub fn describe(path: &Path, config: &Config) -> Result<TableDescription> {
    let d = &config.data;
    let mut text_columns = d.categorical.clone();
    text_columns.extend(d.label.clone());
    text_columns.extend(d.id.clone());
    let options = LoadOptions {
        delimiter: d
            .delimiter
            .as_deref()
            .map(crate::config::delimiter_byte)
            .transpose()?,
        text_columns,
        na_values: d.na_values.clone(),
    };
    let table = load_table(path, &options)?;
    let schema = table.batch.schema();
    let time_column = (config.split.method == SplitMethod::Time)
        .then_some(config.split.time_column.as_deref())
        .flatten();
    let mut not_features: Vec<&str> = Vec::new();
    not_features.extend(d.label.as_deref());
    not_features.extend(d.id.as_deref());
    not_features.extend(d.exclude.iter().map(String::as_str));
    not_features.extend(time_column);
    let (features, skipped) = FeatureSet::plan(&schema, &not_features, &d.categorical);
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let values = text_array(table.batch.column(i)).map_err(|e| Error::data(path, e))?;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut examples = Vec::new();
        let mut nulls = 0;
        for v in values.iter() {
            match v {
                None => nulls += 1,
                Some(v) => {
                    if seen.insert(v) && examples.len() < 3 {
                        examples.push(v.to_string());
                    }
                }
            }
        }
        let role = if d.label.as_deref() == Some(name.as_str()) {
            "label".to_string()
        } else if d.id.as_deref() == Some(name.as_str()) {
            "id".to_string()
        } else if d.exclude.iter().any(|e| e == name) {
            "excluded".to_string()
        } else if time_column == Some(name.as_str()) {
            "time".to_string()
        } else if let Some(f) = features.features.iter().find(|f| &f.name == name) {
            match f.kind {
                FeatureKind::Numeric => "feature (numeric)".to_string(),
                FeatureKind::Categorical => "feature (categorical)".to_string(),
            }
        } else if let Some(s) = skipped.iter().find(|s| &s.name == name) {
            format!("not a feature: {}", s.reason)
        } else {
            "not a feature".to_string()
        };
        columns.push(ColumnSummary {
            name: name.clone(),
            kind: type_name(field.data_type()),
            nulls,
            distinct: seen.len(),
            examples,
            role,
        });
    }
    Ok(TableDescription {
        path: crate::remote::shown(path),
        rows: table.num_rows(),
        columns,
    })
}

/// Words in a column name that suggest the outcome itself.
const LABEL_WORDS: [&str; 10] = [
    "converted",
    "conversion",
    "label",
    "target",
    "response",
    "responded",
    "outcome",
    "revenue",
    "purchased",
    "y",
];

/// Words in a column name that suggest a value recorded after the promotion (it would leak the
/// outcome into the model).
const AFTER_WORDS: [&str; 8] = [
    "duration", "revenue", "amount", "spent", "order", "redeem", "clicked", "opened",
];

fn words(name: &str) -> Vec<String> {
    // CamelCase and snake_case alike: `BounceRates` and `bounce_rates` give bounce, rates.
    let mut out = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn toml_string(s: &str) -> String {
    // TOML basic strings escape like JSON's.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A commented audience.toml for `path` (which the file names as given) and one example rule,
/// from what the data shows: the delimiter, candidates for the id and the label, text columns
/// (categorical features), and columns whose names suggest they were recorded after the
/// promotion, left for the user to exclude.
pub fn starter_config(path: &Path, path_text: &str) -> Result<(String, String)> {
    let is_csv = crate::data::Format::of(path) == crate::data::Format::Csv;
    let delimiter = if is_csv {
        Some(crate::data::CsvLayout::sniff(path, None)?.delimiter)
    } else {
        None
    };
    let mut config = Config::default();
    config.data.delimiter = delimiter.map(|d| (d as char).to_string());
    let t = describe(path, &config)?;
    let ids: Vec<&ColumnSummary> = t
        .columns
        .iter()
        .filter(|c| c.nulls == 0 && c.distinct == t.rows && c.kind != "boolean")
        .collect();
    let two_valued: Vec<&ColumnSummary> = t.columns.iter().filter(|c| c.distinct == 2).collect();
    let label = two_valued
        .iter()
        .find(|c| {
            words(&c.name)
                .iter()
                .any(|w| LABEL_WORDS.contains(&w.as_str()))
        })
        .or(two_valued.last())
        .copied();
    let id = ids
        .iter()
        .find(|c| words(&c.name).iter().any(|w| w == "id"))
        .or(ids.first())
        .copied();
    let mut out = String::new();
    out.push_str(&format!(
        "# audience configuration for {path_text}, written by `audience init` from its {} rows.\n# Check every line: the guesses below are only what the data suggests.\n\n[data]\npath = {}\n",
        t.rows,
        toml_string(path_text)
    ));
    if let Some(d) = delimiter {
        let shown = if d == b'\t' {
            "\\t".to_string()
        } else {
            (d as char).to_string()
        };
        out.push_str(&format!("delimiter = {}\n", toml_string(&shown)));
    }
    match id {
        Some(c) => out.push_str(&format!(
            "# The person's id: every value distinct. Candidates: {}.\nid = {}\n",
            ids.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            toml_string(&c.name)
        )),
        None => out.push_str(
            "# No column has a distinct value on every row: audience numbers rows as row_id.\n# id = \"customer_id\"\n",
        ),
    }
    match label {
        Some(c) => {
            out.push_str(&format!(
                "# The outcome: a column of two values ({}). Columns with two values: {}.\nlabel = {}\n",
                c.examples.join(", "),
                two_valued.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
                toml_string(&c.name)
            ));
            let positive = c
                .examples
                .iter()
                .find(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "y"));
            if positive.is_none() {
                out.push_str(&format!(
                    "# Which value means converted (1, true, yes, y are understood without this):\npositive = [{}]\n",
                    c.examples.first().map(|v| toml_string(v)).unwrap_or_default()
                ));
            }
        }
        None => out.push_str(
            "# No column has exactly two values: name the outcome column.\nlabel = \"converted\"\n",
        ),
    }
    let after: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| Some(c.name.as_str()) != label.map(|l| l.name.as_str()))
        .filter(|c| {
            words(&c.name)
                .iter()
                .any(|w| AFTER_WORDS.contains(&w.as_str()))
        })
        .map(|c| c.name.as_str())
        .collect();
    out.push_str("# Columns recorded after the promotion (its duration, what was bought) know the outcome:\n# list them here, or the model learns from the future.");
    if !after.is_empty() {
        out.push_str(&format!(" Names that suggest it: {}.", after.join(", ")));
    }
    out.push_str("\nexclude = []\n");
    let texts: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| {
            c.kind == "text"
                && Some(c.name.as_str()) != id.map(|i| i.name.as_str())
                && Some(c.name.as_str()) != label.map(|l| l.name.as_str())
        })
        .map(|c| c.name.as_str())
        .collect();
    let codes: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| c.kind == "number" && c.distinct <= 12 && c.distinct > 2)
        .map(|c| c.name.as_str())
        .collect();
    out.push_str("# Text columns are categorical features already");
    if !texts.is_empty() {
        out.push_str(&format!(" ({})", texts.join(", ")));
    }
    out.push_str(".\n# Numbers that are really codes (a region number) belong here.");
    if !codes.is_empty() {
        out.push_str(&format!(" Few distinct values: {}.", codes.join(", ")));
    }
    out.push_str("\ncategorical = []\n# Texts meaning \"missing\" besides an empty field, e.g. [\"n/a\", \"NULL\"].\nna_values = []\ntable = \"history\"\n\n[split]\nmethod = \"random\"\ntest_fraction = 0.3\nseed = 42\n# Or hold out the latest period: method = \"time\", time_column = \"...\", cutoff = \"2024-01-01\"\n\n[model]\nnum_leaves = 31\nnum_rounds = 200\nlearning_rate = 0.05\nearly_stopping_rounds = 20\n");
    // One rule to start from: a feature column and one of its values, quoted as SQL wants.
    let id_name = id.map_or("row_id", |c| c.name.as_str());
    let condition = t
        .columns
        .iter()
        .find(|c| {
            c.role == "feature (categorical)"
                && !c.examples.is_empty()
                && Some(c.name.as_str()) != label.map(|l| l.name.as_str())
                && Some(c.name.as_str()) != id.map(|i| i.name.as_str())
        })
        .map(|c| format!("\"{}\" = '{}'", c.name, c.examples[0].replace('\'', "''")))
        .or_else(|| {
            t.columns
                .iter()
                .find(|c| c.role == "feature (numeric)" && !c.examples.is_empty())
                .map(|c| format!("\"{}\" >= {}", c.name, c.examples[0]))
        })
        .unwrap_or_else(|| "TRUE".into());
    let rule = format!(
        "-- An example rule: one read-only SELECT over `history` returning the id (or *).\n-- Text is compared in single quotes; column names are matched ignoring case.\nSELECT \"{id_name}\"\nFROM history\nWHERE {condition}\n"
    );
    Ok((out, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("BounceRates"), ["bounce", "rates"]);
        assert_eq!(words("customer_id"), ["customer", "id"]);
        assert_eq!(words("SessionID"), ["session", "id"]);
        assert_eq!(words("y"), ["y"]);
    }

    #[test]
    fn a_starter_configuration_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let mut csv = String::from("SessionId;Region;Month;CallDuration;Revenue\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "s{i};{};{};{};{}\n",
                i % 5,
                ["May", "Jun"][i % 2],
                i * 3,
                ["TRUE", "FALSE"][usize::from(i % 3 == 0)]
            ));
        }
        std::fs::write(&path, csv).unwrap();
        let (toml_text, rule) = starter_config(&path, "s.csv").unwrap();
        let config: Config = toml::from_str(&toml_text).unwrap();
        assert_eq!(config.data.id.as_deref(), Some("SessionId"));
        assert_eq!(config.data.label.as_deref(), Some("Revenue"));
        assert_eq!(config.data.delimiter.as_deref(), Some(";"));
        assert!(
            toml_text.contains("Names that suggest it: CallDuration."),
            "{toml_text}"
        );
        assert!(
            toml_text.contains("Few distinct values: Region."),
            "{toml_text}"
        );
        assert!(rule.contains("WHERE \"Month\" = 'May'"), "{rule}");
        let parsed = crate::rules::Rule::new("example", Path::new("example.sql"), &rule, "history");
        assert!(parsed.is_ok());
    }

    #[test]
    fn columns_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "Id,Age,Weekend,Month,Spent,Revenue\nu1,30,TRUE,May,1.5,TRUE\nu2,,FALSE,May,2,FALSE\nu3,41,TRUE,Jun,n/a,FALSE\nu4,30,FALSE,Jul,4,TRUE\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.data.id = Some("Id".into());
        config.data.label = Some("Revenue".into());
        config.data.exclude = vec!["Spent".into()];
        config.data.na_values = vec!["n/a".into()];
        let t = describe(&path, &config).unwrap();
        assert_eq!(t.rows, 4);
        let by = |n: &str| t.columns.iter().find(|c| c.name == n).unwrap().clone();
        let age = by("Age");
        assert_eq!(
            (age.kind.as_str(), age.nulls, age.distinct),
            ("number", 1, 2)
        );
        assert_eq!(age.examples, ["30", "41"]);
        assert_eq!(age.role, "feature (numeric)");
        assert_eq!(by("Weekend").kind, "boolean");
        let month = by("Month");
        assert_eq!(
            (month.distinct, month.role.as_str()),
            (3, "feature (categorical)")
        );
        assert_eq!(month.examples, ["May", "Jun", "Jul"]);
        assert_eq!(by("Id").role, "id");
        assert_eq!(by("Revenue").role, "label");
        let spent = by("Spent");
        assert_eq!((spent.role.as_str(), spent.nulls), ("excluded", 1));
    }
}
