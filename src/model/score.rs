//! Scoring: whole tables in memory (for `compare`) and files streamed in batches (for `score`).
//!
//! A scored file gets, per input row and in input order: the id, `score` (probability of
//! conversion), `percentile` and `decile` (1 = best; rank by score, equal scores ordered by a
//! seeded hash of the id, `metrics::tie_key`), and any kept columns. Ranks need every score, so
//! the first pass streams the input, scores it, stages each row's id and kept columns (as bytes,
//! length first) and its score and tie key in a spool, both in memory up to a bound and in a
//! temporary file beside the output past it; the cut positions' scores are then selected from
//! the spool (`rank`), and the second pass reads the staged rows beside the spool into the
//! output with the ranks added. Memory stays bounded whatever the input's size.

use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;

use crate::data::encode::Matrix;
use crate::data::encode::UnseenCounts;
use crate::data::scan::{ColumnPlan, CsvEncoder, EncodedBlock};
use crate::data::{Format, LoadOptions, runtime};
use crate::metrics::tie_key;
use crate::model::bundle::{Engine, ModelBundle};
use crate::model::rank::{self, CutCounter, ScoreSpool};
use crate::output::{self, AtomicFile};
use crate::{Error, Result};

/// Scores every row of an in-memory batch read from `data`, whose first row is data row
/// `first_row + 1` of that file (for messages).
pub fn score_batch(
    bundle: &ModelBundle,
    batch: &RecordBatch,
    data: &Path,
    first_row: usize,
    engine: Engine,
) -> Result<(Vec<f64>, UnseenCounts)> {
    let missing = bundle.features.missing_columns(&batch.schema());
    if !missing.is_empty() {
        return Err(Error::data(
            data,
            format!(
                "lacks the model's feature column(s): {} (model {})",
                missing.join(", "),
                bundle.source.display()
            ),
        ));
    }
    let (matrix, unseen) = bundle
        .features
        .encoder()
        .encode_from(batch, None, first_row)
        .map_err(|e| Error::data(data, e))?;
    Ok((predict_probabilities(bundle, &matrix, engine)?, unseen))
}

/// Which rows `score` writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keep {
    All,
    /// The N best rows.
    Top(u64),
    /// The best P percent of rows (rounded up).
    TopPercent(f64),
    /// The best share S (0 to 1) of rows (rounded up).
    TopShare(f64),
}

impl Keep {
    /// How many of `n` rows are kept: fractions rounded up, where a product meant to be whole
    /// (0.07 of 100) is not pushed to the next row by its last bit.
    pub fn count(self, n: u64) -> u64 {
        let of = |share: f64| {
            let exact = share * n as f64;
            let rounded = exact.round();
            let k = if (exact - rounded).abs() <= 1e-9 * exact.max(1.0) {
                rounded
            } else {
                exact.ceil()
            };
            (k.max(0.0) as u64).min(n)
        };
        match self {
            Keep::All => n,
            Keep::Top(k) => k.min(n),
            Keep::TopPercent(p) => of(p / 100.0),
            Keep::TopShare(s) => of(s),
        }
    }
}

/// Options of a file-to-file scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub delimiter: Option<u8>,
    /// Input columns copied to the output.
    pub keep_columns: Vec<String>,
    pub keep: Keep,
    pub force: bool,
    /// Rows per batch read from the input.
    pub batch_rows: usize,
    pub engine: Engine,
    /// Seed of the hash that orders rows of equal score.
    pub tie_seed: u64,
}

/// What a scoring run did.
#[derive(Debug, Clone, Default)]
pub struct ScoreSummary {
    pub rows_in: u64,
    pub rows_out: u64,
    pub unseen: UnseenCounts,
    /// Where a `--top` cut fell among rows of equal score: (the score, rows sharing it, how many
    /// of them were kept).
    pub tied_at_top: Option<(f64, u64, u64)>,
}

/// How candidates are read for a model (by `score`, and by `select`'s rule, so the rule sees the
/// types the model is fed): its categorical features and its id as text, its missing-value texts.
pub fn candidate_load_options(bundle: &ModelBundle, delimiter: Option<u8>) -> LoadOptions {
    let mut text_columns = bundle.features.text_columns();
    if !bundle.id.generated {
        text_columns.push(bundle.id.column.clone());
    }
    LoadOptions {
        delimiter,
        text_columns,
        na_values: bundle.features.na_values.clone(),
    }
}

/// Scores `input` into `output` (CSV or Parquet by its extension), streaming in batches.
pub fn score_file(
    bundle: &ModelBundle,
    input: &Path,
    output: &Path,
    options: &ScoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ScoreSummary> {
    score_file_observed(bundle, input, output, options, progress, &mut |_, _| {})
}

/// `score_file`, showing `observe` every row's id and score as it is scored (in input order).
pub fn score_file_observed(
    bundle: &ModelBundle,
    input: &Path,
    output: &Path,
    options: &ScoreOptions,
    progress: &mut dyn FnMut(u64),
    observe: &mut (dyn FnMut(&str, f64) + Send),
) -> Result<ScoreSummary> {
    output::check_file_output(output, options.force, &output::Inputs::of([input]))?;
    let id_column = (!bundle.id.generated).then(|| bundle.id.column.clone());
    let mut load = candidate_load_options(bundle, options.delimiter);
    load.text_columns
        .extend(options.keep_columns.iter().cloned());
    let ctx = crate::data::session_with_batch_rows(options.batch_rows);
    // The model knows which columns are numbers: nothing else is inferred. For CSV the sample
    // tells only which of them hold true/false (read as 1/0, as training read them); every
    // numeric feature is read by the one value rule. Parquet is read with its own types. The
    // trees are compiled beside the sampling.
    let numeric = bundle.features.numeric_columns();

    // Pass 1: the id and kept columns of each row to the staging buffer, its score and tie key
    // to the spool.
    let dir = output::parent_dir(output);
    let mut staged = output::SpillBuffer::new_in(dir, ".audience-scores-", STAGED_MEMORY_BYTES)
        .map_err(|e| Error::io(dir, e))?;
    let mut summary = ScoreSummary::default();
    let mut spool = ScoreSpool::new_in(dir).map_err(|e| Error::io(dir, e))?;
    // The text fields of each row: the id (unless generated), then the kept columns.
    let texts: Vec<&str> = id_column
        .iter()
        .chain(&options.keep_columns)
        .map(String::as_str)
        .collect();
    let has_id = id_column.is_some();
    let mut generated_id = String::new();
    let read_staged = |source: &mut BlockSource,
                       staged: &mut output::SpillBuffer|
     -> Result<Option<StagedBlock>> {
        let Some(block) = source.next_block()? else {
            return Ok(None);
        };
        let ties = stage_block(staged, &block, has_id, options.tie_seed)
            .map_err(|e| Error::io(staged.path(), e))?;
        Ok(Some((block, ties)))
    };
    // The trees are compiled beside the sampling, the opening of the input and the reading of
    // its first block.
    let (_, opened) = rayon::join(
        || match options.engine {
            Engine::Native => bundle.compiled(),
            Engine::Compiled => bundle.machine_code(),
            Engine::Walk | Engine::LightGbm => None,
        },
        || -> Result<(BlockSource, Option<StagedBlock>)> {
            let schema = crate::data::scoring_schema(&ctx, input, &load, &numeric)?;
            let mut missing = bundle.features.missing_columns(&schema);
            for c in id_column.iter().chain(&options.keep_columns) {
                if schema.column_with_name(c).is_none() && !missing.contains(c) {
                    missing.push(c.clone());
                }
            }
            if !missing.is_empty() {
                return Err(Error::data(
                    input,
                    format!(
                        "missing column(s) the model or --keep needs: {}",
                        missing.join(", ")
                    ),
                ));
            }
            let mut source = BlockSource::open(bundle, &ctx, input, &load, &schema, &texts)?;
            let first = read_staged(&mut source, &mut staged)?;
            Ok((source, first))
        },
    );
    let (mut source, mut current) = opened?;
    // Spools a scored block's scores and tie keys, and shows `observe` its rows.
    let mut spool_block = |(block, ties, scores): (EncodedBlock, Vec<u64>, Vec<f64>)| {
        for (i, (&score, &tie)) in scores.iter().zip(&ties).enumerate() {
            observe(id_of(&block, i, has_id, &mut generated_id), score);
            spool.push(score, tie).map_err(|e| Error::io(dir, e))?;
        }
        Ok::<_, Error>(())
    };
    // The next block is read, encoded and staged, and the last one's scores spooled, as a task
    // beside the trees of this one, so the pool's threads share both: none waits while another
    // reads, and no thread runs alone between blocks.
    let mut scored = None;
    while let Some((block, ties)) = current {
        let (scores, (spooled, next)) = rayon::join(
            || predict_probabilities(bundle, &block.matrix, options.engine),
            || {
                let spooled = scored.take().map_or(Ok(()), &mut spool_block);
                (spooled, read_staged(&mut source, &mut staged))
            },
        );
        spooled?;
        let scores = scores?;
        summary.unseen.add(&block.unseen);
        summary.rows_in += block.rows() as u64;
        progress(summary.rows_in);
        scored = Some((block, ties, scores));
        current = next?;
    }
    scored.map_or(Ok(()), spool_block)?;

    // Ranks: the score at each cut position (percentile and decile starts, the --top limit),
    // found in bounded memory; then each row only needs to know which cuts it lies past.
    let n = spool.len();
    let limit = options.keep.count(n);
    let percentile_starts = rank::bin_starts(n, 100);
    let decile_starts = rank::bin_starts(n, 10);
    let mut positions = percentile_starts.clone();
    positions.extend(&decile_starts);
    if limit < n {
        positions.push(limit);
    }
    let cuts = spool.select(&positions).map_err(|e| Error::io(dir, e))?;
    let (percentile_cuts, rest) = cuts.split_at(percentile_starts.len());
    let (decile_cuts, limit_cut) = rest.split_at(decile_starts.len());
    let mut percentiles = CutCounter::new(percentile_cuts.to_vec());
    let mut deciles = CutCounter::new(decile_cuts.to_vec());
    let mut beyond_limit = CutCounter::new(limit_cut.to_vec());
    if let Some(cut) = limit_cut.first()
        && cut.tied() > 0
    {
        summary.tied_at_top = Some((cut.score(), cut.tied(), cut.tied_before()));
    }

    // Pass 2: the staged rows beside their scores, in input order; add percentile and decile,
    // keep the chosen rows, write the output.
    let id_name = bundle.id.column.clone();
    let mut header = vec![
        id_name,
        "score".into(),
        "percentile".into(),
        "decile".into(),
    ];
    header.extend(options.keep_columns.iter().cloned());
    let mut sink = OutputSink::create(output, &header, options.force)?;
    let staging_path = staged.path().to_path_buf();
    let stage_error = |e| Error::io(&staging_path, e);
    let mut staged = staged.reader().map_err(stage_error)?;
    let mut rows = spool.rows().map_err(|e| Error::io(dir, e))?;
    // A block of rows at a time: their staged fields are read, and their ranks found on every
    // core for the rows whose score alone places them (no cut has that score), then in input
    // order for the rest (a cut among equal scores counts the rows of that score it has
    // passed). The rows are written, formatted on every core, while the next block is read and
    // ranked beside them.
    let fields_per_row = 1 + options.keep_columns.len();
    let mut fill = |block: &mut RowBlock| -> Result<bool> {
        use rayon::prelude::*;
        block.clear();
        let Some(pairs) = rows.next_chunk().map_err(|e| Error::io(dir, e))? else {
            return Ok(true);
        };
        for _ in 0..pairs.len() / 16 * block.fields_per_row {
            append_staged_field(&mut staged, &mut block.bytes).map_err(stage_error)?;
            block.ends.push(block.bytes.len());
        }
        let by_score: Vec<[Option<usize>; 3]> = pairs
            .par_chunks_exact(16)
            .map(|pair| {
                let (score, _) = rank::pair_of(pair);
                [
                    percentiles.passed_by_score(score),
                    deciles.passed_by_score(score),
                    beyond_limit.passed_by_score(score),
                ]
            })
            .collect();
        for (row, (pair, [percentile, decile, beyond])) in
            pairs.chunks_exact(16).zip(by_score).enumerate()
        {
            let (score, tie) = rank::pair_of(pair);
            let percentile = percentile.unwrap_or_else(|| percentiles.passed(score, tie));
            let decile = decile.unwrap_or_else(|| deciles.passed(score, tie));
            if beyond.unwrap_or_else(|| beyond_limit.passed(score, tie)) > 0 {
                continue;
            }
            block
                .written
                .push((row, score, 1 + percentile as u32, 1 + decile as u32));
        }
        Ok(false)
    };
    let (mut current, mut next) = (RowBlock::new(fields_per_row), RowBlock::new(fields_per_row));
    let mut read_all = fill(&mut current)?;
    loop {
        summary.rows_out += current.len() as u64;
        if read_all {
            sink.push_block(&current)?;
            break;
        }
        let (written, filled) = rayon::join(|| sink.push_block(&current), || fill(&mut next));
        written?;
        read_all = filled?;
        std::mem::swap(&mut current, &mut next);
    }
    drop(rows);
    drop(spool);
    sink.finish(options.force)?;
    Ok(summary)
}

/// A block of pass 1, staged, with its rows' tie keys.
type StagedBlock = (EncodedBlock, Vec<u64>);

/// Where pass 1's blocks come from: CSV split and encoded straight from its bytes
/// (`data::scan`), or Parquet read by DataFusion with its own types.
enum BlockSource<'a> {
    Csv(Box<CsvEncoder>),
    Parquet {
        stream: datafusion::physical_plan::SendableRecordBatchStream,
        encoder: crate::data::encode::BatchEncoder,
        input: &'a Path,
        texts: &'a [&'a str],
        first_row: u64,
    },
}

impl<'a> BlockSource<'a> {
    /// Opens `input` for the model's features and the text columns `texts` (the id, then the
    /// kept columns), as many rows to a block at most as `ctx` reads to a batch.
    fn open(
        bundle: &ModelBundle,
        ctx: &datafusion::prelude::SessionContext,
        input: &'a Path,
        load: &LoadOptions,
        schema: &Schema,
        texts: &'a [&'a str],
    ) -> Result<BlockSource<'a>> {
        let batch_rows = ctx.state().config().batch_size();
        let encoder = bundle.features.encoder();
        match Format::of(input) {
            Format::Csv => {
                let layout = crate::data::CsvLayout::sniff(input, load.delimiter)?;
                let booleans: Vec<&str> = schema
                    .fields()
                    .iter()
                    .filter(|f| f.data_type() == &DataType::Boolean)
                    .map(|f| f.name().as_str())
                    .collect();
                let plan = ColumnPlan::for_header(&layout.header, &encoder, &booleans, texts)
                    .map_err(|e| Error::data(input, e))?;
                let reader =
                    CsvEncoder::open(input, layout.delimiter, &layout.header, encoder, plan)?;
                Ok(BlockSource::Csv(Box::new(
                    reader.with_block_rows(batch_rows),
                )))
            }
            Format::Parquet => {
                let names: Vec<&str> = schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .filter(|name| {
                        encoder.features().iter().any(|f| f.name == *name) || texts.contains(name)
                    })
                    .collect();
                let stream = runtime().block_on(async {
                    crate::data::open_frame(ctx, input, load, schema)
                        .await?
                        .select_columns(&names)
                        .map_err(|e| Error::datafusion(input, e))?
                        .execute_stream()
                        .await
                        .map_err(|e| Error::datafusion(input, e))
                })?;
                Ok(BlockSource::Parquet {
                    stream,
                    encoder,
                    input,
                    texts,
                    first_row: 0,
                })
            }
        }
    }

    /// The next block, None at the end of the input.
    fn next_block(&mut self) -> Result<Option<EncodedBlock>> {
        match self {
            BlockSource::Csv(reader) => reader.next_block(),
            BlockSource::Parquet {
                stream,
                encoder,
                input,
                texts,
                first_row,
            } => {
                let Some(batch) = runtime().block_on(stream.next()) else {
                    return Ok(None);
                };
                let batch = batch.map_err(|e| Error::datafusion(*input, e))?;
                let block = EncodedBlock::from_batch(&batch, encoder, texts, *first_row)
                    .map_err(|e| Error::data(*input, e))?;
                *first_row += block.rows() as u64;
                Ok(Some(block))
            }
        }
    }
}

/// The model's probabilities for the rows of `matrix`; an infinite or NaN score (which a
/// hostile model file could produce) is an error naming the model.
fn predict_probabilities(
    bundle: &ModelBundle,
    matrix: &Matrix,
    engine: Engine,
) -> Result<Vec<f64>> {
    let scores = bundle.predict(matrix, engine)?;
    if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::model(
            &bundle.source,
            format!(
                "the model scores row {} of a batch {}: a score must be a probability",
                row + 1,
                scores[row]
            ),
        ));
    }
    Ok(scores)
}

/// Stages a block's rows (the id, then the kept columns), and gives each row's tie key: the
/// hash of its id, or of its 0-based row number when the id is generated.
fn stage_block(
    staged: &mut impl Write,
    block: &EncodedBlock,
    has_id: bool,
    tie_seed: u64,
) -> std::io::Result<Vec<u64>> {
    let mut ties = Vec::with_capacity(block.rows());
    let mut generated_id = String::new();
    let slots = block.texts.per_row();
    for i in 0..block.rows() {
        let id = id_of(block, i, has_id, &mut generated_id);
        stage_field(staged, id.as_bytes())?;
        for k in usize::from(has_id)..slots {
            stage_field(staged, block.texts.get(i, k).as_bytes())?;
        }
        ties.push(tie_key(id, tie_seed));
    }
    Ok(ties)
}

/// Row `row`'s id: its id field, or when the id is generated its 0-based row number in the
/// file (written into `generated`).
fn id_of<'a>(
    block: &'a EncodedBlock,
    row: usize,
    has_id: bool,
    generated: &'a mut String,
) -> &'a str {
    if has_id {
        return block.texts.get(row, 0);
    }
    generated.clear();
    write!(generated, "{}", block.first_row + row as u64).expect("writing to a String");
    generated
}

/// A staged field: its length (u32, little-endian), then its bytes.
fn stage_field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a field of 4 GiB or more cannot be staged"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Bytes of staged fields held in memory before they move to the staging file.
const STAGED_MEMORY_BYTES: usize = 32 << 20;

/// Reads the next staged field onto the end of `bytes`.
fn append_staged_field(input: &mut impl BufRead, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    // Most fields lie whole in the reader's buffer: copied from there, without a read call.
    let buffered = input.fill_buf()?;
    if let Some((len, rest)) = buffered.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        if let Some(field) = rest.get(..len) {
            bytes.extend_from_slice(field);
            input.consume(4 + len);
            return Ok(());
        }
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let start = bytes.len();
    bytes.resize(start + u32::from_le_bytes(len) as usize, 0);
    input.read_exact(&mut bytes[start..])
}

/// Output rows of pass 2: the staged fields (the id, then the kept columns) of a block of rows
/// end to end in `bytes`, and the rows to write with their score, percentile and decile.
struct RowBlock {
    fields_per_row: usize,
    bytes: Vec<u8>,
    /// Where each field ends in `bytes`, `fields_per_row` to a row.
    ends: Vec<usize>,
    /// The rows kept, in order: (row in the block, score, percentile, decile).
    written: Vec<(usize, f64, u32, u32)>,
}

impl RowBlock {
    fn new(fields_per_row: usize) -> RowBlock {
        RowBlock {
            fields_per_row,
            bytes: Vec::new(),
            ends: Vec::new(),
            written: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.written.clear();
    }

    /// Rows to write.
    fn len(&self) -> usize {
        self.written.len()
    }

    /// The staged fields of row `r` of the block.
    fn fields(&self, r: usize) -> impl Iterator<Item = &[u8]> {
        let ends = &self.ends[r * self.fields_per_row..(r + 1) * self.fields_per_row];
        let mut start = if r == 0 {
            0
        } else {
            self.ends[r * self.fields_per_row - 1]
        };
        ends.iter().map(move |&end| {
            let field = &self.bytes[start..end];
            start = end;
            field
        })
    }

    /// The rows to write numbered `rows` as CSV records, as `csv::Writer` writes them (fields
    /// quoted only when they must be).
    fn csv_records(&self, rows: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows.len() * 48);
        let (mut score_text, mut int_text) = (ryu::Buffer::new(), itoa::Buffer::new());
        let mut fallback = String::new();
        for &(row, score, percentile, decile) in &self.written[rows] {
            let mut fields = self.fields(row);
            push_csv_field(&mut out, fields.next().expect("the id is staged"));
            // Numbers never need quotes.
            out.push(b',');
            out.extend_from_slice(score_text_of(score, &mut score_text, &mut fallback).as_bytes());
            for rank in [percentile, decile] {
                out.push(b',');
                out.extend_from_slice(int_text.format(rank).as_bytes());
            }
            for value in fields {
                out.push(b',');
                push_csv_field(&mut out, value);
            }
            out.push(b'\n');
        }
        out
    }
}

/// Appends a field as `csv::Writer`'s defaults write it: in quotes, its quotes doubled, when
/// it holds a comma, a quote or a line break; as it is otherwise.
fn push_csv_field(out: &mut Vec<u8>, field: &[u8]) {
    if field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

/// A score's text exactly as `Display` writes it (the shortest digits that read back as the
/// same number, never an exponent). ryu finds the same shortest digits faster; it is used where
/// its text has the same form, a number strictly between 0 and 1 written without an exponent,
/// and `Display` writes every other one.
fn score_text_of<'a>(
    score: f64,
    ryu_text: &'a mut ryu::Buffer,
    fallback: &'a mut String,
) -> &'a str {
    if score > 0.0 && score < 1.0 {
        let text = ryu_text.format_finite(score);
        if !text.contains('e') {
            return text;
        }
    }
    fallback.clear();
    write!(fallback, "{score}").expect("writing to a String");
    fallback
}

/// The output file being written: CSV a block of rows at a time, or Parquet in batches.
enum OutputSink {
    Csv {
        file: AtomicFile,
        writer: Option<BufWriter<std::fs::File>>,
    },
    Parquet {
        file: AtomicFile,
        // Boxed: the Parquet writer's state is large beside the CSV variant's.
        writer: Option<Box<ArrowWriter<std::fs::File>>>,
        schema: Arc<Schema>,
        columns: Vec<Vec<String>>,
        scores: Vec<f64>,
        percentiles: Vec<u32>,
        deciles: Vec<u32>,
    },
}

const PARQUET_BATCH: usize = 65_536;

impl OutputSink {
    fn create(path: &Path, header: &[String], force: bool) -> Result<OutputSink> {
        let mut file = AtomicFile::create(path, force)?;
        let handle = file.file().try_clone().map_err(|e| Error::io(path, e))?;
        match Format::of(path) {
            Format::Csv => {
                let mut header_line = csv::Writer::from_writer(Vec::new());
                let error = |e: csv::Error| Error::io(path, e.into());
                header_line.write_record(header).map_err(error)?;
                let header_line = header_line
                    .into_inner()
                    .map_err(|e| error(e.into_error().into()))?;
                let mut writer = BufWriter::with_capacity(1 << 20, handle);
                writer
                    .write_all(&header_line)
                    .map_err(|e| Error::io(path, e))?;
                Ok(OutputSink::Csv {
                    file,
                    writer: Some(writer),
                })
            }
            Format::Parquet => {
                let mut fields = vec![
                    Field::new(&header[0], DataType::Utf8, false),
                    Field::new("score", DataType::Float64, false),
                    Field::new("percentile", DataType::UInt32, false),
                    Field::new("decile", DataType::UInt32, false),
                ];
                fields.extend(
                    header[4..]
                        .iter()
                        .map(|h| Field::new(h, DataType::Utf8, true)),
                );
                let schema = Arc::new(Schema::new(fields));
                let writer = ArrowWriter::try_new(handle, schema.clone(), None)
                    .map_err(|e| Error::data(path, e.to_string()))?;
                let kept = header.len() - 4;
                Ok(OutputSink::Parquet {
                    file,
                    writer: Some(Box::new(writer)),
                    schema,
                    columns: vec![Vec::new(); 1 + kept],
                    scores: Vec::new(),
                    percentiles: Vec::new(),
                    deciles: Vec::new(),
                })
            }
        }
    }

    fn push_block(&mut self, block: &RowBlock) -> Result<()> {
        match self {
            OutputSink::Csv { file, writer } => {
                use rayon::prelude::*;
                // Parts small enough for the threads to share them evenly beside the next
                // block's reading and ranking.
                const FORMAT_ROWS: usize = 4096;
                let records: Vec<Vec<u8>> = (0..block.len())
                    .into_par_iter()
                    .step_by(FORMAT_ROWS)
                    .map(|start| block.csv_records(start..(start + FORMAT_ROWS).min(block.len())))
                    .collect();
                let w = writer.as_mut().expect("open until finish");
                for part in &records {
                    w.write_all(part).map_err(|e| Error::io(file.target(), e))?;
                }
                file.start_writeback();
                Ok(())
            }
            OutputSink::Parquet { .. } => {
                for r in 0..block.len() {
                    if self.push_parquet_row(block, r)? >= PARQUET_BATCH {
                        self.flush_parquet()?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Adds the `r`th row to write of `block` to the Parquet columns; returns how many rows they
    /// hold.
    fn push_parquet_row(&mut self, block: &RowBlock, r: usize) -> Result<usize> {
        let OutputSink::Parquet {
            file,
            columns,
            scores,
            percentiles,
            deciles,
            ..
        } = self
        else {
            return Ok(0);
        };
        let (row, score, percentile, decile) = block.written[r];
        for (column, value) in columns.iter_mut().zip(block.fields(row)) {
            let value = std::str::from_utf8(value)
                .map_err(|_| Error::data(file.target(), "internal: a staged field is not UTF-8"))?;
            column.push(value.to_string());
        }
        scores.push(score);
        percentiles.push(percentile);
        deciles.push(decile);
        Ok(scores.len())
    }

    fn flush_parquet(&mut self) -> Result<()> {
        if let OutputSink::Parquet {
            file,
            writer,
            schema,
            columns,
            scores,
            percentiles,
            deciles,
        } = self
        {
            if scores.is_empty() {
                return Ok(());
            }
            let mut arrays: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(std::mem::take(&mut columns[0]))),
                Arc::new(Float64Array::from(std::mem::take(scores))),
                Arc::new(UInt32Array::from(std::mem::take(percentiles))),
                Arc::new(UInt32Array::from(std::mem::take(deciles))),
            ];
            for column in columns.iter_mut().skip(1) {
                arrays.push(Arc::new(StringArray::from(std::mem::take(column))));
            }
            let batch = RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| Error::data(file.target(), e.to_string()))?;
            writer
                .as_mut()
                .expect("open until finish")
                .write(&batch)
                .map_err(|e| Error::data(file.target(), e.to_string()))?;
            file.start_writeback();
        }
        Ok(())
    }

    fn finish(mut self, force: bool) -> Result<()> {
        self.flush_parquet()?;
        match self {
            OutputSink::Csv {
                file, mut writer, ..
            } => {
                let mut w = writer.take().expect("open until finish");
                w.flush().map_err(|e| Error::io(file.target(), e))?;
                drop(w);
                file.commit(force)
            }
            OutputSink::Parquet {
                file, mut writer, ..
            } => {
                writer
                    .take()
                    .expect("open until finish")
                    .close()
                    .map_err(|e| Error::data(file.target(), e.to_string()))?;
                file.commit(force)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Keep, RowBlock, append_staged_field, score_text_of, stage_field};
    use rand::{Rng, SeedableRng};
    use std::io::Seek;

    #[test]
    fn scores_are_written_as_display_writes_them() {
        let (mut ryu_text, mut fallback) = (ryu::Buffer::new(), String::new());
        let mut check = |x: f64| {
            let ours = score_text_of(x, &mut ryu_text, &mut fallback).to_string();
            assert_eq!(ours, x.to_string(), "bits {:#x}", x.to_bits());
        };
        for x in [
            0.0,
            1.0,
            -0.0,
            0.5,
            0.1,
            1e-5,
            1.5e-5,
            9.99e-6,
            1e-7,
            f64::MIN_POSITIVE,
            5e-324,
            1.0 - f64::EPSILON / 2.0,
            0.1 + 0.2,
            0.008073267100464373,
        ] {
            check(x);
        }
        // Random probabilities, uniform and spread over every exponent a score can have.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        for _ in 0..300_000 {
            check(rng.random::<f64>());
            check(f64::from_bits(
                rng.random_range(0x3C00_0000_0000_0000..0x3FF0_0000_0000_0000),
            ));
        }
    }

    #[test]
    fn a_block_writes_the_records_csv_writes() {
        // Fields with every byte the quoting rule looks at (and some it must not), empty ones,
        // and rows the block holds but does not write.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let alphabet: &[u8] = b"a7,\"\n\r\t #;'\\\xc3\xa9";
        let mut field = || -> Vec<u8> {
            let len = rng.random_range(0..6);
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        };
        let mut block = RowBlock::new(3);
        let mut rows: Vec<(Vec<Vec<u8>>, f64, u32, u32)> = Vec::new();
        for row in 0..2000 {
            for _ in 0..3 {
                block.bytes.extend(field());
                block.ends.push(block.bytes.len());
            }
            if row % 7 == 3 {
                continue;
            }
            let score = [0.25, 1e-9, 1.0, 0.0, 0.1 + 0.2][row % 5];
            let (percentile, decile) = (1 + (row % 100) as u32, 1 + (row % 10) as u32);
            block.written.push((row, score, percentile, decile));
            let fields = block.fields(row).map(<[u8]>::to_vec).collect();
            rows.push((fields, score, percentile, decile));
        }
        let mut expected = csv::Writer::from_writer(Vec::new());
        for (fields, score, percentile, decile) in &rows {
            let numbers = [
                score.to_string(),
                percentile.to_string(),
                decile.to_string(),
            ];
            let record: Vec<&[u8]> = [fields[0].as_slice()]
                .into_iter()
                .chain(numbers.iter().map(|n| n.as_bytes()))
                .chain(fields[1..].iter().map(Vec::as_slice))
                .collect();
            expected.write_record(record).unwrap();
        }
        let expected = expected.into_inner().unwrap();
        assert_eq!(block.csv_records(0..block.len()), expected);
        let mut parts = block.csv_records(0..1);
        parts.extend(block.csv_records(1..1000));
        parts.extend(block.csv_records(1000..block.len()));
        assert_eq!(parts, expected);
    }

    #[test]
    fn staged_fields_read_back_across_buffer_ends() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let fields: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let len = if rng.random_range(0..50) == 0 {
                    300
                } else {
                    rng.random_range(0..20)
                };
                (0..len).map(|_| rng.random::<u8>()).collect()
            })
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        for f in &fields {
            stage_field(&mut file, f).unwrap();
        }
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        // A buffer smaller than some fields and not a multiple of any length.
        let mut staged = std::io::BufReader::with_capacity(97, file);
        let mut bytes = Vec::new();
        for f in &fields {
            let start = bytes.len();
            append_staged_field(&mut staged, &mut bytes).unwrap();
            assert_eq!(&bytes[start..], f.as_slice());
        }
        assert!(
            append_staged_field(&mut staged, &mut bytes).is_err(),
            "nothing is left"
        );
    }

    #[test]
    fn kept_counts_round_up_but_not_by_a_last_bit() {
        assert_eq!(Keep::TopShare(0.07).count(100), 7); // 0.07 * 100 = 7.000000000000001
        assert_eq!(Keep::TopPercent(7.0).count(100), 7);
        assert_eq!(Keep::TopPercent(10.0).count(45_211), 4_522);
        assert_eq!(Keep::TopShare(0.5).count(3), 2);
        assert_eq!(Keep::TopShare(1.0).count(600), 600);
        assert_eq!(Keep::Top(10_000).count(600), 600);
        assert_eq!(Keep::All.count(0), 0);
    }
}
