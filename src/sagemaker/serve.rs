//! The SageMaker inference container: an HTTP server with /ping, /execution-parameters and
//! /invocations (reference/sagemaker-byoc.md, section 2.2).
//!
//! /invocations takes `text/csv` (one record per line; a byte-order mark, CRLF and a missing
//! final newline are fine; columns in the model's feature order, or a first line naming them) or
//! `application/jsonlines` (an object by feature name, or an array in feature order, per line),
//! and answers exactly one line per input record, in order, which is what batch transform's
//! JoinSource needs. A header line is a record too (SageMaker sends it as one): its answer is
//! the word `score`, so a joined file keeps a header. Scoring runs on the blocking pool, so /ping
//! answers at once even while large payloads are scored.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::data::encode::{FeatureKind, Matrix};
use crate::model::bundle::{Engine, ModelBundle};
use crate::sagemaker::dataprocessing::LineSplitter;

/// SageMaker's default MaxPayloadInMB.
pub const DEFAULT_MAX_PAYLOAD_MB: usize = 6;

/// What the server was told by its environment.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub max_payload_bytes: usize,
    /// `MULTI_RECORD` or `SINGLE_RECORD` (SAGEMAKER_BATCH_STRATEGY), reported back as set.
    pub batch_strategy: String,
    pub max_concurrent: usize,
}

impl ServeSettings {
    /// From SAGEMAKER_MAX_PAYLOAD_IN_MB, SAGEMAKER_BATCH_STRATEGY and
    /// SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, with SageMaker's defaults.
    pub fn from_env() -> ServeSettings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mb = var("SAGEMAKER_MAX_PAYLOAD_IN_MB")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_PAYLOAD_MB);
        ServeSettings {
            // 0 means "unlimited" (streamed) to SageMaker; cap it at 100 MB, SageMaker's maximum.
            max_payload_bytes: if mb == 0 { 100 } else { mb } * 1024 * 1024,
            batch_strategy: var("SAGEMAKER_BATCH_STRATEGY")
                .map(|v| v.trim().to_uppercase())
                .unwrap_or_else(|| "MULTI_RECORD".into()),
            max_concurrent: var("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }
}

struct AppState {
    bundle: ModelBundle,
    settings: ServeSettings,
    /// Payloads scored at once: one per core, so a burst of requests queues instead of crowding
    /// out the threads that answer /ping.
    scoring: tokio::sync::Semaphore,
    /// Category code of each value, per categorical feature (None for numeric features).
    codes: Vec<Option<HashMap<String, usize>>>,
}

/// The server's routes over a loaded model.
pub fn router(bundle: ModelBundle, settings: ServeSettings) -> Router {
    let codes = bundle
        .features
        .features
        .iter()
        .map(|f| {
            (f.kind == FeatureKind::Categorical && !f.codes).then(|| {
                f.categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), i))
                    .collect()
            })
        })
        .collect();
    let limit = settings.max_payload_bytes;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = Arc::new(AppState {
        bundle,
        settings,
        scoring: tokio::sync::Semaphore::new(cores),
        codes,
    });
    Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/execution-parameters", get(execution_parameters))
        .route("/invocations", post(invocations))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn execution_parameters(State(state): State<Arc<AppState>>) -> Response {
    let s = &state.settings;
    axum::Json(serde_json::json!({
        "MaxConcurrentTransforms": s.max_concurrent,
        "BatchStrategy": s.batch_strategy,
        "MaxPayloadInMB": s.max_payload_bytes / (1024 * 1024),
    }))
    .into_response()
}

/// A request that cannot be scored, with the 1-based record it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub record: usize,
    pub message: String,
}

async fn invocations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = header_value(&headers, header::CONTENT_TYPE).unwrap_or("text/csv");
    let accept = header_value(&headers, header::ACCEPT)
        .filter(|a| !a.contains('*'))
        .unwrap_or(content_type);
    let jsonlines = |t: &str| t.contains("jsonlines") || t.contains("json");
    let input_json = jsonlines(content_type);
    if !input_json && !content_type.contains("csv") && !content_type.starts_with("text/plain") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {content_type:?}: send text/csv or application/jsonlines\n"),
        )
            .into_response();
    }
    let output_json = jsonlines(accept);
    let Ok(_permit) = state.scoring.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let state_for_work = Arc::clone(&state);
    let work = tokio::task::spawn_blocking(move || {
        score_payload(&state_for_work, &body, input_json, output_json)
    });
    match work.await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                if output_json {
                    "application/jsonlines"
                } else {
                    "text/csv"
                },
            )],
            text,
        )
            .into_response(),
        Ok(Err(bad)) => (
            StatusCode::BAD_REQUEST,
            format!("record {}: {}\n", bad.record, bad.message),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scoring failed: {e}\n"),
        )
            .into_response(),
    }
}

fn header_value(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
}

/// One parsed record: feature values, or the header marker.
enum Parsed {
    Header,
    Values(Vec<f64>),
}

/// Scores a whole payload: one output line per input record.
fn score_payload(
    state: &AppState,
    body: &[u8],
    input_json: bool,
    output_json: bool,
) -> Result<String, BadRecord> {
    let text = std::str::from_utf8(body).map_err(|e| BadRecord {
        record: 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        message: "not valid UTF-8".into(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // A payload of records ends with a newline: the piece after it is not a record.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(BadRecord {
            record: 1,
            message: "the payload holds no record".into(),
        });
    }
    let features = &state.bundle.features.features;
    let mut order: Option<Vec<usize>> = None; // column -> feature, from a header line
    let mut splitter = LineSplitter::default();
    let mut parsed = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let record = i + 1;
        let p = if input_json {
            parse_json_record(state, line, record)?
        } else {
            parse_csv_record(state, line, record, &mut order, &mut splitter)?
        };
        parsed.push(p);
    }
    let values: Vec<f64> = parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Values(v) => Some(v.iter().copied()),
            Parsed::Header => None,
        })
        .flatten()
        .collect();
    let matrix = Matrix {
        rows: values.len() / features.len().max(1),
        cols: features.len(),
        values,
    };
    let scores = state
        .bundle
        .predict(&matrix, Engine::Native)
        .map_err(|e| BadRecord {
            record: 1,
            message: e.to_string(),
        })?;
    let mut scores = scores.into_iter();
    let mut out = String::with_capacity(parsed.len() * 20);
    for p in &parsed {
        match p {
            Parsed::Header if output_json => out.push_str("{\"score\":\"score\"}"),
            Parsed::Header => out.push_str("score"),
            Parsed::Values(_) => {
                let s = scores.next().unwrap_or(f64::NAN);
                if output_json {
                    out.push_str(&format!("{{\"score\":{s}}}"));
                } else {
                    out.push_str(&s.to_string());
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn parse_csv_record(
    state: &AppState,
    line: &str,
    record: usize,
    order: &mut Option<Vec<usize>>,
    splitter: &mut LineSplitter,
) -> Result<Parsed, BadRecord> {
    let features = &state.bundle.features.features;
    let fields = splitter.split(line).map_err(|e| BadRecord {
        record,
        message: format!("cannot read the CSV record: {e}"),
    })?;
    if line.trim().is_empty() {
        return Err(BadRecord {
            record,
            message: "empty record".into(),
        });
    }
    // A first line naming every feature is a header: it sets the column order.
    if record == 1 {
        let names: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
        if features.iter().all(|f| names.contains(&f.name.as_str())) {
            let mapping = names
                .iter()
                .map(|n| {
                    features
                        .iter()
                        .position(|f| f.name == *n)
                        .unwrap_or(usize::MAX)
                })
                .collect();
            *order = Some(mapping);
            return Ok(Parsed::Header);
        }
    }
    let mut values = vec![f64::NAN; features.len()];
    match order {
        Some(mapping) => {
            if fields.len() != mapping.len() {
                return Err(BadRecord {
                    record,
                    message: format!(
                        "{} fields, but the header has {}",
                        fields.len(),
                        mapping.len()
                    ),
                });
            }
            for (field, &target) in fields.iter().zip(mapping.iter()) {
                if target != usize::MAX {
                    values[target] = encode_value(state, target, field, record)?;
                }
            }
        }
        None => {
            if fields.len() != features.len() {
                return Err(BadRecord {
                    record,
                    message: format!(
                        "{} fields, expected {} (the model's features in order: {})",
                        fields.len(),
                        features.len(),
                        features
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                });
            }
            for (j, field) in fields.iter().enumerate() {
                values[j] = encode_value(state, j, field, record)?;
            }
        }
    }
    Ok(Parsed::Values(values))
}

fn parse_json_record(state: &AppState, line: &str, record: usize) -> Result<Parsed, BadRecord> {
    let features = &state.bundle.features.features;
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| BadRecord {
        record,
        message: format!("not a JSON line: {e}"),
    })?;
    let text = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let mut values = vec![f64::NAN; features.len()];
    match value {
        serde_json::Value::Object(map) => {
            for (j, f) in features.iter().enumerate() {
                if let Some(v) = map.get(&f.name) {
                    values[j] = encode_value(state, j, &text(v), record)?;
                }
            }
        }
        serde_json::Value::Array(items) => {
            if items.len() != features.len() {
                return Err(BadRecord {
                    record,
                    message: format!("{} values, expected {}", items.len(), features.len()),
                });
            }
            for (j, v) in items.iter().enumerate() {
                values[j] = encode_value(state, j, &text(v), record)?;
            }
        }
        _ => {
            return Err(BadRecord {
                record,
                message: "expected a JSON object or array".into(),
            });
        }
    }
    Ok(Parsed::Values(values))
}

/// A field as LightGBM's input: numbers parsed, categories coded, empty and unseen as missing.
fn encode_value(
    state: &AppState,
    feature: usize,
    field: &str,
    record: usize,
) -> Result<f64, BadRecord> {
    let field = field.trim();
    if field.is_empty() {
        return Ok(f64::NAN);
    }
    match &state.codes[feature] {
        Some(codes) => Ok(codes.get(field).map_or(f64::NAN, |&c| c as f64)),
        None => field.parse::<f64>().map_err(|_| BadRecord {
            record,
            message: format!(
                "{:?} is not a number (feature {})",
                field, state.bundle.features.features[feature].name
            ),
        }),
    }
}
