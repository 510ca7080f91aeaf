//! Scoring: whole tables in memory (for `compare`) and files streamed in batches (for `score`).
//!
//! A scored file gets, per input row and in input order: the id, `score` (probability of
//! conversion), `percentile` and `decile` (1 = best; rank by score, equal scores ordered by a
//! seeded hash of the id, `metrics::tie_key`), and any kept columns. Ranks need every score, so the first pass streams the input, scores it and writes
//! id, score and kept columns to a temporary file and the scores to a spool; the cut positions'
//! scores are then selected from the spool (`rank`), and the second pass streams the temporary
//! file into the output with the ranks added. Memory stays bounded whatever the input's size.

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;

use crate::data::encode::UnseenCounts;
use crate::data::{Format, LoadOptions, as_strings, runtime};
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
        .encode_from(batch, None, first_row)
        .map_err(|e| Error::data(data, e))?;
    let scores = bundle.predict(&matrix, engine)?;
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
    Ok((scores, unseen))
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
    observe: &mut dyn FnMut(&str, f64),
) -> Result<ScoreSummary> {
    output::check_file_output(output, options.force, &output::Inputs::of([input]))?;
    let id_column = (!bundle.id.generated).then(|| bundle.id.column.clone());
    let mut load = candidate_load_options(bundle, options.delimiter);
    load.text_columns
        .extend(options.keep_columns.iter().cloned());
    let ctx = crate::data::session_with_batch_rows(options.batch_rows);
    let schema = crate::data::table_schema(&ctx, input, &load)?;
    // With na_values, numbers are read as text (DataFusion's decoder ignores the null pattern)
    // and the encoder parses them by the one value rule.
    let schema = if load.na_values.is_empty() {
        schema
    } else {
        crate::data::numbers_as_text(&schema).0
    };
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

    // Pass 1: id, score and kept columns to a temporary CSV beside the output.
    let dir = output::parent_dir(output);
    let (staging, _staging_registered) =
        output::temporary_file_in(dir, ".audience-scores-").map_err(|e| Error::io(dir, e))?;
    let mut summary = ScoreSummary::default();
    let mut spool = ScoreSpool::new_in(dir).map_err(|e| Error::io(dir, e))?;
    {
        let mut writer = csv::Writer::from_writer(BufWriter::new(staging.as_file()));
        runtime().block_on(async {
            let df = crate::data::open_frame(&ctx, input, &load, &schema).await?;
            let mut stream = df
                .execute_stream()
                .await
                .map_err(|e| Error::datafusion(input, e))?;
            // The file is parsed on a runtime thread, two batches ahead, while this thread scores
            // and writes: parsing no longer waits for the trees, nor the trees for parsing.
            let (parsed, mut batches) = tokio::sync::mpsc::channel(2);
            let reader = tokio::spawn(async move {
                while let Some(batch) = stream.next().await {
                    if parsed.send(batch).await.is_err() {
                        break;
                    }
                }
            });
            let _stop_reading = AbortOnDrop(reader);
            while let Some(batch) = batches.recv().await {
                let batch =
                    batch.map_err(|e| crate::data::csv_error(input, options.delimiter, e))?;
                let (batch_scores, unseen) = score_batch(
                    bundle,
                    &batch,
                    input,
                    summary.rows_in as usize,
                    options.engine,
                )?;
                summary.unseen.add(&unseen);
                let ids: Vec<String> = match &id_column {
                    Some(c) => as_strings(batch.column_by_name(c).expect("checked above"))
                        .map_err(|e| Error::data(input, e))?
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect(),
                    None => (0..batch.num_rows() as u64)
                        .map(|i| (summary.rows_in + i).to_string())
                        .collect(),
                };
                let kept: Vec<Vec<Option<String>>> = options
                    .keep_columns
                    .iter()
                    .map(|c| as_strings(batch.column_by_name(c).expect("checked above")))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::data(input, e))?;
                for (i, score) in batch_scores.iter().enumerate() {
                    let mut record = vec![ids[i].clone(), score.to_string()];
                    record.extend(kept.iter().map(|k| k[i].clone().unwrap_or_default()));
                    writer
                        .write_record(&record)
                        .map_err(|e| Error::io(staging.path(), e.into()))?;
                }
                for (&s, id) in batch_scores.iter().zip(&ids) {
                    observe(id, s);
                    spool
                        .push(s, tie_key(id, options.tie_seed))
                        .map_err(|e| Error::io(dir, e))?;
                }
                summary.rows_in += batch.num_rows() as u64;
                progress(summary.rows_in);
            }
            Ok::<(), Error>(())
        })?;
        writer.flush().map_err(|e| Error::io(staging.path(), e))?;
    }

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
    drop(spool);
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

    // Pass 2: add percentile and decile, keep the chosen rows, write the output.
    let id_name = bundle.id.column.clone();
    let mut header = vec![
        id_name,
        "score".into(),
        "percentile".into(),
        "decile".into(),
    ];
    header.extend(options.keep_columns.iter().cloned());
    let mut sink = OutputSink::create(output, &header, options.force)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(staging.path())
        .map_err(|e| Error::io(staging.path(), e.into()))?;
    for record in reader.records() {
        let record = record.map_err(|e| Error::io(staging.path(), e.into()))?;
        let score: f64 = record[1].parse().unwrap_or(f64::NAN);
        let tie = tie_key(&record[0], options.tie_seed);
        let percentile = 1 + percentiles.passed(score, tie) as u32;
        let decile = 1 + deciles.passed(score, tie) as u32;
        if beyond_limit.passed(score, tie) > 0 {
            continue;
        }
        sink.push(&record, score, percentile, decile)?;
        summary.rows_out += 1;
    }
    sink.finish(options.force)?;
    Ok(summary)
}

/// The output file being written: CSV rows straight through, or Parquet in batches.
enum OutputSink {
    Csv {
        file: AtomicFile,
        writer: Option<csv::Writer<BufWriter<std::fs::File>>>,
    },
    Parquet {
        file: AtomicFile,
        writer: Option<ArrowWriter<std::fs::File>>,
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
                let mut writer = csv::Writer::from_writer(BufWriter::new(handle));
                writer
                    .write_record(header)
                    .map_err(|e| Error::io(path, e.into()))?;
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
                    writer: Some(writer),
                    schema,
                    columns: vec![Vec::new(); 1 + kept],
                    scores: Vec::new(),
                    percentiles: Vec::new(),
                    deciles: Vec::new(),
                })
            }
        }
    }

    /// `record` is the staged row: id, score text, kept columns.
    fn push(
        &mut self,
        record: &csv::StringRecord,
        score: f64,
        percentile: u32,
        decile: u32,
    ) -> Result<()> {
        match self {
            OutputSink::Csv { file, writer } => {
                let w = writer.as_mut().expect("open until finish");
                let percentile = percentile.to_string();
                let decile = decile.to_string();
                let mut row: Vec<&str> = vec![&record[0], &record[1], &percentile, &decile];
                row.extend(record.iter().skip(2));
                w.write_record(&row)
                    .map_err(|e| Error::io(file.target(), e.into()))
            }
            OutputSink::Parquet {
                columns,
                scores,
                percentiles,
                deciles,
                ..
            } => {
                columns[0].push(record[0].to_string());
                for (i, value) in record.iter().skip(2).enumerate() {
                    columns[i + 1].push(value.to_string());
                }
                scores.push(score);
                percentiles.push(percentile);
                deciles.push(decile);
                if scores.len() >= PARQUET_BATCH {
                    self.flush_parquet()?;
                }
                Ok(())
            }
        }
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
        }
        Ok(())
    }

    fn finish(mut self, force: bool) -> Result<()> {
        self.flush_parquet()?;
        match self {
            OutputSink::Csv { file, mut writer } => {
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

/// Stops a spawned task when dropped (an error ends the scoring loop before the file's end).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::Keep;

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
