//! Score's CSV reader: the fields of the columns a model needs, split straight from the file's
//! bytes and encoded into its feature matrix, without building Arrow arrays on the way.
//!
//! Records are split as csv_core splits them with the settings DataFusion's CSV reader uses
//! (quote `"`, a doubled quote inside quotes for a quote, no escape, no comments, `\r`, `\n` or
//! `\r\n` ending a record, blank lines skipped), so every field's text is the one training read.
//! A stretch of the file without a quote byte is split by a plain scan (fields end at the
//! delimiter, records at `\r` or `\n`, empty records are skipped), which is exactly what csv_core
//! does with such bytes; a stretch with a quote anywhere goes through csv_core itself.
//!
//! Values then become model inputs by the value rules of `encode` ([`number_of`],
//! [`category_of`]), and the id and kept columns are kept as their text as written (a
//! missing-value text too), in blocks of whole records.

use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, RecordBatch};

use super::encode::{
    BatchEncoder, FeatureKind, Matrix, UnseenCounts, is_missing_text, not_a_number, number_of,
    plain_decimal,
};
use crate::{Error, Result};

/// The read buffer's size: half of it holds a block of 65,536 rows of up to 128 bytes. A
/// record longer than the buffer grows it.
const READ_BYTES: usize = 16 << 20;

/// The longest record accepted: a longer one (a quote left open, say) is an error rather than
/// a buffer that grows with the file.
const MAX_RECORD_BYTES: usize = 256 << 20;

/// Marks a file column no one reads.
const UNUSED: u32 = u32::MAX;

/// How a column's text becomes a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRead {
    /// The numeric value rule (`number_of`).
    Number,
    /// `true` / `false` in any case as 1 / 0 (a column the sample found boolean, read as the
    /// CSV decoder read it in training); empty or a missing-value text is missing.
    Boolean,
    /// A category, coded through the training vocabulary.
    Category,
}

/// What is read from a file: for each model feature, its column and value rule; then the text
/// columns (the id, the kept columns), each by its column.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// Per feature (in model order): its column in the file and how it is read.
    pub features: Vec<(usize, ValueRead)>,
    /// Columns kept as text, in the order the caller wants them.
    pub texts: Vec<usize>,
}

impl ColumnPlan {
    /// The plan for `header`: features by name (the encoder's), Boolean where `booleans` names
    /// the column, and the text columns by name. None names a missing column.
    pub fn for_header(
        header: &[String],
        encoder: &BatchEncoder,
        booleans: &[&str],
        texts: &[&str],
    ) -> std::result::Result<ColumnPlan, String> {
        let position = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("missing column {name:?}"))
        };
        let features = encoder
            .features()
            .iter()
            .map(|f| {
                let read = if f.kind == FeatureKind::Categorical && !f.codes {
                    ValueRead::Category
                } else if booleans.contains(&f.name.as_str()) {
                    ValueRead::Boolean
                } else {
                    ValueRead::Number
                };
                Ok((position(&f.name)?, read))
            })
            .collect::<std::result::Result<_, String>>()?;
        let texts = texts
            .iter()
            .map(|t| position(t))
            .collect::<std::result::Result<_, String>>()?;
        Ok(ColumnPlan { features, texts })
    }
}

/// A block of rows, encoded: the model's matrix, unseen categories, and the text columns.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// Data rows of the file before this block's first.
    pub first_row: u64,
    pub matrix: Matrix,
    pub unseen: UnseenCounts,
    pub texts: TextFields,
}

impl EncodedBlock {
    pub fn rows(&self) -> usize {
        self.matrix.rows
    }

    /// The same block from an Arrow batch (a Parquet file's): the matrix by the encoder, the
    /// text columns as text (a null as the empty text).
    pub fn from_batch(
        batch: &RecordBatch,
        encoder: &BatchEncoder,
        texts: &[&str],
        first_row: u64,
    ) -> std::result::Result<EncodedBlock, String> {
        let (matrix, unseen) = encoder.encode_from(batch, None, first_row as usize)?;
        let columns = texts
            .iter()
            .map(|name| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("missing column {name:?}"))?;
                super::text_array(column)
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let mut fields = TextFields::new(texts.len());
        for r in 0..batch.num_rows() {
            for column in &columns {
                fields.push(if column.is_valid(r) {
                    column.value(r)
                } else {
                    ""
                });
            }
        }
        Ok(EncodedBlock {
            first_row,
            matrix,
            unseen,
            texts: fields,
        })
    }
}

/// Text fields of a block's rows, a fixed number to a row, end to end.
#[derive(Debug, Clone, Default)]
pub struct TextFields {
    per_row: usize,
    text: String,
    ends: Vec<usize>,
}

impl TextFields {
    fn new(per_row: usize) -> TextFields {
        TextFields {
            per_row,
            ..TextFields::default()
        }
    }

    fn push(&mut self, field: &str) {
        self.text.push_str(field);
        self.ends.push(self.text.len());
    }

    /// Text fields to a row.
    pub fn per_row(&self) -> usize {
        self.per_row
    }

    /// Text field `slot` of row `row`.
    pub fn get(&self, row: usize, slot: usize) -> &str {
        let i = row * self.per_row + slot;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Reads a CSV file block by block into the model's inputs and the text columns of `plan`.
pub struct CsvEncoder {
    fields: CsvFields,
    encoder: BatchEncoder,
    plan: ColumnPlan,
    /// Per feature: its position among the fields read.
    feature_fields: Vec<usize>,
    text_fields: Vec<usize>,
    names: Vec<String>,
    block_rows: usize,
}

impl CsvEncoder {
    /// `header` is the file's header as `CsvLayout::sniff` read it.
    pub fn open(
        path: &Path,
        delimiter: u8,
        header: &[String],
        encoder: BatchEncoder,
        plan: ColumnPlan,
    ) -> Result<CsvEncoder> {
        let mut read: Vec<usize> = plan
            .features
            .iter()
            .map(|&(c, _)| c)
            .chain(plan.texts.iter().copied())
            .collect();
        read.sort_unstable();
        read.dedup();
        let at = |c: usize| {
            read.binary_search(&c)
                .expect("every planned column is read")
        };
        let feature_fields = plan.features.iter().map(|&(c, _)| at(c)).collect();
        let text_fields = plan.texts.iter().map(|&c| at(c)).collect();
        let fields = CsvFields::open(path, delimiter, header.len(), &read)?;
        Ok(CsvEncoder {
            fields,
            encoder,
            plan,
            feature_fields,
            text_fields,
            names: header.to_vec(),
            block_rows: 65_536,
        })
    }

    /// Blocks of at most `rows` rows (65,536 unless set).
    pub fn with_block_rows(mut self, rows: usize) -> CsvEncoder {
        self.block_rows = rows.max(1);
        self
    }

    /// The next block, None at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<EncodedBlock>> {
        let cols = self.plan.features.len();
        let mut first_row = None;
        let mut encoded = Encoded {
            values: Vec::with_capacity(self.block_rows.min(1 << 16) * cols),
            misses: vec![0; cols],
            texts: TextFields::new(self.text_fields.len()),
        };
        let mut rows = 0;
        // A block is split and encoded a few thousand records at a time, so that the fields'
        // positions are still in cache when they are encoded.
        while rows < self.block_rows {
            let want = (self.block_rows - rows).min(SPLIT_ROWS);
            let Some(part) = self.fields.next_block(want)? else {
                break;
            };
            first_row.get_or_insert(part.first_row);
            rows += part.rows;
            encode_rows(
                &part,
                &self.encoder,
                &self.plan,
                &self.feature_fields,
                &self.text_fields,
                &self.names,
                &mut encoded,
            )
            .map_err(|message| Error::data(&self.fields.path, message))?;
        }
        let Some(first_row) = first_row else {
            return Ok(None);
        };
        let unseen = UnseenCounts {
            by_feature: self
                .encoder
                .features()
                .iter()
                .zip(&encoded.misses)
                .filter(|(_, n)| **n > 0)
                .map(|(f, &n)| (f.name.clone(), n))
                .collect(),
        };
        Ok(Some(EncodedBlock {
            first_row,
            matrix: Matrix {
                values: encoded.values,
                rows,
                cols,
            },
            unseen,
            texts: encoded.texts,
        }))
    }
}

/// Records split at a time by `CsvEncoder::next_block`: their fields' positions (8 bytes per
/// field read) stay in a core's cache, for files of a few dozen columns, until encoded.
const SPLIT_ROWS: usize = 4096;

/// A block being encoded: its rows' feature values (row-major), unseen categories per feature,
/// and text fields.
struct Encoded {
    values: Vec<f64>,
    misses: Vec<u64>,
    texts: TextFields,
}

/// Encodes the records of `block` onto the end of `encoded`.
fn encode_rows(
    block: &FieldBlock<'_>,
    encoder: &BatchEncoder,
    plan: &ColumnPlan,
    feature_fields: &[usize],
    text_fields: &[usize],
    names: &[String],
    encoded: &mut Encoded,
) -> std::result::Result<(), String> {
    let cols = plan.features.len();
    let rows = block.rows;
    let na_values = encoder.na_values();
    let plain = na_values.is_empty();
    let first_value = encoded.values.len();
    encoded.values.resize(first_value + rows * cols, f64::NAN);
    let values = &mut encoded.values[first_value..];
    let misses = &mut encoded.misses;
    let texts = &mut encoded.texts;
    texts.ends.reserve(rows * text_fields.len());
    let data_row = |r: usize| block.first_row + r as u64 + 1;
    fn utf8<'b>(bytes: &'b [u8], row: u64, name: &str) -> std::result::Result<&'b str, String> {
        std::str::from_utf8(bytes)
            .map_err(|_| format!("data row {row}: column {name:?} is not UTF-8 text"))
    }
    for r in 0..rows {
        let row = &mut values[r * cols..(r + 1) * cols];
        for (c, (&(column, read), &k)) in plan.features.iter().zip(feature_fields).enumerate() {
            let bytes = block.field(r, k);
            row[c] = match read {
                // Most numbers are plain decimals, read from the bytes without more ado.
                ValueRead::Number if plain && let Some(value) = plain_decimal(bytes) => value,
                ValueRead::Number => {
                    let text = utf8(bytes, data_row(r), &names[column])?;
                    number_of(text, na_values)
                        .ok_or_else(|| not_a_number(data_row(r), &names[column], text))?
                }
                ValueRead::Boolean => {
                    let text = utf8(bytes, data_row(r), &names[column])?;
                    if text.eq_ignore_ascii_case("true") {
                        1.0
                    } else if text.eq_ignore_ascii_case("false") {
                        0.0
                    } else if is_missing_text(bytes, na_values) {
                        f64::NAN
                    } else {
                        return Err(format!(
                            "data row {}: column {:?} holds {text:?}, where the feature reads true or false",
                            data_row(r),
                            names[column]
                        ));
                    }
                }
                ValueRead::Category => {
                    // A training value is UTF-8 text: only a value not among them is checked.
                    match (
                        is_missing_text(bytes, na_values),
                        encoder.category_code(c, bytes),
                    ) {
                        (true, _) => f64::NAN,
                        (false, Some(code)) => code as f64,
                        (false, None) => {
                            utf8(bytes, data_row(r), &names[column])?;
                            misses[c] += 1;
                            f64::NAN
                        }
                    }
                }
            };
        }
        for (&column, &k) in plan.texts.iter().zip(text_fields) {
            texts.push(utf8(block.field(r, k), data_row(r), &names[column])?);
        }
    }
    Ok(())
}

/// The fields of chosen columns of a run of whole records.
#[derive(Debug)]
pub struct FieldBlock<'a> {
    /// Data rows of the file before this block's first.
    pub first_row: u64,
    pub rows: usize,
    data: &'a [u8],
    /// Per row, per chosen column: the field's bytes in `data`.
    ranges: &'a [(u32, u32)],
    per_row: usize,
}

impl FieldBlock<'_> {
    /// The field of chosen column `k` (in the order given to `CsvFields::open`) in row `row`.
    pub fn field(&self, row: usize, k: usize) -> &[u8] {
        let (start, end) = self.ranges[row * self.per_row + k];
        &self.data[start as usize..end as usize]
    }
}

/// Splits a CSV file (or a byte range of it) into records and keeps the fields of chosen
/// columns, block by block.
pub struct CsvFields {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes of the file still to be read (the rest of the range).
    remaining: u64,
    delimiter: u8,
    /// Fields every record must have (the header's).
    columns: usize,
    /// Per file column: its position among the chosen ones, or UNUSED.
    chosen: Vec<u32>,
    per_row: usize,
    /// The longest record accepted (MAX_RECORD_BYTES but in tests).
    max_record: usize,
    buf: Vec<u8>,
    /// The unread part of `buf` is `pos..end`; `buf[0]` is byte `buf_offset` of the file.
    pos: usize,
    end: usize,
    buf_offset: u64,
    eof: bool,
    /// csv_core has reported the end of the input.
    done: bool,
    header_read: bool,
    /// A quote byte was among the bytes split so far.
    saw_quote: bool,
    /// `buf[pos..quote_free_to]` is known to hold no quote byte (scanned once, not per block).
    quote_free_to: usize,
    /// Fewer unread bytes than this are topped up before a block is split.
    top_up_below: usize,
    rows_read: u64,
    core: csv_core::Reader,
    /// Unquoted fields of the records split by csv_core, and its field ends for one record.
    unquoted: Vec<u8>,
    core_ends: Vec<usize>,
    ranges: Vec<(u32, u32)>,
}

/// Where a block's fields are: in the read buffer, or in csv_core's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Buffer { start: usize },
    Unquoted,
}

impl CsvFields {
    /// `chosen` lists the file columns (0-based, ascending) whose fields are kept.
    pub fn open(path: &Path, delimiter: u8, columns: usize, chosen: &[usize]) -> Result<CsvFields> {
        Self::open_range(path, delimiter, columns, chosen, 0..u64::MAX)
    }

    /// `open` for the records in bytes `range` of the file: the range must start where a record
    /// starts (0, where the header is, or just after a line break outside quotes), and ends
    /// where the file does or where the next range starts.
    pub fn open_range(
        path: &Path,
        delimiter: u8,
        columns: usize,
        chosen: &[usize],
        range: std::ops::Range<u64>,
    ) -> Result<CsvFields> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .map_err(|e| Error::io(path, e))?;
        }
        let mut positions = vec![UNUSED; columns];
        for (k, &c) in chosen.iter().enumerate() {
            positions[c] = k as u32;
        }
        Ok(CsvFields {
            path: path.to_path_buf(),
            file,
            remaining: range.end.saturating_sub(range.start),
            delimiter,
            columns,
            chosen: positions,
            per_row: chosen.len(),
            max_record: MAX_RECORD_BYTES,
            buf: vec![0; READ_BYTES],
            pos: 0,
            end: 0,
            buf_offset: range.start,
            eof: false,
            done: false,
            // Only the range at the file's start holds the header.
            header_read: range.start > 0,
            saw_quote: false,
            quote_free_to: 0,
            top_up_below: READ_BYTES / 2,
            rows_read: 0,
            core: csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .double_quote(true)
                .quoting(true)
                .build(),
            unquoted: Vec::new(),
            core_ends: vec![0; columns + 1],
            ranges: Vec::new(),
        })
    }

    /// The next block of at most `max_rows` records (after the header), None at the end.
    pub fn next_block(&mut self, max_rows: usize) -> Result<Option<FieldBlock<'_>>> {
        loop {
            self.ranges.clear();
            self.unquoted.clear();
            if !self.header_read {
                // The header is a record like any other (its fields were read by `sniff`),
                // split by the same rules so that the first data record starts where
                // DataFusion's does.
                let (records, _) = self.split(1)?;
                if records == 1 {
                    self.header_read = true;
                    self.ranges.clear();
                    self.unquoted.clear();
                } else if self.finished() {
                    return Ok(None);
                } else {
                    self.fill()?;
                }
                continue;
            }
            // Blocks of whole size, not a full one and then the buffer's remainder: less than
            // half a buffer left is topped up first.
            if !self.eof && self.end - self.pos < self.top_up_below.min(self.buf.len() / 2) {
                self.fill()?;
            }
            let (rows, source) = self.split(max_rows)?;
            if rows > 0 {
                let first_row = self.rows_read;
                self.rows_read += rows as u64;
                let data = match source {
                    Source::Buffer { start } => &self.buf[start..self.end],
                    Source::Unquoted => &self.unquoted[..],
                };
                return Ok(Some(FieldBlock {
                    first_row,
                    rows,
                    data,
                    ranges: &self.ranges,
                    per_row: self.per_row,
                }));
            }
            if self.finished() {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    fn finished(&self) -> bool {
        self.done || (self.eof && self.pos == self.end)
    }

    /// The offset in the file of the first byte not yet split into records.
    pub fn position(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// Whether a quote byte was among the bytes split so far (all of them, once `next_block`
    /// has returned None).
    pub fn saw_quote(&self) -> bool {
        self.saw_quote
    }

    /// Blocks are split once fewer than `bytes` unread bytes are topped up (by default half
    /// the buffer, so that blocks of 65,536 rows keep their size): small blocks need less, and
    /// each top-up moves the unread bytes.
    pub fn with_top_up_below(mut self, bytes: usize) -> CsvFields {
        self.top_up_below = bytes;
        self
    }

    /// Moves the unread bytes to the front of the buffer and reads more after them.
    fn fill(&mut self) -> Result<()> {
        self.quote_free_to = self.quote_free_to.saturating_sub(self.pos);
        self.buf.copy_within(self.pos..self.end, 0);
        self.buf_offset += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        if self.end == self.buf.len() {
            if self.buf.len() >= self.max_record {
                let line = self.line_at(self.buf_offset)?;
                return Err(Error::data(
                    &self.path,
                    format!(
                        "line {line}: a record longer than {} MiB (is a quote left open?)",
                        self.max_record >> 20
                    ),
                ));
            }
            self.buf
                .resize((self.buf.len() * 2).min(self.max_record), 0);
        }
        while self.end < self.buf.len() {
            let room = (self.buf.len() - self.end)
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            if room == 0 {
                self.eof = true;
                break;
            }
            match self.file.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    self.remaining -= n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        Ok(())
    }

    /// Splits whole records from the unread bytes, at most `max_rows`, recording the chosen
    /// fields; stops early where the bytes end inside a record (unless the file ends there).
    fn split(&mut self, max_rows: usize) -> Result<(usize, Source)> {
        let from = self.quote_free_to.max(self.pos);
        let quoted = memchr::memchr(b'"', &self.buf[from..self.end]).is_some();
        if !quoted {
            self.quote_free_to = self.end;
        }
        self.saw_quote |= quoted;
        if quoted {
            Ok((self.split_quoted(max_rows)?, Source::Unquoted))
        } else {
            let start = self.pos;
            Ok((self.split_plain(max_rows)?, Source::Buffer { start }))
        }
    }

    /// `split` for bytes without a quote: fields end at the delimiter, records at `\r` or `\n`.
    fn split_plain(&mut self, max_rows: usize) -> Result<usize> {
        let (base, end, delimiter) = (self.pos, self.end, self.delimiter);
        let (buf, chosen, ranges) = (&self.buf, &self.chosen, &mut self.ranges);
        let per_row = self.per_row;
        let keep = |ranges: &mut Vec<(u32, u32)>, mark, field, from: usize, to: usize| {
            keep_field(chosen, ranges, mark, field, from - base, to - base);
        };
        // The record being split: where it starts, its ranges' start, its field, and where
        // that field starts.
        let mut open: Option<(usize, usize, usize, usize)> = None;
        let mut p = base;
        let mut rows = 0;
        let mut ragged = None;
        for s in Specials::new(&buf[base..end], delimiter) {
            let s = base + s;
            let (record_start, mark, field, field_start) = match open {
                Some(record) => record,
                // Between records, a terminator ends an empty line, which is skipped.
                None if buf[s] != delimiter && s == p => {
                    p = s + 1;
                    continue;
                }
                None => {
                    let mark = ranges.len();
                    ranges.resize(mark + per_row, (0, 0));
                    (p, mark, 0, p)
                }
            };
            keep(ranges, mark, field, field_start, s);
            if buf[s] == delimiter {
                open = Some((record_start, mark, field + 1, s + 1));
                continue;
            }
            open = None;
            p = s + 1;
            if field + 1 != self.columns {
                ragged = Some((record_start, field + 1));
                break;
            }
            rows += 1;
            if rows == max_rows {
                break;
            }
        }
        if ragged.is_none() && rows < max_rows && (open.is_some() || p < end) {
            // Bytes after the last terminator: the file's last record if it ends there,
            // otherwise the start of a record the next read completes.
            let (record_start, mark, field, field_start) = open.unwrap_or_else(|| {
                let mark = ranges.len();
                ranges.resize(mark + per_row, (0, 0));
                (p, mark, 0, p)
            });
            if self.eof {
                keep(ranges, mark, field, field_start, end);
                p = end;
                if field + 1 != self.columns {
                    ragged = Some((record_start, field + 1));
                } else {
                    rows += 1;
                }
            } else {
                ranges.truncate(mark);
                p = record_start;
            }
        }
        self.pos = p;
        match ragged {
            Some((record_start, found)) => Err(self.ragged(record_start, found)),
            None => Ok(rows),
        }
    }

    /// `split` through csv_core, for bytes with quotes.
    fn split_quoted(&mut self, max_rows: usize) -> Result<usize> {
        use csv_core::ReadRecordResult;
        let mut rows = 0;
        while rows < max_rows && !self.done {
            // Blank lines before a record are skipped, as csv_core skips them; the record's
            // own line is then the line an error names.
            while self.pos < self.end && matches!(self.buf[self.pos], b'\n' | b'\r') {
                self.pos += 1;
            }
            if self.pos == self.end && !self.eof {
                // csv_core reads no input as the end of the file: wait for the next read.
                return Ok(rows);
            }
            let record_start = self.pos;
            let out_start = self.unquoted.len();
            let mut out_len = out_start;
            let mut fields = 0;
            self.core.reset();
            loop {
                if out_len == self.unquoted.len() {
                    let grown = (self.unquoted.len() * 2).max(out_len + 4096);
                    self.unquoted.resize(grown, 0);
                }
                if fields == self.core_ends.len() {
                    self.core_ends.resize(fields * 2 + 1, 0);
                }
                let (result, read, written, ended) = self.core.read_record(
                    &self.buf[self.pos..self.end],
                    &mut self.unquoted[out_len..],
                    &mut self.core_ends[fields..],
                );
                self.pos += read;
                out_len += written;
                fields += ended;
                match result {
                    ReadRecordResult::InputEmpty if self.eof => {}
                    ReadRecordResult::InputEmpty => {
                        // The record goes on past the bytes read: split it again after the
                        // next read.
                        self.pos = record_start;
                        self.unquoted.truncate(out_start);
                        return Ok(rows);
                    }
                    ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                    ReadRecordResult::Record => break,
                    ReadRecordResult::End => {
                        self.done = true;
                        self.unquoted.truncate(out_start);
                        return Ok(rows);
                    }
                }
            }
            self.unquoted.truncate(out_len);
            if fields != self.columns {
                return Err(self.ragged(record_start, fields));
            }
            if out_len > u32::MAX as usize {
                return Err(Error::data(
                    &self.path,
                    "a block of fields of 4 GiB or more cannot be read",
                ));
            }
            let mark = self.ranges.len();
            self.ranges.resize(mark + self.per_row, (0, 0));
            for field in 0..fields {
                let start = out_start
                    + if field == 0 {
                        0
                    } else {
                        self.core_ends[field - 1]
                    };
                let end = out_start + self.core_ends[field];
                keep_field(&self.chosen, &mut self.ranges, mark, field, start, end);
            }
            rows += 1;
        }
        Ok(rows)
    }

    /// The error for a record starting at `record_start` in the buffer with `found` fields.
    fn ragged(&mut self, record_start: usize, found: usize) -> Error {
        let offset = self.buf_offset + record_start as u64;
        match self.line_at(offset) {
            Ok(line) => Error::data(
                &self.path,
                format!(
                    "line {line}: expected {} fields, found {found}",
                    self.columns
                ),
            ),
            Err(e) => e,
        }
    }

    /// The 1-based line of the file that byte `offset` is on: the file is read again up to it
    /// (only when an error is reported).
    fn line_at(&self, offset: u64) -> Result<u64> {
        let file = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut prefix = std::io::BufReader::with_capacity(1 << 20, file).take(offset);
        let mut chunk = vec![0; 1 << 20];
        let mut newlines = 0u64;
        loop {
            let n = prefix
                .read(&mut chunk)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                return Ok(newlines + 1);
            }
            newlines += memchr::memchr_iter(b'\n', &chunk[..n]).count() as u64;
        }
    }
}

/// Records field `field` (bytes `start..end` of the block's data) of the record whose ranges
/// start at `mark`, if its column is chosen.
fn keep_field(
    chosen: &[u32],
    ranges: &mut [(u32, u32)],
    mark: usize,
    field: usize,
    start: usize,
    end: usize,
) {
    if let Some(&k) = chosen.get(field)
        && k != UNUSED
    {
        ranges[mark + k as usize] = (start as u32, end as u32);
    }
}

/// The positions of the delimiter, `\n` and `\r` bytes of a slice, in order: eight bytes at a
/// time, each word's matches found with a few integer operations and taken bit by bit (the
/// bytes of a CSV record are mostly short fields, so matches are dense).
struct Specials<'a> {
    bytes: &'a [u8],
    delimiter: u64,
    /// Start of the next word to look at.
    next: usize,
    /// Start of the word `matches` is of, and one high bit per matching byte not yet taken.
    word: usize,
    matches: u64,
}

impl<'a> Specials<'a> {
    fn new(bytes: &'a [u8], delimiter: u8) -> Specials<'a> {
        Specials {
            bytes,
            delimiter: u64::from(delimiter) * 0x0101_0101_0101_0101,
            next: 0,
            word: 0,
            matches: 0,
        }
    }

    /// The high bit of each byte of `word` equal to the delimiter, `\n` or `\r`.
    fn matches_in(&self, word: u64) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        // The high bit of each zero byte of x, exactly (no carries between bytes).
        let zeros = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
        zeros(word ^ self.delimiter)
            | zeros(word ^ 0x0a0a_0a0a_0a0a_0a0a)
            | zeros(word ^ 0x0d0d_0d0d_0d0d_0d0d)
    }
}

impl Iterator for Specials<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.matches == 0 {
            let rest = self.bytes.get(self.next..).filter(|r| !r.is_empty())?;
            let mut word = [0u8; 8];
            let n = rest.len().min(8);
            word[..n].copy_from_slice(&rest[..n]);
            let mut matches = self.matches_in(u64::from_le_bytes(word));
            // Bytes past the end (zero padding) never match.
            if n < 8 {
                matches &= (1u64 << (8 * n)) - 1;
            }
            self.word = self.next;
            self.next += n;
            self.matches = matches;
        }
        let bit = self.matches.trailing_zeros() as usize;
        self.matches &= self.matches - 1;
        Some(self.word + bit / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::encode::{Feature, FeatureSet};
    use rand::{Rng, SeedableRng};

    impl CsvFields {
        /// The reader with a buffer of `read_bytes` at first and a record limit of `max_record`.
        fn with_buffer(mut self, read_bytes: usize, max_record: usize) -> CsvFields {
            self.buf = vec![0; read_bytes];
            self.max_record = max_record;
            self
        }
    }

    /// Every chosen field of every data record, block after block, in blocks of `max_rows`.
    fn all_fields(mut fields: CsvFields, max_rows: usize) -> Result<Vec<Vec<Vec<u8>>>> {
        let mut rows = Vec::new();
        while let Some(block) = fields.next_block(max_rows)? {
            assert_eq!(block.first_row, rows.len() as u64);
            assert!(block.rows <= max_rows);
            for r in 0..block.rows {
                rows.push(
                    (0..block.per_row)
                        .map(|k| block.field(r, k).to_vec())
                        .collect(),
                );
            }
        }
        Ok(rows)
    }

    /// A random CSV text: `columns` fields to a record, with quoted fields (holding delimiters,
    /// quotes and line breaks) only when `quotes`, all three line endings, blank lines, and
    /// sometimes no final line ending.
    fn random_csv(rng: &mut impl Rng, columns: usize, records: usize, quotes: bool) -> Vec<u8> {
        let plain = ["", "a", "12", "-3.5", "  sp ", "é", "x y", "NA", "true"];
        let quoted = [
            "\"x,y\"",
            "\"say \"\"hi\"\"\"",
            "\"two\nlines\"",
            "\"cr\r\nlf\"",
            "\"\"",
            "\"a\"b",
            "a\"b",
        ];
        let endings = ["\n", "\r\n", "\r"];
        let mut text = Vec::new();
        for r in 0..=records {
            if rng.random_bool(0.1) {
                text.extend_from_slice(endings[rng.random_range(0..3)].as_bytes());
            }
            for c in 0..columns {
                if c > 0 {
                    text.push(b',');
                }
                let field = if r == 0 {
                    format!("c{c}")
                } else if quotes && rng.random_bool(0.3) {
                    quoted[rng.random_range(0..quoted.len())].to_string()
                } else {
                    plain[rng.random_range(0..plain.len())].to_string()
                };
                text.extend_from_slice(field.as_bytes());
            }
            if r < records || rng.random_bool(0.5) {
                text.extend_from_slice(endings[rng.random_range(0..3)].as_bytes());
            }
        }
        text
    }

    /// The chosen fields of every data record as the csv crate (over csv_core) reads them.
    fn csv_crate_fields(text: &[u8], chosen: &[usize]) -> Vec<Vec<Vec<u8>>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text);
        reader
            .byte_records()
            .map(|record| {
                let record = record.expect("a well-formed record");
                chosen.iter().map(|&c| record[c].to_vec()).collect()
            })
            .collect()
    }

    #[test]
    fn fields_are_those_csv_core_reads_wherever_the_reads_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.csv");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        for case in 0..400 {
            let columns = rng.random_range(1..6);
            let records = rng.random_range(0..40);
            let quotes = case % 2 == 1;
            let text = random_csv(&mut rng, columns, records, quotes);
            std::fs::write(&path, &text).unwrap();
            let chosen: Vec<usize> = (0..columns).filter(|_| rng.random_bool(0.7)).collect();
            let expected = csv_crate_fields(&text, &chosen);
            let read_bytes = rng.random_range(1..80);
            let max_rows = rng.random_range(1..10);
            let fields = CsvFields::open(&path, b',', columns, &chosen)
                .unwrap()
                .with_buffer(read_bytes, 1 << 20);
            let got = all_fields(fields, max_rows).unwrap();
            assert_eq!(
                got,
                expected,
                "case {case}: {:?}, buffer {read_bytes}, blocks of {max_rows}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn specials_are_the_bytes_memchr_finds() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..2_000 {
            let len = rng.random_range(0..40);
            let alphabet = [b'a', b',', b';', b'\n', b'\r', 0, 0x80, 0xff, b'\t'];
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            for delimiter in [b',', b';', b'\t', 0, 0xff] {
                let expected: Vec<usize> =
                    memchr::memchr3_iter(delimiter, b'\n', b'\r', &bytes).collect();
                let got: Vec<usize> = Specials::new(&bytes, delimiter).collect();
                assert_eq!(got, expected, "{bytes:?} {delimiter}");
            }
        }
    }

    #[test]
    fn a_record_with_the_wrong_field_count_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragged.csv");
        let cases: [(&str, u64, usize); 5] = [
            ("a,b\n1,2\n3\n", 3, 1),
            ("a,b\r\n1,2\r\n\r\n3,4,5\r\n", 4, 3),
            ("a,b\n\"x\ny\",2\n3,\"4\",5", 4, 3),
            ("a,b\n1,2\n1", 3, 1),
            ("a,b\n1,2,\n", 2, 3),
        ];
        for (text, line, found) in cases {
            std::fs::write(&path, text).unwrap();
            for read_bytes in [2, 5, 64] {
                let fields = CsvFields::open(&path, b',', 2, &[0, 1])
                    .unwrap()
                    .with_buffer(read_bytes, 1 << 20);
                let message = all_fields(fields, 100).unwrap_err().to_string();
                assert!(
                    message.contains(&format!("line {line}: expected 2 fields, found {found}")),
                    "{text:?}: {message}"
                );
            }
        }
    }

    #[test]
    fn a_record_longer_than_the_limit_is_an_error_not_a_growing_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open-quote.csv");
        let mut text = b"a,b\n1,2\n3,\"never closed".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10_000));
        std::fs::write(&path, &text).unwrap();
        let fields = CsvFields::open(&path, b',', 2, &[0, 1])
            .unwrap()
            .with_buffer(64, 4096);
        let message = all_fields(fields, 100).unwrap_err().to_string();
        assert!(
            message.contains("line 3: a record longer than"),
            "{message}"
        );
    }

    fn feature(name: &str, kind: FeatureKind, categories: &[&str]) -> Feature {
        Feature {
            name: name.into(),
            kind,
            categories: categories.iter().map(|c| c.to_string()).collect(),
            numeric_categories: false,
            codes: false,
        }
    }

    /// Every encoded block of `path` read by `CsvEncoder`, joined.
    fn scanned(
        path: &Path,
        set: &FeatureSet,
        booleans: &[&str],
        texts: &[&str],
    ) -> Result<Vec<EncodedBlock>> {
        let layout = crate::data::CsvLayout::sniff(path, None)?;
        let encoder = set.encoder();
        let plan = ColumnPlan::for_header(&layout.header, &encoder, booleans, texts).unwrap();
        let mut reader = CsvEncoder::open(path, layout.delimiter, &layout.header, encoder, plan)?
            .with_block_rows(7);
        let mut blocks = Vec::new();
        while let Some(block) = reader.next_block()? {
            blocks.push(block);
        }
        Ok(blocks)
    }

    fn same_values(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn encoded_blocks_equal_the_table_loaders_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for na_values in [vec![], vec!["n/a".to_string(), "-1".to_string()]] {
            let mut text = String::from("id,age,spend,channel,flag,note\n");
            let channels = ["email", "push", "sms", "", "fax", "n/a", "\"push\""];
            let numbers = [
                "", " 3", "-1", "0.05", "1e3", "12", "007", "-0", "99.125", "n/a",
            ];
            for i in 0..100 {
                let age = numbers[rng.random_range(0..numbers.len() - 1)];
                let spend = format!("{:.3}", rng.random::<f64>() * 1000.0);
                let channel = channels[rng.random_range(0..channels.len())];
                let flag = ["true", "FALSE", ""][rng.random_range(0..3)];
                text.push_str(&format!("p{i},{age},{spend},{channel},{flag},\"n, {i}\"\n"));
            }
            std::fs::write(&path, &text).unwrap();
            let set = FeatureSet {
                features: vec![
                    feature("age", FeatureKind::Numeric, &[]),
                    feature("spend", FeatureKind::Numeric, &[]),
                    feature(
                        "channel",
                        FeatureKind::Categorical,
                        &["email", "push", "sms"],
                    ),
                    feature("flag", FeatureKind::Numeric, &[]),
                ],
                na_values: na_values.clone(),
            };
            let blocks = scanned(&path, &set, &["flag"], &["id", "note"]).unwrap();
            let options = crate::data::LoadOptions {
                delimiter: None,
                text_columns: vec!["id".into(), "channel".into(), "note".into()],
                na_values: na_values.clone(),
            };
            let table = crate::data::load_table(&path, &options).unwrap();
            let (matrix, unseen) = set.encode(&table.batch, None).unwrap();
            let values: Vec<f64> = blocks
                .iter()
                .flat_map(|b| b.matrix.values.clone())
                .collect();
            assert!(same_values(&values, &matrix.values), "{na_values:?}");
            let mut counted = UnseenCounts::default();
            blocks.iter().for_each(|b| counted.add(&b.unseen));
            assert_eq!(counted, unseen);
            assert!(unseen.total() > 0);
            let ids = crate::data::text_array(table.column("id", "id").unwrap()).unwrap();
            let mut row = 0;
            for block in &blocks {
                for r in 0..block.rows() {
                    assert_eq!(block.texts.get(r, 0), ids.value(row));
                    assert_eq!(block.texts.get(r, 1), format!("n, {row}"));
                    row += 1;
                }
            }
            assert_eq!(row, 100);
        }
    }

    #[test]
    fn a_stray_value_names_its_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stray.csv");
        let set = FeatureSet {
            features: vec![
                feature("age", FeatureKind::Numeric, &[]),
                feature("flag", FeatureKind::Numeric, &[]),
                feature("city", FeatureKind::Categorical, &["x"]),
            ],
            na_values: vec![],
        };
        let cases = [
            (
                "age,flag,city\n1,true,x\n1,2,x\n",
                "data row 2: column \"flag\" holds \"2\", where the feature reads true or false",
            ),
            (
                "age,flag,city\n1,true,x\n1,true,x\n1 234,true,x\n",
                "data row 3: column \"age\" holds \"1 234\", which is not a number",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let message = scanned(&path, &set, &["flag"], &[])
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message}");
        }
        let mut bytes = b"age,flag,city\n1,true,x\n1,true,\xff\n".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let message = scanned(&path, &set, &["flag"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("data row 2: column \"city\" is not UTF-8 text"),
            "{message}"
        );
        bytes.truncate(bytes.len() - 2);
        bytes.extend_from_slice(b"x\n");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(scanned(&path, &set, &["flag"], &[]).unwrap()[0].rows(), 2);
    }
}
