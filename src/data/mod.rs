//! Loading promotion histories (CSV or Parquet) through DataFusion, and reading labels and ids.
//!
//! CSV quirks handled here: a byte-order mark, CRLF, `;` or `,` (detected from the header), quoted
//! fields holding the delimiter, empty strings as missing, no final newline.

mod decode;
pub mod encode;
pub mod fingerprint;
mod ids;
mod infer;
pub mod scan;
pub mod vocabulary;

pub use fingerprint::IdFingerprint;
pub use ids::{Ids, id_hash, splitmix64};

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::{Error, Result};

/// The column made when the configuration names no id: 0-based position in the file.
pub const ROW_ID: &str = "row_id";

/// How many records DataFusion reads to guess column types.
const SCHEMA_INFER_RECORDS: usize = 100_000;
/// Files with at least this many records have their types inferred in parts (`infer`).
const PARALLEL_INFER_MIN_RECORDS: usize = 10_000;

/// Stack of each runtime thread (see `runtime`).
pub const WORKER_STACK_BYTES: usize = 256 << 20;

/// The shared async runtime DataFusion runs on. The library's API is synchronous.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            // DataFusion plans and evaluates expressions recursively: a generated rule of
            // thousands of OR terms needs a deep stack (only the pages used are committed).
            .thread_stack_size(WORKER_STACK_BYTES)
            .build()
            .expect("cannot start the async runtime")
    })
}

/// A DataFusion session that reads files in order: one partition per file, so batches come out
/// in file order (row order is part of our contract: ids, labels files, score output).
pub fn session() -> SessionContext {
    session_with_batch_rows(8192)
}

/// `session()` producing record batches of `rows` rows.
pub fn session_with_batch_rows(rows: usize) -> SessionContext {
    let config = datafusion::prelude::SessionConfig::new()
        .with_repartition_file_scans(false)
        .with_target_partitions(1)
        .with_batch_size(rows.max(1));
    SessionContext::new_with_config(config)
}

/// A whole table in memory, as one Arrow record batch, with the file it came from.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub batch: RecordBatch,
}

impl Table {
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The named column, or an error naming the file and the columns it does have.
    pub fn column(&self, name: &str, role: &str) -> Result<&ArrayRef> {
        self.batch.column_by_name(name).ok_or_else(|| {
            let have: Vec<&str> = self
                .batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            Error::data(
                &self.path,
                format!(
                    "no {role} column {name:?}{}; the columns are: {}",
                    did_you_mean(name, &have),
                    have.join(", ")
                ),
            )
        })
    }

    /// Appends `row_id` (0-based file order) unless a column of that name already exists.
    pub fn with_row_id(self) -> Result<Table> {
        if self.batch.column_by_name(ROW_ID).is_some() {
            return Err(Error::data(
                &self.path,
                format!("the file already has a {ROW_ID:?} column: name it as the id (data.id)"),
            ));
        }
        let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            0..self.batch.num_rows() as u64,
        ));
        let mut fields: Vec<Field> = self
            .batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ROW_ID, DataType::UInt64, false));
        let mut columns = self.batch.columns().to_vec();
        columns.push(ids);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::data(&self.path, e.to_string()))?;
        Ok(Table {
            path: self.path,
            batch,
        })
    }

    /// Rows `rows` of this table, in that order.
    pub fn take(&self, rows: &[usize]) -> Result<Table> {
        let indices = UInt64Array::from_iter_values(rows.iter().map(|&r| r as u64));
        let columns = self
            .batch
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::data(&self.path, e.to_string()))?;
        let batch = RecordBatch::try_new(self.batch.schema(), columns)
            .map_err(|e| Error::data(&self.path, e.to_string()))?;
        Ok(Table {
            path: self.path.clone(),
            batch,
        })
    }
}

/// What a loader needs to know beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// CSV delimiter; detected from the header line when `None`.
    pub delimiter: Option<u8>,
    /// Columns read as text whatever they look like: the label, the id, declared categoricals.
    pub text_columns: Vec<String>,
    /// Field texts read as missing besides the empty field (`data.na_values`), so a numeric
    /// column holding "n/a" stays numeric.
    pub na_values: Vec<String>,
}

/// The storage format, from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("parquet") || ext.eq_ignore_ascii_case("pq") => {
                Format::Parquet
            }
            _ => Format::Csv,
        }
    }
}

/// The columns nearest to a misspelt `name`: within an edit distance of a third of its length
/// (at least 1, at most 3), ignoring case; the nearest first, at most three.
pub fn nearest_names<'a>(name: &str, columns: &[&'a str]) -> Vec<&'a str> {
    let folded = name.to_lowercase();
    let limit = (folded.chars().count() / 3).clamp(1, 3);
    let mut near: Vec<(usize, &str)> = columns
        .iter()
        .map(|c| (strsim::levenshtein(&folded, &c.to_lowercase()), *c))
        .filter(|&(d, _)| d <= limit)
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, c)| c).collect()
}

/// " (did you mean X?)" for a column name not found, when some column is near it.
pub fn did_you_mean(name: &str, columns: &[&str]) -> String {
    match nearest_names(name, columns).as_slice() {
        [] => String::new(),
        names => format!(
            " (did you mean {}?)",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// Loads a whole table. Numbers become Float64 (so `1` and `1.5` in one column never clash), the
/// `text_columns` stay text, everything else keeps the type DataFusion infers.
pub fn load_table(path: &Path, options: &LoadOptions) -> Result<Table> {
    let typed = table_schema(&session(), path, options)?;
    load_table_typed(path, options, &typed)
}

/// [`load_table`] with the schema [`table_schema`] gave for the same file and options, for a
/// caller that needed it first (inference reads up to `SCHEMA_INFER_RECORDS` records).
fn load_table_typed(path: &Path, options: &LoadOptions, typed: &SchemaRef) -> Result<Table> {
    let ctx = session();
    let typed = typed.clone();
    // CSV is decoded by our own reader where it reads the file exactly as DataFusion's would;
    // where it gives up, DataFusion reads it (and names what is wrong with it).
    if Format::of(path) == Format::Csv {
        let layout = CsvLayout::sniff(path, options.delimiter)?;
        if let Some(batch) = decode::decode_csv(path, layout.delimiter, &typed, &options.na_values)?
        {
            return Ok(Table {
                path: path.to_path_buf(),
                batch,
            });
        }
    }
    let batch = read_with_datafusion(&ctx, path, options, &typed)?;
    Ok(Table {
        path: path.to_path_buf(),
        batch,
    })
}

/// The whole file read by DataFusion with the schema `table_schema` gives it.
fn read_with_datafusion(
    ctx: &SessionContext,
    path: &Path,
    options: &LoadOptions,
    typed: &SchemaRef,
) -> Result<RecordBatch> {
    // DataFusion's CSV decoder does not apply the null pattern that its type inference honours:
    // with na_values, numeric and true/false columns are read as text and parsed here, numbers
    // by the one value rule.
    let (schema, parsed) = if options.na_values.is_empty() {
        (typed.clone(), Vec::new())
    } else {
        read_as_text(typed, &[DataType::Float64, DataType::Boolean])
    };
    let batches = match read_csv_in_parallel(path, options, &schema, PARALLEL_READ_MIN_BYTES)? {
        Some(partitions) => partitions.into_iter().flatten().collect(),
        None => runtime().block_on(async {
            let df = open_frame(ctx, path, options, &schema).await?;
            df.collect()
                .await
                .map_err(|e| csv_error(path, options.delimiter, e))
        })?,
    };
    let read_schema = batches.first().map_or(schema.clone(), |b| b.schema());
    let batch = concat_columnwise(&read_schema, batches).map_err(|e| Error::data(path, e))?;
    // Parquet keeps its own types: bring them to the same shape as CSV's.
    let batch = conform(path, batch, &schema)?;
    if options.na_values.is_empty() {
        Ok(batch)
    } else {
        apply_na_values(path, batch, typed, &parsed, &options.na_values)
    }
}

/// `schema` with its Float64 columns read as text, and their positions.
pub fn numbers_as_text(schema: &SchemaRef) -> (SchemaRef, Vec<usize>) {
    read_as_text(schema, &[DataType::Float64])
}

/// `schema` with its columns of the types `types` read as text, and their positions.
fn read_as_text(schema: &SchemaRef, types: &[DataType]) -> (SchemaRef, Vec<usize>) {
    let mut positions = Vec::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if types.contains(f.data_type()) {
                positions.push(i);
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    (Arc::new(Schema::new(fields)), positions)
}

/// Applies `na_values` to a batch whose `parsed` columns were read as text (`read_as_text`):
/// they are parsed back into the type `typed` gives them, numbers by the one value rule
/// (`encode::number_of`), true/false in any case as booleans, a na value as missing, and any
/// other text an error naming the row; in text columns the na values become nulls.
fn apply_na_values(
    path: &Path,
    batch: RecordBatch,
    typed: &SchemaRef,
    parsed: &[usize],
    na_values: &[String],
) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (i, (column, field)) in batch.columns().iter().zip(typed.fields()).enumerate() {
        let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
            columns.push(column.clone());
            continue;
        };
        if parsed.contains(&i) && field.data_type() == &DataType::Boolean {
            let mut values = Vec::with_capacity(text.len());
            for (row, value) in text.iter().enumerate() {
                values.push(match value {
                    None => None,
                    Some(v) if na_values.iter().any(|n| n == v) => None,
                    Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
                    Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
                    Some(v) => {
                        return Err(Error::data(
                            path,
                            format!(
                                "data row {}: column {:?} holds {v:?}, which is neither true nor false",
                                row + 1,
                                field.name()
                            ),
                        ));
                    }
                });
            }
            columns.push(Arc::new(arrow::array::BooleanArray::from(values)) as ArrayRef);
        } else if parsed.contains(&i) {
            let mut values = Vec::with_capacity(text.len());
            for (row, value) in text.iter().enumerate() {
                values.push(match value {
                    None => None,
                    Some(v) => {
                        let x = encode::number_of(v, na_values).ok_or_else(|| {
                            Error::data(
                                path,
                                format!(
                                    "data row {}: column {:?} holds {v:?}, which is not a number",
                                    row + 1,
                                    field.name()
                                ),
                            )
                        })?;
                        (!x.is_nan()).then_some(x)
                    }
                });
            }
            columns.push(Arc::new(arrow::array::Float64Array::from(values)) as ArrayRef);
        } else {
            let values: StringArray = text
                .iter()
                .map(|v| v.filter(|v| !na_values.iter().any(|n| n == v)))
                .collect();
            columns.push(Arc::new(values) as ArrayRef);
        }
    }
    RecordBatch::try_new(typed.clone(), columns).map_err(|e| Error::data(path, e.to_string()))
}

/// CSV files smaller than this are read on one core: splitting them saves less than it costs.
const PARALLEL_READ_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a CSV file on every core, in file order, when that is safe: DataFusion cuts the file into
/// byte ranges, one per partition, each starting at the first line break inside its range, and the
/// partitions (returned in order) are put back one after the other. A line break inside a quoted field would make a
/// range start mid-record, so any file holding a quote character is left to the one-partition
/// reader (`None`), as are small files and files it cannot parse (whose error message the
/// one-partition reader gives with the right line number).
fn read_csv_in_parallel(
    path: &Path,
    options: &LoadOptions,
    schema: &SchemaRef,
    min_bytes: u64,
) -> Result<Option<Vec<Vec<RecordBatch>>>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if Format::of(path) != Format::Csv || cores < 2 || size < min_bytes || holds_quote(path)? {
        return Ok(None);
    }
    let mut config = datafusion::prelude::SessionConfig::new()
        .with_repartition_file_scans(true)
        .with_repartition_file_min_size(usize::try_from(min_bytes / 2).unwrap_or(usize::MAX))
        .with_target_partitions(cores)
        .with_batch_size(8192);
    // Partition i must read byte range i: by default an idle partition steals a sibling's range
    // at run time (work stealing), and under load the halves of a file came back swapped.
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    let ctx = SessionContext::new_with_config(config);
    let ext = extension_of(path);
    let csv = CsvLayout::sniff(path, options.delimiter)?;
    let read = csv
        .read_options(&ext, &options.na_values)
        .newlines_in_values(false)
        .schema(schema);
    let file = path_str(path)?;
    let partitions = runtime().block_on(async {
        let df = ctx.read_csv(file, read).await.ok()?;
        df.collect_partitioned().await.ok()
    });
    Ok(partitions)
}

/// Whether the file holds a `"` anywhere (read in 1 MiB blocks, searched with memchr).
fn holds_quote(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(false);
        }
        if memchr::memchr(b'"', &block[..n]).is_some() {
            return Ok(true);
        }
    }
}

/// The batches as one, built a column at a time (columns side by side on every core), each
/// column's pieces freed as soon as it is joined: the peak is the table plus the columns being
/// joined, not two tables (`concat_batches` holds both).
fn concat_columnwise(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> std::result::Result<RecordBatch, String> {
    use rayon::prelude::*;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut by_column: Vec<Vec<ArrayRef>> =
        vec![Vec::with_capacity(batches.len()); schema.fields().len()];
    for batch in batches {
        for (pieces, column) in by_column.iter_mut().zip(batch.columns()) {
            pieces.push(column.clone());
        }
    }
    let columns = by_column
        .into_par_iter()
        .zip(schema.fields().par_iter())
        .map(|(parts, field)| match parts.len() {
            0 => Ok(arrow::array::new_empty_array(field.data_type())),
            1 => Ok(parts.into_iter().next().expect("one part")),
            _ => {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                let joined = arrow::compute::concat(&refs).map_err(|e| e.to_string());
                // The pieces go back to the system as each column is joined, not after the last:
                // otherwise the allocator holds them all beside the whole table.
                drop(refs);
                drop(parts);
                crate::memory::release_freed_memory();
                joined
            }
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(|e| e.to_string())
}

/// A DataFusion frame over one file, read with `schema` (CSV; Parquet keeps its own types).
pub async fn open_frame(
    ctx: &SessionContext,
    path: &Path,
    options: &LoadOptions,
    schema: &Schema,
) -> Result<datafusion::prelude::DataFrame> {
    let ext = extension_of(path);
    let delimiter = options.delimiter;
    match Format::of(path) {
        Format::Csv => {
            let csv = CsvLayout::sniff(path, delimiter)?;
            let read = csv.read_options(&ext, &options.na_values).schema(schema);
            ctx.read_csv(path_str(path)?, read).await
        }
        Format::Parquet => {
            ctx.read_parquet(
                path_str(path)?,
                ParquetReadOptions::default().file_extension(&ext),
            )
            .await
        }
    }
    .map_err(|e| csv_error(path, delimiter, e))
}

/// The schema `load_table` gives this file: names from the header (without a byte-order mark),
/// numbers as Float64, `text_columns` as Utf8.
pub fn table_schema(ctx: &SessionContext, path: &Path, options: &LoadOptions) -> Result<SchemaRef> {
    // Inference reads the file: a FIFO or a device is refused before it blocks.
    check_readable(path)?;
    let inferred: Schema = runtime().block_on(async {
        let ext = extension_of(path);
        match Format::of(path) {
            Format::Csv => {
                let csv = CsvLayout::sniff(path, options.delimiter)?;
                // A large file's first records are inferred in parts, one per core, where that
                // gives DataFusion's types for sure; otherwise DataFusion infers them.
                let null_regex = na_regex(&options.na_values);
                let types = match infer::infer_in_parts(
                    path,
                    csv.delimiter,
                    null_regex.as_deref(),
                    csv.header.len(),
                    SCHEMA_INFER_RECORDS,
                    PARALLEL_INFER_MIN_RECORDS,
                )? {
                    Some(types) => types,
                    None => {
                        let df = ctx
                            .read_csv(
                                path_str(path)?,
                                csv.read_options(&ext, &options.na_values)
                                    .schema_infer_max_records(SCHEMA_INFER_RECORDS),
                            )
                            .await
                            .map_err(|e| csv_error(path, options.delimiter, e))?;
                        df.schema()
                            .fields()
                            .iter()
                            .map(|f| f.data_type().clone())
                            .collect()
                    }
                };
                // Names from our header, which has the BOM removed (DataFusion's keeps it).
                let fields: Vec<Field> = csv
                    .header
                    .iter()
                    .zip(types)
                    .map(|(name, t)| Field::new(name, t, true))
                    .collect();
                Ok::<Schema, Error>(Schema::new(fields))
            }
            Format::Parquet => {
                let df = ctx
                    .read_parquet(
                        path_str(path)?,
                        ParquetReadOptions::default().file_extension(&ext),
                    )
                    .await
                    .map_err(|e| Error::datafusion(path, e))?;
                Ok(df.schema().as_arrow().clone())
            }
        }
    })?;
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let text = options.text_columns.iter().any(|c| c == f.name());
            let data_type = if text {
                DataType::Utf8
            } else {
                normal_type(f.data_type())
            };
            Field::new(f.name(), data_type, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The schema the scorer reads `path` with. It knows which columns it needs as numbers (the
/// model's numeric features) and reads a CSV's numbers itself, by the value rule; what it must
/// learn from the file is which of those columns hold booleans, read as 1 and 0 as training
/// read them: a numeric column is Boolean when every non-empty value of the first records is
/// `true` or `false` in any case (at least one), as the CSV decoder reads booleans. Every other
/// column is Utf8. Sampling stops as soon as no column can still be Boolean. Parquet keeps its
/// own types (`table_schema`).
pub fn scoring_schema(
    ctx: &SessionContext,
    path: &Path,
    options: &LoadOptions,
    numeric: &[&str],
) -> Result<SchemaRef> {
    if Format::of(path) == Format::Parquet {
        return table_schema(ctx, path, options);
    }
    let csv = CsvLayout::sniff(path, options.delimiter)?;
    // Per column: None when it is not sampled (not numeric, or a text column); Some(false)
    // while only empty values were seen, Some(true) once a boolean was; it drops to None at
    // its first other value.
    let mut booleans: Vec<Option<bool>> = csv
        .header
        .iter()
        .map(|name| {
            (numeric.contains(&name.as_str()) && !options.text_columns.contains(name))
                .then_some(false)
        })
        .collect();
    if booleans.iter().any(Option::is_some) {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(csv.delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(std::io::BufReader::with_capacity(1 << 16, file));
        let mut record = csv::ByteRecord::new();
        for _ in 0..SCHEMA_INFER_RECORDS {
            // A record the sample cannot read is left to the decoder, which names its line.
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            for (column, field) in booleans.iter_mut().zip(record.iter()) {
                if column.is_some() && !field.is_empty() {
                    let boolean =
                        field.eq_ignore_ascii_case(b"true") || field.eq_ignore_ascii_case(b"false");
                    *column = boolean.then_some(true);
                }
            }
            if booleans.iter().all(Option::is_none) {
                break;
            }
        }
    }
    let fields: Vec<Field> = csv
        .header
        .iter()
        .zip(&booleans)
        .map(|(name, boolean)| {
            let data_type = if *boolean == Some(true) {
                DataType::Boolean
            } else {
                DataType::Utf8
            };
            Field::new(name, data_type, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The type a column of type `t` is held in: all numbers as Float64, all strings as Utf8.
fn normal_type(t: &DataType) -> DataType {
    match t {
        t if t.is_numeric() => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => DataType::Utf8,
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// Casts each column of `batch` to the type `schema` gives it.
fn conform(path: &Path, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref().as_ref() == schema.as_ref() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c.as_ref(), f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::data(path, e.to_string()))?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::data(path, e.to_string()))
}

/// What the first line of a CSV file tells: the delimiter and the column names.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    pub delimiter: u8,
    pub header: Vec<String>,
}

impl CsvLayout {
    /// Reads the header line (skipping a byte-order mark) and detects the delimiter unless given.
    pub fn sniff(path: &Path, delimiter: Option<u8>) -> Result<CsvLayout> {
        check_readable(path)?;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = Vec::with_capacity(64 * 1024);
        file.by_ref()
            .take(1024 * 1024)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
        if head.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(Error::data(
                path,
                "the file is empty: expected a header line",
            ));
        }
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or(head);
        let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(first_line));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .from_reader(first_line);
        let mut record = csv::StringRecord::new();
        reader
            .read_record(&mut record)
            .map_err(|e| Error::data(path, format!("line 1: cannot read the header: {e}")))?;
        let header: Vec<String> = record
            .iter()
            .map(|s| s.trim_end_matches('\r').to_string())
            .collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::data(
                    path,
                    format!(
                        "line 1, column {}: the header has an empty column name",
                        i + 1
                    ),
                ));
            }
            if let Some(first) = seen.insert(name, i) {
                return Err(Error::data(
                    path,
                    format!(
                        "line 1: column name {name:?} appears twice (columns {} and {})",
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        Ok(CsvLayout { delimiter, header })
    }

    fn read_options<'a>(&self, ext: &'a str, na_values: &[String]) -> CsvReadOptions<'a> {
        CsvReadOptions::new()
            .has_header(true)
            .delimiter(self.delimiter)
            .file_extension(ext)
            .newlines_in_values(true)
            .null_regex(na_regex(na_values))
    }
}

/// A regular expression matching exactly the given texts (their regex syntax escaped) and the
/// empty field, for DataFusion's CSV reader to read them as nulls; None for none. (A null
/// pattern replaces the reader's own rule that an empty field is null: without the empty
/// alternative, one empty age among numbers made the column text.)
fn na_regex(na_values: &[String]) -> Option<String> {
    if na_values.is_empty() {
        return None;
    }
    let escaped: Vec<String> = na_values
        .iter()
        .map(|v| {
            v.chars()
                .map(|c| {
                    if r"\.+*?()|[]{}^$#&-~".contains(c) {
                        format!("\\{c}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    Some(format!("^(?:{}|)$", escaped.join("|")))
}

/// The candidate (`,` `;` tab `|`) seen most often outside quotes in the header line.
pub fn detect_delimiter(line: &[u8]) -> u8 {
    let candidates = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..4)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Labels as 0/1, from a column of any type; values are compared as trimmed, case-insensitive text.
pub fn read_labels(
    table: &Table,
    label: &str,
    positive: &[String],
    negative: &[String],
) -> Result<Vec<u8>> {
    let column = table.column(label, "label")?;
    let text = text_array(column).map_err(|e| Error::data(&table.path, e))?;
    let positive: Vec<String> = positive.iter().map(|v| v.trim().to_lowercase()).collect();
    let negative: Vec<String> = negative.iter().map(|v| v.trim().to_lowercase()).collect();
    let mut labels = Vec::with_capacity(text.len());
    // A label column holds few distinct texts: each is compared once.
    let mut known: hashbrown::HashMap<&str, u8> = hashbrown::HashMap::new();
    for (row, value) in text.iter().enumerate() {
        let Some(value) = value else {
            return Err(Error::data(
                &table.path,
                format!("data row {}: the label {label:?} is missing", row + 1),
            ));
        };
        if let Some(&y) = known.get(value) {
            labels.push(y);
            continue;
        }
        let v = value.trim().to_lowercase();
        if positive.contains(&v) {
            labels.push(1);
            known.insert(value, 1);
        } else if negative.contains(&v) {
            labels.push(0);
            known.insert(value, 0);
        } else {
            return Err(Error::data(
                &table.path,
                format!(
                    "data row {}: label {label:?} is {value:?}, which is neither positive ({}) nor negative ({}); set data.positive / data.negative",
                    row + 1,
                    positive.join(", "),
                    negative.join(", ")
                ),
            ));
        }
    }
    Ok(labels)
}

/// The default positive label values.
pub fn default_positive() -> Vec<String> {
    ["1", "true", "yes", "y"].map(String::from).to_vec()
}

/// The default negative label values.
pub fn default_negative() -> Vec<String> {
    ["0", "false", "no", "n"].map(String::from).to_vec()
}

/// Ids as text, checked to be present and unique. The error names both rows of a duplicate.
pub fn read_ids(table: &Table, id: &str) -> Result<Ids> {
    let column = table.column(id, "id")?;
    let text = text_array(column).map_err(|e| Error::data(&table.path, e))?;
    if let Some(row) = (0..text.len()).find(|&row| text.is_null(row)) {
        return Err(Error::data(
            &table.path,
            format!("data row {}: the id {id:?} is missing", row + 1),
        ));
    }
    Ids::new(text.clone()).map_err(|(first, second)| {
        Error::data(
            &table.path,
            format!(
                "duplicate id {:?} in column {id:?} (data rows {} and {}): ids must be unique",
                text.value(second),
                first + 1,
                second + 1
            ),
        )
    })
}

/// Any column as optional text (numbers printed the way Arrow prints them: integers without `.0`).
pub fn as_strings(column: &ArrayRef) -> std::result::Result<Vec<Option<String>>, String> {
    let text = text_array(column)?;
    Ok(text.iter().map(|v| v.map(str::to_string)).collect())
}

/// Any column as an Arrow text column, printed as `as_strings` says.
pub fn text_array(column: &ArrayRef) -> std::result::Result<StringArray, String> {
    if let Some(text) = column.as_any().downcast_ref::<StringArray>() {
        return Ok(text.clone());
    }
    let column: ArrayRef = match column.data_type() {
        DataType::Float64 | DataType::Float32 => integral_floats_as_ints(column),
        _ => column.clone(),
    };
    let text = cast(column.as_ref(), &DataType::Utf8).map_err(|e| e.to_string())?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| "cannot read the column as text".to_string())
}

/// Floats that are all whole numbers print as integers (`5`, not `5.0`), as they stood in the file.
fn integral_floats_as_ints(column: &ArrayRef) -> ArrayRef {
    let Ok(floats) = cast(column.as_ref(), &DataType::Float64) else {
        return column.clone();
    };
    let floats = floats
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .expect("cast to Float64 gives a Float64Array");
    let integral = floats
        .iter()
        .flatten()
        .all(|v| v.fract() == 0.0 && v.abs() < 9.0e15);
    if integral {
        cast(floats, &DataType::Int64).unwrap_or_else(|_| column.clone())
    } else {
        column.clone()
    }
}

/// Replaces (or adds) `label` in `table` with the single label column of `labels`.
pub fn attach_labels(table: Table, labels: &Table, label: &str) -> Result<Table> {
    let column = match labels.batch.column_by_name(label) {
        Some(c) => c.clone(),
        None if labels.batch.num_columns() == 1 => labels.batch.column(0).clone(),
        None => {
            labels.column(label, "label")?;
            unreachable!("column() errs when the column is absent")
        }
    };
    if labels.num_rows() != table.num_rows() {
        return Err(Error::data(
            &labels.path,
            format!(
                "has {} label rows but {} has {} rows: the two files must line up row by row",
                labels.num_rows(),
                crate::remote::shown(&table.path),
                table.num_rows()
            ),
        ));
    }
    let schema = table.batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(table.batch.columns()) {
        if f.name() != label {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    fields.push(Field::new(label, column.data_type().clone(), true));
    columns.push(column);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::data(&table.path, e.to_string()))?;
    Ok(Table {
        path: table.path,
        batch,
    })
}

/// A promotion history ready for modelling: the table, 0/1 labels and unique ids, row by row.
#[derive(Debug, Clone)]
pub struct History {
    pub table: Table,
    pub labels: Vec<u8>,
    pub ids: Ids,
    pub id_column: String,
    /// True when `id_column` is the made-up `row_id`.
    pub id_generated: bool,
    pub label_column: String,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
    /// SHA-256 of the data file (and of the labels file, when separate).
    pub sha256: String,
    pub labels_sha256: Option<String>,
}

impl History {
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y == 1).count()
    }
}

/// Where a history comes from and how to read it.
#[derive(Debug, Clone)]
pub struct HistorySource<'a> {
    pub path: &'a Path,
    pub labels_path: Option<&'a Path>,
    pub delimiter: Option<u8>,
    pub label: &'a str,
    pub id: Option<&'a str>,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
    pub categorical: &'a [String],
    pub na_values: &'a [String],
}

impl<'a> HistorySource<'a> {
    /// The history `config` describes, read from `path` (and `config.data.labels_path`);
    /// positive and negative label values default to 1/true/yes/y and 0/false/no/n.
    pub fn from_config(
        config: &'a crate::config::Config,
        path: &'a Path,
    ) -> Result<HistorySource<'a>> {
        Ok(HistorySource {
            path,
            labels_path: config.data.labels_path.as_deref(),
            delimiter: config
                .data
                .delimiter
                .as_deref()
                .map(crate::config::delimiter_byte)
                .transpose()?,
            label: config.label()?,
            id: config.data.id.as_deref(),
            positive: config
                .data
                .positive
                .clone()
                .unwrap_or_else(default_positive),
            negative: config
                .data
                .negative
                .clone()
                .unwrap_or_else(default_negative),
            categorical: &config.data.categorical,
            na_values: &config.data.na_values,
        })
    }
}

/// Loads a history: the table (plus a separate labels file), labels checked against the
/// positive/negative values, ids checked for uniqueness (or `row_id` made).
pub fn load_history(source: &HistorySource) -> Result<History> {
    load_inspected_history(source, inspect_history(source)?)
}

/// What is learnt of a history's main file before its rows are read.
pub struct HistoryFile {
    /// The column types it is loaded with ([`table_schema`] with [`history_load_options`]).
    pub schema: SchemaRef,
    sha256: String,
}

/// A history's main file inspected: its column types inferred and its digest taken side by
/// side (DataFusion's inference, where `table_schema` leaves it the file, reads on one core). A
/// FIFO or a device is refused first, before either would block on it.
pub fn inspect_history(source: &HistorySource) -> Result<HistoryFile> {
    check_readable(source.path)?;
    let (schema, sha256) = rayon::join(
        || table_schema(&session(), source.path, &history_load_options(source)),
        || file_sha256(source.path),
    );
    Ok(HistoryFile {
        schema: schema?,
        sha256: sha256?,
    })
}

/// [`load_history`] of a file [`inspect_history`] has seen.
pub fn load_inspected_history(source: &HistorySource, file: HistoryFile) -> Result<History> {
    let options = history_load_options(source);
    let mut table = load_table_typed(source.path, &options, &file.schema)?;
    let mut labels_sha256 = None;
    if let Some(labels_path) = source.labels_path {
        let labels = load_table(labels_path, &options)?;
        labels_sha256 = Some(file_sha256(labels_path)?);
        table = attach_labels(table, &labels, source.label)?;
    }
    history_from_table(table, source, file.sha256, labels_sha256)
}

/// How a history's files are read: the label, id and categorical columns stay text.
pub fn history_load_options(source: &HistorySource) -> LoadOptions {
    let mut text_columns: Vec<String> = source.categorical.to_vec();
    text_columns.push(source.label.to_string());
    if let Some(id) = source.id {
        text_columns.push(id.to_string());
    }
    LoadOptions {
        delimiter: source.delimiter,
        text_columns,
        na_values: source.na_values.to_vec(),
    }
}

/// A history from a table already loaded (and labelled): labels checked, ids checked or made.
pub fn history_from_table(
    table: Table,
    source: &HistorySource,
    sha256: String,
    labels_sha256: Option<String>,
) -> Result<History> {
    if table.num_rows() == 0 {
        return Err(Error::data(&table.path, "has no data rows"));
    }
    let (table, id_column, id_generated) = match source.id {
        Some(id) => (table, id.to_string(), false),
        None => (table.with_row_id()?, ROW_ID.to_string(), true),
    };
    let labels = read_labels(&table, source.label, &source.positive, &source.negative)?;
    let ids = read_ids(&table, &id_column)?;
    Ok(History {
        table,
        labels,
        ids,
        id_column,
        id_generated,
        label_column: source.label.to_string(),
        positive: source.positive.clone(),
        negative: source.negative.clone(),
        sha256,
        labels_sha256,
    })
}

/// Several files as one table (a SageMaker channel, or training and validation rows): the same
/// columns in the same order, rows in file order, types those of the first file.
pub fn load_tables(paths: &[PathBuf], options: &LoadOptions) -> Result<Table> {
    let tables = paths
        .iter()
        .map(|p| load_table(p, options))
        .collect::<Result<Vec<_>>>()?;
    concat_tables(tables)
}

/// Tables one after another; later tables are cast to the first one's column types.
pub fn concat_tables(tables: Vec<Table>) -> Result<Table> {
    let mut tables = tables.into_iter();
    let Some(first) = tables.next() else {
        return Err(Error::Config("no data files".into()));
    };
    let schema = first.batch.schema();
    let mut batches = vec![first.batch.clone()];
    for t in tables {
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        if names(&t.batch.schema()) != names(&schema) {
            return Err(Error::data(
                &t.path,
                format!(
                    "its columns ({}) differ from {}'s ({})",
                    names(&t.batch.schema()).join(", "),
                    crate::remote::shown(&first.path),
                    names(&schema).join(", ")
                ),
            ));
        }
        batches.push(conform(&t.path, t.batch, &schema)?);
    }
    let batch = concat_columnwise(&schema, batches).map_err(|e| Error::data(&first.path, e))?;
    Ok(Table {
        path: first.path,
        batch,
    })
}

/// The SHA-256 of several files read one after another (one file: its own SHA-256).
pub fn files_sha256(paths: &[PathBuf]) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    for path in paths {
        // Opening a FIFO would wait for a writer (the digest is taken beside the load, which
        // refuses one the same way).
        check_readable(path)?;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        loop {
            let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The SHA-256 of a file, in lowercase hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    files_sha256(&[path.to_path_buf()])
}

/// A clear error when a file cannot be opened, before DataFusion produces a longer one.
pub fn check_readable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::data(path, "is a directory, not a data file"));
    }
    if !meta.is_file() {
        // A FIFO or device: loading reads a file more than once (types, then rows), and a
        // stream would hang or be read forever.
        return Err(Error::data(
            path,
            "is not a regular file (a FIFO, socket or device); save the data to a file first",
        ));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default()
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::data(path, "the path is not valid UTF-8"))
}

/// An error reading a CSV file. Arrow counts lines within the block it is parsing, so when the
/// innermost error is a CSV parse error the file is scanned again for a record with the wrong
/// number of fields, to name its real line.
pub fn csv_error(
    path: &Path,
    delimiter: Option<u8>,
    error: datafusion::error::DataFusionError,
) -> Error {
    use datafusion::error::DataFusionError;
    if let DataFusionError::ArrowError(arrow_error, _) = error.find_root()
        && matches!(arrow_error.as_ref(), arrow::error::ArrowError::CsvError(_))
    {
        let delimiter =
            delimiter.or_else(|| CsvLayout::sniff(path, None).ok().map(|l| l.delimiter));
        if let Some((line, expected, found)) = delimiter.and_then(|d| find_ragged_row(path, d)) {
            return Error::DataFusion {
                path: path.to_path_buf(),
                message: format!("line {line}: expected {expected} fields, found {found}"),
                source: error,
            };
        }
    }
    Error::datafusion(path, error)
}

/// The first record whose field count differs from the header's: (line, expected, found).
pub fn find_ragged_row(path: &Path, delimiter: u8) -> Option<(u64, usize, usize)> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let mut record = csv::ByteRecord::new();
    let mut expected = None;
    while reader.read_byte_record(&mut record).ok()? {
        let fields = record.len();
        match expected {
            None => expected = Some(fields),
            Some(n) if n != fields => {
                let line = record.position().map_or(0, |p| p.line());
                return Some((line, n, fields));
            }
            Some(_) => {}
        }
    }
    None
}

/// The words a user needs from a DataFusion error: its innermost cause, without the layers'
/// labels, read from the error's variants (never from its text).
pub fn datafusion_message(error: &datafusion::error::DataFusionError) -> String {
    use arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    let root = error.find_root();
    let text = match root {
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::CsvError(m)
            | ArrowError::ParseError(m)
            | ArrowError::CastError(m)
            | ArrowError::SchemaError(m)
            | ArrowError::InvalidArgumentError(m)
            | ArrowError::ComputeError(m)
            | ArrowError::JsonError(m) => m.clone(),
            ArrowError::IoError(m, _) => m.clone(),
            other => other.to_string(),
        },
        DataFusionError::ParquetError(e) => e.to_string(),
        DataFusionError::SchemaError(e, _) => e.to_string(),
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::ResourcesExhausted(m) => m.clone(),
        DataFusionError::IoError(e) => e.to_string(),
        DataFusionError::ObjectStore(e) => e.to_string(),
        DataFusionError::External(e) => e.to_string(),
        other => other.to_string(),
    };
    // One line: DataFusion appends backtraces and hints on further lines.
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::compute::concat_batches;

    #[test]
    fn parallel_csv_reading_keeps_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("\u{feff}id,score,city\r\n");
        for i in 0..60_000 {
            let score = if i % 11 == 0 {
                String::new()
            } else {
                format!("{}.5", i % 1000)
            };
            text.push_str(&format!("{i},{score},c{}\r\n", i % 17));
        }
        text.push_str("60000,1,last");
        std::fs::write(&path, &text).unwrap();
        let options = LoadOptions {
            delimiter: None,
            text_columns: vec!["id".into()],
            na_values: Vec::new(),
        };
        let schema = table_schema(&session(), &path, &options).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parallel = read_csv_in_parallel(&path, &options, &schema, 4096).unwrap();
        if cores < 2 {
            assert!(parallel.is_none());
            eprintln!("SKIPPED: one core, the file is read on one partition");
            return;
        }
        let partitions = parallel.expect("read in parallel");
        assert!(partitions.len() >= 2, "{} partitions", partitions.len());
        assert!(partitions.iter().all(|p| !p.is_empty()));
        let batches: Vec<RecordBatch> = partitions.into_iter().flatten().collect();
        let batch = concat_batches(&schema, &batches).unwrap();
        let whole = runtime()
            .block_on(async {
                let ctx = session();
                open_frame(&ctx, &path, &options, &schema)
                    .await
                    .unwrap()
                    .collect()
                    .await
            })
            .unwrap();
        let whole = concat_batches(&schema, &whole).unwrap();
        assert_eq!(batch.num_rows(), 60_001);
        assert_eq!(batch, whole);
        // A quote anywhere sends the file to the one-partition reader.
        let quoted = dir.path().join("quoted.csv");
        std::fs::write(&quoted, text.replace("c3\r\n", "\"c\n3\"\r\n")).unwrap();
        assert!(
            read_csv_in_parallel(&quoted, &options, &schema, 4096)
                .unwrap()
                .is_none()
        );
        // Small files too.
        assert!(
            read_csv_in_parallel(&path, &options, &schema, 1 << 30)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn errors_keep_their_causes_and_say_what_they_mean() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragged.csv");
        let mut text = String::from("a,b,c\n");
        for i in 0..20_000 {
            text.push_str(&format!("{i},{i},{i}\n"));
        }
        text.push_str("1,2\n");
        std::fs::write(&path, text).unwrap();
        let e = load_table(&path, &LoadOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: line 20002: expected 3 fields, found 2", path.display())
        );
        let cause = e.source().expect("the DataFusion error is kept");
        assert!(cause.is::<datafusion::error::DataFusionError>());
        let missing =
            load_table(&dir.path().join("none.csv"), &LoadOptions::default()).unwrap_err();
        assert!(missing.source().unwrap().is::<std::io::Error>());
        // The message comes from the error's variants, the innermost one.
        let nested = datafusion::error::DataFusionError::Context(
            "reading".into(),
            Box::new(datafusion::error::DataFusionError::Plan(
                "no such column".into(),
            )),
        );
        assert_eq!(datafusion_message(&nested), "no such column");
    }

    #[test]
    fn delimiter_detection() {
        assert_eq!(detect_delimiter(b"a;b;c"), b';');
        assert_eq!(detect_delimiter(b"a,b,c"), b',');
        assert_eq!(detect_delimiter(b"\"a;x\",b,c"), b',');
        assert_eq!(detect_delimiter(b"a\tb"), b'\t');
        assert_eq!(detect_delimiter(b"single"), b',');
    }

    #[test]
    fn the_scorer_samples_only_which_numeric_columns_hold_booleans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(
            &path,
            "\u{feff}id;age;spend;flag;note;mixed;zip;empty;late\r\n\
             1;30; 12.5;TRUE;\"a;\nb\";7;01;;true\r\n\
             2;;1e3;false;x;n/a;02;;True\r\n\
             3;41;-0.25;;\"\"\"q\"\"\";NaN;3;;1",
        )
        .unwrap();
        let options = LoadOptions {
            delimiter: None,
            text_columns: vec!["id".into(), "zip".into()],
            na_values: Vec::new(),
        };
        let numeric = [
            "age", "spend", "flag", "mixed", "zip", "empty", "id", "late", "note",
        ];
        let types = |options: &LoadOptions| -> Vec<(String, DataType)> {
            scoring_schema(&session(), &path, options, &numeric)
                .unwrap()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        use DataType::{Boolean, Utf8};
        let expect = |list: [DataType; 9]| -> Vec<(String, DataType)> {
            [
                "id", "age", "spend", "flag", "note", "mixed", "zip", "empty", "late",
            ]
            .iter()
            .map(|n| n.to_string())
            .zip(list)
            .collect()
        };
        // Names lose the BOM; a quoted field holding the delimiter and a newline is one field
        // (`note`, not a boolean); `flag` holds only booleans and empty values; `late` turns to
        // a number in its third record; text columns and the all-empty column are not booleans.
        let expected = expect([Utf8, Utf8, Utf8, Boolean, Utf8, Utf8, Utf8, Utf8, Utf8]);
        assert_eq!(types(&options), expected);
        // na_values change nothing: the decoder reads booleans by their text alone.
        let with_na = LoadOptions {
            na_values: vec!["n/a".into()],
            ..options.clone()
        };
        assert_eq!(types(&with_na), expected);
    }

    #[test]
    fn the_boolean_sample_stops_only_when_no_column_can_be_boolean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.csv");
        let options = LoadOptions {
            delimiter: None,
            text_columns: Vec::new(),
            na_values: Vec::new(),
        };
        let boolean_columns = |text: &str| -> Vec<String> {
            std::fs::write(&path, text).unwrap();
            scoring_schema(&session(), &path, &options, &["a", "b"])
                .unwrap()
                .fields()
                .iter()
                .filter(|f| f.data_type() == &DataType::Boolean)
                .map(|f| f.name().clone())
                .collect()
        };
        // `a` is decided at its first value; `b` is empty for thousands of records, then holds
        // booleans to the end of the sample, then a number the sample never reaches.
        let mut text = String::from("a,b\n");
        for row in 0..SCHEMA_INFER_RECORDS + 10 {
            let b = match row {
                r if r < 5_000 => "",
                r if r < SCHEMA_INFER_RECORDS => "false",
                _ => "7",
            };
            text.push_str(&format!("{row},{b}\n"));
        }
        assert_eq!(boolean_columns(&text), ["b"]);
        // A number after thousands of booleans: not a boolean column.
        let text = text.replacen("\n9000,false\n", "\n9000,2.5\n", 1);
        assert!(boolean_columns(&text).is_empty());
    }

    fn strings(table: &Table, column: &str) -> Vec<Option<String>> {
        as_strings(table.column(column, "test").unwrap()).unwrap()
    }

    #[test]
    fn csv_quirks_bom_crlf_quotes_empty_no_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(
            &path,
            "\u{feff}id;city;income;y\r\n1;\"Paris; FR\";12.5;yes\r\n2;;;no\r\n3;\"Lyon \"\"old\"\"\";7;no",
        )
        .unwrap();
        let options = LoadOptions {
            delimiter: None,
            text_columns: vec!["id".into(), "y".into()],
            na_values: Vec::new(),
        };
        let table = load_table(&path, &options).unwrap();
        let names: Vec<&str> = table
            .batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["id", "city", "income", "y"],
            "no BOM in the first name"
        );
        assert_eq!(table.num_rows(), 3, "last line without newline is a row");
        assert_eq!(
            strings(&table, "city"),
            [Some("Paris; FR".into()), None, Some("Lyon \"old\"".into())]
        );
        assert_eq!(
            strings(&table, "income"),
            [Some("12.5".into()), None, Some("7.0".into())]
        );
        assert_eq!(
            table.batch.schema().field(2).data_type(),
            &DataType::Float64
        );
        assert_eq!(
            strings(&table, "y"),
            [Some("yes".into()), Some("no".into()), Some("no".into())]
        );
        assert_eq!(
            read_ids(&table, "id").unwrap().iter().collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
    }

    #[test]
    fn parquet_loads_with_the_same_shape_as_csv() {
        use parquet::arrow::ArrowWriter;
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::LargeUtf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![Some(3), None])),
                Arc::new(arrow::array::LargeStringArray::from(vec![
                    Some("a"),
                    Some("b"),
                ])),
            ],
        )
        .unwrap();
        let path = dir.path().join("t.parquet");
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let table = load_table(&path, &LoadOptions::default()).unwrap();
        assert_eq!(
            table.batch.schema().field(0).data_type(),
            &DataType::Float64
        );
        assert_eq!(table.batch.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(strings(&table, "n"), [Some("3".into()), None]);
    }

    #[test]
    fn labels_are_matched_case_insensitively_and_checked() {
        let schema = Arc::new(Schema::new(vec![Field::new("y", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec![" Yes", "no", "N", "1"]))],
        )
        .unwrap();
        let table = Table {
            path: "t.csv".into(),
            batch,
        };
        let labels = read_labels(&table, "y", &default_positive(), &default_negative()).unwrap();
        assert_eq!(labels, [1, 0, 0, 1]);
        let err = read_labels(&table, "y", &["yes".into()], &["no".into()]).unwrap_err();
        assert!(err.to_string().contains("data row 3"), "{err}");
    }
}
