//! The model bundle: a directory with LightGBM's `model.txt` and our `audience-model.json`.
//!
//! `model.txt` ends with the `pandas_categorical:` line that Python's lightgbm package writes and
//! reads, holding our category vocabularies, so `lightgbm.Booster(model_file=...)` given a pandas
//! DataFrame with category columns maps values to exactly the codes we trained with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SplitConfig;
use crate::data::encode::{Feature, FeatureKind, FeatureSet, Matrix, SkippedColumn};
use crate::model::ensemble::{CompiledTrees, TreeEnsemble};
use crate::model::lgbm::Booster;
use crate::output;
use crate::{Error, Result};

pub const MODEL_FILE: &str = "model.txt";
pub const MANIFEST_FILE: &str = "audience-model.json";
/// Bumped when a reader of an older bundle would misread a newer one.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    pub lightgbm_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelInfo {
    pub column: String,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdInfo {
    pub column: String,
    /// True when the id is the made-up `row_id` (position in the file), not a column of the data.
    pub generated: bool,
}

/// AUC and log loss of the model on one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMetrics {
    pub rows: usize,
    pub positives: usize,
    /// None when the rows hold a single class.
    pub auc: Option<f64>,
    pub log_loss: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleMetrics {
    pub fit: SetMetrics,
    pub early_stopping: Option<SetMetrics>,
    pub holdout: Option<SetMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowCounts {
    pub total: usize,
    pub fit: usize,
    pub early_stopping: usize,
    pub holdout: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    pub path: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub name: String,
    pub gain: f64,
    pub splits: u64,
}

/// Everything `audience-model.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub tool: ToolInfo,
    #[serde(flatten)]
    pub features: FeatureSet,
    pub label: LabelInfo,
    pub id: IdInfo,
    pub excluded: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedColumn>,
    pub parameters: BTreeMap<String, String>,
    pub num_rounds: u32,
    pub early_stopping_rounds: u32,
    pub best_iteration: usize,
    pub rounds_run: usize,
    pub split: SplitConfig,
    pub rows: RowCounts,
    pub metrics: BundleMetrics,
    pub importance: Vec<FeatureImportance>,
    /// A fingerprint of the ids of the rows the model trained on (fit and early stopping), when
    /// the data has an id column: `compare --eval` notices rows the model has seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_ids: Option<crate::data::IdFingerprint>,
    /// Mean score against observed rate by decile of the held-out rows (`select` states
    /// expected conversions only when it is good enough).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::metrics::Calibration>,
    pub input: InputInfo,
}

/// Which evaluator scores rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// audience's own evaluator: batches of rows as bitmasks, a few rows through the trees
    /// compiled to machine code at first use (exact; fastest).
    #[default]
    Native,
    /// audience's own evaluator, every row through the trees compiled to machine code (exact).
    Compiled,
    /// audience's own evaluator walking the trees' node arrays (exact; no compile step).
    Walk,
    /// LightGBM's C API.
    LightGbm,
}

/// A model ready to score: what to feed it (features, id), and two evaluators of the same text.
pub struct ModelBundle {
    /// The bundle directory, or the bare model.txt.
    pub source: PathBuf,
    /// Present for bundles written by audience; None for a bare LightGBM model file.
    pub manifest: Option<Manifest>,
    pub features: FeatureSet,
    pub id: IdInfo,
    pub model_text: String,
    pub ensemble: TreeEnsemble,
    /// LightGBM's own booster, made at first use (`--engine lightgbm`) from the text our parser
    /// wrote back, never from the file: LightGBM's loader trusts what it reads.
    booster: std::sync::OnceLock<std::result::Result<Booster, String>>,
    /// The trees as machine code, with the masks for batches where the model allows, made at
    /// first use (None inside: the machine has no code generator, or the model is too large or
    /// deep to compile quickly, and the walker serves).
    compiled: std::sync::OnceLock<Option<CompiledTrees>>,
    /// The same code without the masks, for `Engine::Compiled`.
    machine_code: std::sync::OnceLock<Option<CompiledTrees>>,
}

impl ModelBundle {
    /// Writes `model.txt` and `audience-model.json` into `dir`, replacing it only when `force`.
    /// The files are assembled in a sibling directory first, so a failure leaves `dir` as it was.
    pub fn write(dir: &Path, manifest: &Manifest, lightgbm_text: &str, force: bool) -> Result<()> {
        output::check_bundle_output(dir, force, &output::Inputs::default())?;
        let (staged, _registered) = output::staging_dir_beside(dir)?;
        Self::write_into(staged.path(), manifest, lightgbm_text)?;
        let staged = staged.keep();
        let result = output::replace_dir(&staged, dir, force);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        result
    }

    /// Writes the bundle's two files into the existing directory `dir`, each atomically (the
    /// SageMaker container writes into /opt/ml/model, which SageMaker owns).
    pub fn write_into(dir: &Path, manifest: &Manifest, lightgbm_text: &str) -> Result<()> {
        let model = model_txt(lightgbm_text, &manifest.features);
        output::write_atomic(&dir.join(MODEL_FILE), model.as_bytes(), true)?;
        let mut json = serde_json::to_string_pretty(manifest)
            .map_err(|e| Error::model(dir, format!("cannot serialise the manifest: {e}")))?;
        json.push('\n');
        output::write_atomic(&dir.join(MANIFEST_FILE), json.as_bytes(), true)
    }

    /// Loads a bundle directory written by `write`, or a bare LightGBM model file (for example
    /// one saved by Python's lightgbm), whose rows are then identified by `bare_id` or `row_id`.
    pub fn load(path: &Path, bare_id: Option<&str>) -> Result<ModelBundle> {
        if path.is_file() {
            return Self::load_bare(path, bare_id);
        }
        if path.exists() && !path.is_dir() {
            return Err(Error::model(
                path,
                "is not a regular file (a FIFO or device is not read as a model)",
            ));
        }
        if !path.is_dir() {
            return Err(Error::model(
                path,
                "is not a model bundle directory or model file (train one with `audience train --out DIR`)",
            ));
        }
        let manifest_path = path.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::model(&manifest_path, format!("malformed manifest: {e}")))?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(Error::model(
                &manifest_path,
                format!(
                    "bundle format {} is newer than this audience understands ({FORMAT_VERSION}); upgrade audience",
                    manifest.format_version
                ),
            ));
        }
        if let Some((feature, value)) = manifest.features.repeated_category() {
            return Err(Error::model(
                &manifest_path,
                format!("feature {feature:?} lists the category {value:?} twice"),
            ));
        }
        let model_path = path.join(MODEL_FILE);
        let (model_text, ensemble) = read_model(&model_path)?;
        let expected: Vec<&str> = manifest.features.names();
        if ensemble.feature_names != expected {
            return Err(Error::model(
                &model_path,
                format!(
                    "the model's features ({}) differ from the manifest's ({})",
                    ensemble.feature_names.join(", "),
                    expected.join(", ")
                ),
            ));
        }
        Ok(ModelBundle {
            source: path.to_path_buf(),
            features: manifest.features.clone(),
            id: manifest.id.clone(),
            manifest: Some(manifest),
            model_text,
            ensemble,
            booster: std::sync::OnceLock::new(),
            compiled: std::sync::OnceLock::new(),
            machine_code: std::sync::OnceLock::new(),
        })
    }

    /// LightGBM's booster for this model, made on first use from the checked, rewritten text.
    pub fn booster(&self) -> Result<&Booster> {
        self.booster
            .get_or_init(|| {
                Booster::from_model_text(&self.ensemble.to_model_text()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::model(&self.source, e.clone()))
    }

    /// The compiled trees (with the masks for batches), compiling them on first use.
    pub fn compiled(&self) -> Option<&CompiledTrees> {
        self.compile_once(&self.compiled, true)
    }

    /// The compiled trees without the masks, compiling them on first use.
    pub fn machine_code(&self) -> Option<&CompiledTrees> {
        self.compile_once(&self.machine_code, false)
    }

    fn compile_once<'a>(
        &self,
        cell: &'a std::sync::OnceLock<Option<CompiledTrees>>,
        masks: bool,
    ) -> Option<&'a CompiledTrees> {
        cell.get_or_init(|| match self.ensemble.compile() {
            Ok(code) if masks => Some(code),
            Ok(code) => Some(code.without_masks()),
            Err(e) => {
                eprintln!("note: the trees are walked, not compiled: {e}");
                None
            }
        })
        .as_ref()
    }

    fn load_bare(path: &Path, id: Option<&str>) -> Result<ModelBundle> {
        let (model_text, ensemble) = read_model(path)?;
        let categorical = &ensemble.categorical_features;
        // `pandas_categorical:[]` (or `null`): Python trained on integer-coded columns of a plain
        // DataFrame, and scores them as the codes they are; so do we.
        let given = ensemble
            .pandas_categorical
            .as_ref()
            .filter(|lists| !lists.is_empty());
        let lists = given.filter(|lists| lists.len() == categorical.len());
        if let Some(lists) = given
            && lists.len() != categorical.len()
        {
            return Err(Error::model(
                path,
                format!(
                    "pandas_categorical has {} category lists but the model has {} categorical features",
                    lists.len(),
                    categorical.len()
                ),
            ));
        }
        let mut features = Vec::new();
        for (i, name) in ensemble.feature_names.iter().enumerate() {
            let position = categorical.iter().position(|&c| c == i);
            let feature = match position {
                None => Feature {
                    name: name.clone(),
                    kind: FeatureKind::Numeric,
                    categories: Vec::new(),
                    numeric_categories: false,
                    codes: false,
                },
                Some(k) => match lists {
                    Some(lists) => {
                        let values = &lists[k];
                        Feature {
                            name: name.clone(),
                            kind: FeatureKind::Categorical,
                            numeric_categories: values.iter().all(|v| v.is_number()),
                            categories: values
                                .iter()
                                .map(|v| match v {
                                    serde_json::Value::String(s) => s.clone(),
                                    serde_json::Value::Number(n) => match n.as_f64() {
                                        Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => {
                                            (f as i64).to_string()
                                        }
                                        _ => n.to_string(),
                                    },
                                    other => other.to_string(),
                                })
                                .collect(),
                            codes: false,
                        }
                    }
                    // No category lists: values are the integer codes LightGBM saw.
                    None => Feature {
                        name: name.clone(),
                        kind: FeatureKind::Categorical,
                        categories: Vec::new(),
                        numeric_categories: false,
                        codes: true,
                    },
                },
            };
            features.push(feature);
        }
        let features = FeatureSet {
            features,
            na_values: Vec::new(),
        };
        if let Some((feature, value)) = features.repeated_category() {
            return Err(Error::model(
                path,
                format!("pandas_categorical lists the category {value:?} of {feature:?} twice"),
            ));
        }
        Ok(ModelBundle {
            source: path.to_path_buf(),
            manifest: None,
            features,
            id: IdInfo {
                column: id.unwrap_or(crate::data::ROW_ID).to_string(),
                generated: id.is_none(),
            },
            model_text,
            ensemble,
            booster: std::sync::OnceLock::new(),
            compiled: std::sync::OnceLock::new(),
            machine_code: std::sync::OnceLock::new(),
        })
    }

    /// Probabilities for an encoded matrix with the chosen evaluator.
    pub fn predict(&self, matrix: &Matrix, engine: Engine) -> Result<Vec<f64>> {
        match engine {
            Engine::Native => Ok(self.ensemble.predict_using(matrix, self.compiled())),
            Engine::Compiled => Ok(self.ensemble.predict_using(matrix, self.machine_code())),
            Engine::Walk => Ok(self.ensemble.predict(matrix)),
            Engine::LightGbm => self.booster()?.predict(matrix),
        }
    }
}

/// The largest model file read (a 20,000-tree model of 255 leaves is about 400 MB).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Reads a model file (a regular file of at most [`MAX_MODEL_BYTES`]: not a FIFO or a device,
/// which could be read forever) and parses and checks it.
fn read_model(path: &Path) -> Result<(String, TreeEnsemble)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::model(
            path,
            "is not a regular file (a FIFO or device is not read as a model)",
        ));
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::model(
            path,
            format!(
                "is {} bytes, more than the {MAX_MODEL_BYTES} a model file may hold",
                meta.len()
            ),
        ));
    }
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_MODEL_BYTES + 1),
        &mut text,
    )
    .map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > MAX_MODEL_BYTES {
        return Err(Error::model(
            path,
            "grew past the size a model file may hold while being read",
        ));
    }
    let ensemble = TreeEnsemble::parse(&text).map_err(|e| Error::model(path, e.0))?;
    Ok((text, ensemble))
}

/// LightGBM's model text followed by the `pandas_categorical:` line, as Python's package writes it.
pub fn model_txt(lightgbm_text: &str, features: &FeatureSet) -> String {
    format!(
        "{lightgbm_text}\npandas_categorical:{}\n",
        python_json(&features.pandas_categorical())
    )
}

/// JSON as Python's `json.dumps` prints it (", " between items, non-ASCII escaped), so the
/// trailing line is byte-for-byte what Python's lightgbm would write for the same categories.
pub fn python_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        serde_json::Value::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 || !c.is_ascii() => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_json_matches_json_dumps() {
        // json.dumps([["a", "é\"x"], [1, 2]]) == '[["a", "\\u00e9\\"x"], [1, 2]]'
        assert_eq!(
            python_json(&json!([["a", "é\"x"], [1, 2]])),
            r#"[["a", "\u00e9\"x"], [1, 2]]"#
        );
        assert_eq!(python_json(&json!(["😀"])), r#"["\ud83d\ude00"]"#);
        assert_eq!(python_json(&json!([])), "[]");
    }
}
