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

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::data::encode::{FeatureKind, Matrix};
use crate::data::vocabulary::Vocabulary;
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
    /// A connection on which nothing arrives for this long is closed; a request body must
    /// arrive within twice this (`AUDIENCE_READ_TIMEOUT_SECONDS`, default 30).
    pub read_timeout: std::time::Duration,
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
            read_timeout: var("AUDIENCE_READ_TIMEOUT_SECONDS")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(DEFAULT_READ_TIMEOUT, std::time::Duration::from_secs_f64),
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
    codes: Vec<Option<Vocabulary>>,
}

/// The server's routes over a loaded model.
pub fn router(bundle: ModelBundle, settings: ServeSettings) -> Router {
    let codes = bundle
        .features
        .features
        .iter()
        .map(|f| {
            (f.kind == FeatureKind::Categorical && !f.codes)
                .then(|| Vocabulary::new(f.categories.iter().map(String::as_bytes)))
        })
        .collect();
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
        // The handler reads the body itself, within the payload limit and a deadline.
        .layer(DefaultBodyLimit::disable())
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

/// The default idle read timeout (see `ServeSettings::read_timeout`).
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn invocations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.settings.max_payload_bytes;
    // A claimed length over the limit is refused before a byte of the body is read.
    let claimed =
        header_value(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if claimed.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let deadline = state.settings.read_timeout * 2;
    let body = match tokio::time::timeout(deadline, read_body(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge)) => return too_large(limit),
        Ok(Err(BodyError::Broken)) | Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive in full within {} s\n",
                    deadline.as_secs_f64()
                ),
            )
                .into_response();
        }
    };
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

enum BodyError {
    /// More bytes than the payload limit.
    TooLarge,
    /// The connection failed or went silent before the body was complete.
    Broken,
}

/// The request body, at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if bytes.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the payload is larger than {} MB (SAGEMAKER_MAX_PAYLOAD_IN_MB)\n",
            limit / (1024 * 1024)
        ),
    )
        .into_response()
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

/// A field as LightGBM's input, by the rule `score` and training use (`encode::number_of`,
/// `encode::category_of`): numbers parsed, categories coded as written, empty, `na_values` and
/// unseen categories missing.
fn encode_value(
    state: &AppState,
    feature: usize,
    field: &str,
    record: usize,
) -> Result<f64, BadRecord> {
    let features = &state.bundle.features;
    match &state.codes[feature] {
        Some(codes) => Ok(crate::data::encode::category_of(field, &features.na_values)
            .and_then(|v| codes.get(v.as_bytes()))
            .map_or(f64::NAN, |c| c as f64)),
        None => {
            crate::data::encode::number_of(field, &features.na_values).ok_or_else(|| BadRecord {
                record,
                message: format!(
                    "{:?} is not a number (feature {})",
                    field, features.features[feature].name
                ),
            })
        }
    }
}

/// At most this many connections are served at once; more wait in the system's queue.
pub const MAX_CONNECTIONS: usize = 128;

/// A TCP listener that serves at most [`MAX_CONNECTIONS`] connections at a time and closes a
/// connection that sends nothing for `read_timeout` while a read waits (a request's headers or
/// body): slow or stalled clients cannot hold the server.
pub struct BoundedListener {
    inner: tokio::net::TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
    read_timeout: std::time::Duration,
}

impl BoundedListener {
    pub fn new(
        inner: tokio::net::TcpListener,
        read_timeout: std::time::Duration,
    ) -> BoundedListener {
        BoundedListener {
            inner,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            read_timeout,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = TimedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        TimedStream {
                            inner: stream,
                            timeout: self.read_timeout,
                            idle: None,
                            linger: None,
                            drained: 0,
                            _slot: permit,
                        },
                        address,
                    );
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// How long a connection the server closes keeps reading (and discarding) what the client still
/// sends, and at most how much: see `TimedStream::poll_shutdown`.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
pub const LINGER_BYTES: usize = 128 * 1024 * 1024;

/// A connection that fails a read left waiting for `timeout`, closes with a lingering close, and
/// frees its slot when dropped.
pub struct TimedStream {
    inner: tokio::net::TcpStream,
    timeout: std::time::Duration,
    idle: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Set once the server's side of the connection is shut down (FIN sent): the linger's end.
    linger: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    drained: usize,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for TimedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.idle = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "nothing received for too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl tokio::io::AsyncWrite for TimedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// A lingering close, as HTTP servers do: when the server answers before reading a request's
    /// whole body (a 413 on its claimed length), closing at once with unread bytes makes the
    /// kernel reset the connection, and a client still sending gets a broken pipe instead of the
    /// answer. So the write side is shut down first (the client sees the answer end), then what
    /// the client still sends is read and discarded until it closes, for at most [`LINGER`] and
    /// [`LINGER_BYTES`].
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::{Poll, ready};
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(std::pin::Pin::new(&mut this.inner).poll_shutdown(cx))?;
        }
        let linger = this
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if linger.as_mut().poll(cx).is_ready() || this.drained >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.drained += buf.filled().len(),
                // The client reset the connection: nothing more to wait for.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
