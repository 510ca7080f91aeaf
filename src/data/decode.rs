//! `load_table`'s CSV reader: a whole file decoded straight into the Arrow columns of its
//! schema, on every core.
//!
//! Records are split by [`CsvFields`] (csv_core's rules, as DataFusion's reader splits them),
//! and each field becomes a value by the rule arrow-csv applies to its column's type, so the
//! table is the one DataFusion's reader builds, value for value:
//! - Float64: empty is null; otherwise arrow's `Float64Type::parse` (a plain decimal is read
//!   by `plain_decimal`, which gives the same correctly rounded value without its general
//!   algorithm);
//! - Boolean: empty is null; `true` or `false` in any case;
//! - Utf8: empty is null; otherwise the text as written.
//!
//! With `na_values`, a field that is one of them is null too, and numbers are read by the value
//! rule `number_of` (a NaN as null), which is what `load_table` does with DataFusion's output
//! (whose decoder applies no null pattern: `load_table` reads such columns as text and parses
//! them itself).
//!
//! A file without a quote byte is cut into byte ranges at line breaks, decoded side by side and
//! joined in file order; whether a range saw a quote is known only once it has been split, so
//! a file that has one is decoded again as one range. Anything this reader would not decode
//! exactly as DataFusion does (a column of another type, such as dates; a value its type does
//! not parse; a ragged record; text that is not UTF-8) makes it give up: the caller then reads
//! the file with DataFusion, which gives the table or its own error.

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, RecordBatch, StringArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use rayon::prelude::*;

use super::encode::{is_missing_text, number_of, plain_decimal};
use super::scan::{CsvFields, FieldBlock};
use crate::{Error, Result};

/// A file at least this large is cut into ranges decoded side by side.
pub const RANGE_MIN_BYTES: u64 = 8 << 20;

/// Ranges per core: more than one, so that a core finishing early takes another.
const RANGES_PER_CORE: u64 = 4;

/// Records asked of the splitter at a time: few enough that a block's bytes and field ranges
/// stay in the core's cache while it is decoded column after column.
const BLOCK_ROWS: usize = 2048;

/// The splitter tops its buffer up when fewer unread bytes than this are left.
const TOP_UP_BELOW: usize = 1 << 20;

/// Room reserved beyond a range's expected size (from its first block), for rows longer than
/// the first block's.
const RESERVE_SLACK: f64 = 1.05;

/// How a column's fields become values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    Number,
    Boolean,
    Text,
}

/// The table in `path` (a CSV file with `delimiter`) read with `schema`, as DataFusion's reader
/// and `load_table` would read it; None where this reader gives up (see the module's doc).
pub fn decode_csv(
    path: &Path,
    delimiter: u8,
    schema: &SchemaRef,
    na_values: &[String],
) -> Result<Option<RecordBatch>> {
    decode_csv_in_ranges(path, delimiter, schema, na_values, RANGE_MIN_BYTES)
}

/// `decode_csv`, cutting files of at least `min_bytes` into ranges.
pub(crate) fn decode_csv_in_ranges(
    path: &Path,
    delimiter: u8,
    schema: &SchemaRef,
    na_values: &[String],
    min_bytes: u64,
) -> Result<Option<RecordBatch>> {
    let Some(decodes) = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Float64 => Some(Decode::Number),
            DataType::Boolean => Some(Decode::Boolean),
            DataType::Utf8 => Some(Decode::Text),
            _ => None,
        })
        .collect::<Option<Vec<Decode>>>()
    else {
        return Ok(None);
    };
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let file = FileDecoding {
        path,
        delimiter,
        schema,
        decodes,
        na_values,
        size,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let whole: Vec<Range<u64>> = std::iter::once(0..u64::MAX).collect();
    let decoded = if cores > 1 && size >= min_bytes {
        match file.ranges(&range_starts(path, size, cores * RANGES_PER_CORE)?) {
            // A quote may hold a line break that a range was cut at: one range, from the start.
            Some((_, true)) | None => file.ranges(&whole),
            Some((batches, false)) => Some((batches, false)),
        }
    } else {
        file.ranges(&whole)
    };
    let Some((batches, _)) = decoded else {
        return Ok(None);
    };
    super::concat_columnwise(schema, batches)
        .map(Some)
        .map_err(|e| Error::data(path, e))
}

/// `parts` ranges of about equal size covering the file, each after the first starting just
/// past a line break (so at a record's start, unless the break is inside quotes), the last
/// running to the end of the file whatever its size then.
fn range_starts(path: &Path, size: u64, parts: u64) -> Result<Vec<Range<u64>>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut starts = vec![0u64];
    let mut chunk = vec![0u8; 64 << 10];
    for part in 1..parts {
        let target = (size / parts) * part;
        if target <= *starts.last().expect("starts with 0") {
            continue;
        }
        file.seek(SeekFrom::Start(target))
            .map_err(|e| Error::io(path, e))?;
        let mut at = target;
        let start = loop {
            let n = file.read(&mut chunk).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break None;
            }
            if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                break Some(at + i as u64 + 1);
            }
            at += n as u64;
        };
        match start {
            Some(start) if start < size => starts.push(start),
            _ => break,
        }
    }
    let mut ranges: Vec<Range<u64>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*starts.last().expect("starts with 0")..u64::MAX);
    Ok(ranges)
}

/// One file being decoded: what each of its ranges is decoded with.
struct FileDecoding<'a> {
    path: &'a Path,
    delimiter: u8,
    schema: &'a SchemaRef,
    /// Per column.
    decodes: Vec<Decode>,
    na_values: &'a [String],
    /// The file's size when the decoding started.
    size: u64,
}

impl FileDecoding<'_> {
    /// Every range decoded (on every core), in order, and whether any saw a quote; None if one
    /// gave up.
    fn ranges(&self, ranges: &[Range<u64>]) -> Option<(Vec<RecordBatch>, bool)> {
        // One range giving up, or seeing a quote where quotes make the cuts unsafe, stops the
        // rest.
        let stop = AtomicBool::new(false);
        let several = ranges.len() > 1;
        let decoded: Vec<Option<(RecordBatch, bool)>> = ranges
            .par_iter()
            .map(|range| {
                let result = self.range(range, &|f| {
                    stop.load(Ordering::Relaxed) || (several && f.saw_quote())
                });
                if !matches!(result, Some((_, false))) {
                    stop.store(true, Ordering::Relaxed);
                }
                result
            })
            .collect();
        let mut batches = Vec::with_capacity(decoded.len());
        let mut saw_quote = false;
        for range in decoded {
            let (batch, quote) = range?;
            saw_quote |= quote;
            batches.push(batch);
        }
        Some((batches, saw_quote))
    }

    /// One range's records as a batch, and whether it saw a quote; None where the reader gives
    /// up or `stop` says so (it is asked after every block, for the splitter that read it).
    fn range(
        &self,
        range: &Range<u64>,
        stop: &dyn Fn(&CsvFields) -> bool,
    ) -> Option<(RecordBatch, bool)> {
        let columns = self.decodes.len();
        let all: Vec<usize> = (0..columns).collect();
        let mut fields =
            CsvFields::open_range(self.path, self.delimiter, columns, &all, range.clone())
                .ok()?
                .with_top_up_below(TOP_UP_BELOW);
        let mut builders: Vec<ColumnBuilder> = self
            .decodes
            .iter()
            .map(|&d| ColumnBuilder::new(d))
            .collect();
        let mut rows = 0usize;
        let length = range.end.min(self.size).saturating_sub(range.start);
        loop {
            let block = match fields.next_block(BLOCK_ROWS) {
                Ok(Some(block)) => block,
                Ok(None) => break,
                Err(_) => return None,
            };
            let first = rows == 0;
            rows += block.rows;
            for (k, builder) in builders.iter_mut().enumerate() {
                builder.push_block(&block, k, self.na_values)?;
            }
            if first {
                // The whole range's room at once, from the first block's bytes per row: grown
                // a block at a time, the columns would be copied as they double and leave the
                // old copies in the allocator's heaps, holding far more memory than the table.
                let read = fields.position().saturating_sub(range.start).max(1);
                let share = length as f64 / read as f64;
                for builder in &mut builders {
                    builder.reserve_share(share * RESERVE_SLACK);
                }
            }
            if stop(&fields) {
                return None;
            }
        }
        let arrays = builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect::<Option<Vec<ArrayRef>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch =
            RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options).ok()?;
        Some((batch, fields.saw_quote()))
    }
}

/// Which of a column's values are valid: nothing is kept until the first null.
#[derive(Default)]
struct Validity {
    len: usize,
    bits: Option<BooleanBufferBuilder>,
}

impl Validity {
    #[inline]
    fn push(&mut self, valid: bool) {
        match &mut self.bits {
            None if valid => self.len += 1,
            None => {
                let mut bits = BooleanBufferBuilder::new((self.len + 1).max(BLOCK_ROWS));
                bits.append_n(self.len, true);
                bits.append(false);
                self.bits = Some(bits);
            }
            Some(bits) => bits.append(valid),
        }
    }

    fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut bits| NullBuffer::new(bits.finish()))
    }
}

/// One column's values as they are decoded.
enum ColumnBuilder {
    Number {
        values: Vec<f64>,
        nulls: Validity,
    },
    Boolean {
        values: BooleanBufferBuilder,
        nulls: Validity,
    },
    Text {
        bytes: Vec<u8>,
        offsets: Vec<i32>,
        nulls: Validity,
    },
}

impl ColumnBuilder {
    fn new(decode: Decode) -> ColumnBuilder {
        let nulls = Validity::default();
        match decode {
            Decode::Number => ColumnBuilder::Number {
                values: Vec::new(),
                nulls,
            },
            Decode::Boolean => ColumnBuilder::Boolean {
                values: BooleanBufferBuilder::new(BLOCK_ROWS),
                nulls,
            },
            Decode::Text => ColumnBuilder::Text {
                bytes: Vec::new(),
                offsets: vec![0],
                nulls,
            },
        }
    }

    /// Reserves room for `share` times what the column holds (at least what it holds).
    fn reserve_share(&mut self, share: f64) {
        let more = |len: usize| ((len as f64 * share) as usize).saturating_sub(len);
        match self {
            ColumnBuilder::Number { values, .. } => values.reserve_exact(more(values.len())),
            ColumnBuilder::Boolean { .. } => {}
            ColumnBuilder::Text { bytes, offsets, .. } => {
                bytes.reserve_exact(more(bytes.len()));
                offsets.reserve_exact(more(offsets.len()));
            }
        }
    }

    /// Adds field `k` of every record of `block`; None where a field does not decode.
    fn push_block(&mut self, block: &FieldBlock<'_>, k: usize, na_values: &[String]) -> Option<()> {
        let plain = na_values.is_empty();
        match self {
            ColumnBuilder::Number { values, nulls } => {
                values.reserve(block.rows);
                for r in 0..block.rows {
                    let field = block.field(r, k);
                    let value = if plain {
                        if field.is_empty() {
                            None
                        } else if let Some(value) = plain_decimal(field) {
                            Some(value)
                        } else {
                            Some(Float64Type::parse(std::str::from_utf8(field).ok()?)?)
                        }
                    } else if is_missing_text(field, na_values) {
                        None
                    } else {
                        let value = number_of(std::str::from_utf8(field).ok()?, na_values)?;
                        (!value.is_nan()).then_some(value)
                    };
                    values.push(value.unwrap_or(0.0));
                    nulls.push(value.is_some());
                }
            }
            ColumnBuilder::Boolean { values, nulls } => {
                for r in 0..block.rows {
                    let field = block.field(r, k);
                    let value = if is_missing_text(field, na_values) {
                        None
                    } else if field.eq_ignore_ascii_case(b"true") {
                        Some(true)
                    } else if field.eq_ignore_ascii_case(b"false") {
                        Some(false)
                    } else {
                        return None;
                    };
                    values.append(value.unwrap_or(false));
                    nulls.push(value.is_some());
                }
            }
            ColumnBuilder::Text {
                bytes,
                offsets,
                nulls,
            } => {
                offsets.reserve(block.rows);
                for r in 0..block.rows {
                    let field = block.field(r, k);
                    let missing = is_missing_text(field, na_values);
                    if !missing {
                        bytes.extend_from_slice(field);
                    }
                    offsets.push(i32::try_from(bytes.len()).ok()?);
                    nulls.push(!missing);
                }
            }
        }
        Some(())
    }

    /// The column as an Arrow array; None when a text column is not UTF-8.
    fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            ColumnBuilder::Number { values, nulls } => Arc::new(Float64Array::new(
                ScalarBuffer::from(values),
                nulls.finish(),
            )),
            ColumnBuilder::Boolean { mut values, nulls } => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            ColumnBuilder::Text {
                bytes,
                offsets,
                nulls,
            } => {
                // `try_new` checks that the bytes are UTF-8 and every field starts and ends on
                // a character boundary.
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(
                    StringArray::try_new(offsets, Buffer::from_vec(bytes), nulls.finish()).ok()?,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LoadOptions;
    use arrow::datatypes::{Field, Schema};
    use rand::{Rng, SeedableRng};

    /// A random CSV text of `kinds` columns: values of each kind's usual and unusual forms
    /// (some that its type does not parse), quoted fields (holding delimiters, quotes and line
    /// breaks) only when `quotes`, all three line endings, blank lines, sometimes no final one.
    fn random_csv(rng: &mut impl Rng, kinds: &[Decode], records: usize, quotes: bool) -> Vec<u8> {
        let numbers = [
            "",
            "0",
            "12",
            "-3.5",
            "007",
            "-0",
            "0.1",
            "99.125",
            "1e3",
            "1E-320",
            "+4",
            ".5",
            "5.",
            " 1.5",
            "2 ",
            "inf",
            "-Infinity",
            "NaN",
            "nan",
            "123456789012345678",
            "0.30000000000000004",
            "1e400",
            "NA",
            "-1",
            "abc",
            "1,5",
            "é",
        ];
        let booleans = ["", "true", "FALSE", "True", "NA", " true", "yes"];
        let texts = ["", "a", "NA", "-1", "x y", "é", "  sp ", "12", "ümlaut"];
        let quoted_texts = [
            "\"x,y\"",
            "\"say \"\"hi\"\"\"",
            "\"two\nlines\"",
            "\"cr\r\nlf\"",
            "\"\"",
            "\"12\"",
        ];
        let quoted_numbers = ["\"12\"", "\"-0.5\"", "\"\""];
        let quoted_booleans = ["\"true\"", "\"\""];
        let endings = ["\n", "\r\n", "\r"];
        let mut text = Vec::new();
        for r in 0..=records {
            if rng.random_bool(0.05) {
                text.extend_from_slice(endings[rng.random_range(0..3)].as_bytes());
            }
            for (c, kind) in kinds.iter().enumerate() {
                if c > 0 {
                    text.push(b',');
                }
                let (pool, quoted): (&[&str], &[&str]) = match kind {
                    Decode::Number => (&numbers, &quoted_numbers),
                    Decode::Boolean => (&booleans, &quoted_booleans),
                    Decode::Text => (&texts, &quoted_texts),
                };
                // Unusual values are rare, so that most files decode.
                let value = if r == 0 {
                    format!("c{c}")
                } else if quotes && rng.random_bool(0.2) {
                    quoted[rng.random_range(0..quoted.len())].to_string()
                } else if rng.random_bool(0.99) {
                    pool[rng.random_range(0..pool.len().min(5))].to_string()
                } else {
                    pool[rng.random_range(0..pool.len())].to_string()
                };
                text.extend_from_slice(value.as_bytes());
            }
            if r < records || rng.random_bool(0.5) {
                text.extend_from_slice(endings[rng.random_range(0..3)].as_bytes());
            }
        }
        text
    }

    fn schema_of(kinds: &[Decode]) -> SchemaRef {
        let fields: Vec<Field> = kinds
            .iter()
            .enumerate()
            .map(|(c, kind)| {
                let data_type = match kind {
                    Decode::Number => DataType::Float64,
                    Decode::Boolean => DataType::Boolean,
                    Decode::Text => DataType::Utf8,
                };
                Field::new(format!("c{c}"), data_type, true)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The file read both ways: where DataFusion reads it, ours gives the same batch or gives
    /// up; where DataFusion refuses it, ours gives up. Returns whether ours decoded it.
    fn check_against_datafusion(
        path: &Path,
        schema: &SchemaRef,
        na_values: &[String],
        min_bytes: u64,
        case: &str,
    ) -> bool {
        let options = LoadOptions {
            delimiter: Some(b','),
            text_columns: Vec::new(),
            na_values: na_values.to_vec(),
        };
        let theirs =
            crate::data::read_with_datafusion(&crate::data::session(), path, &options, schema);
        let ours = decode_csv_in_ranges(path, b',', schema, na_values, min_bytes).unwrap();
        match (ours, theirs) {
            (Some(ours), Ok(theirs)) => {
                assert_eq!(ours, theirs, "{case}");
                true
            }
            (Some(ours), Err(e)) => {
                panic!("{case}: DataFusion refuses it ({e}), ours read {ours:?}")
            }
            (None, _) => false,
        }
    }

    #[test]
    fn tables_equal_those_datafusion_reads_or_datafusion_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.csv");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        let (mut decoded, cases) = (0, 600);
        for case in 0..cases {
            let columns = rng.random_range(1..6);
            let kinds: Vec<Decode> = (0..columns)
                .map(|_| [Decode::Number, Decode::Boolean, Decode::Text][rng.random_range(0..3)])
                .collect();
            let records = rng.random_range(0..60);
            let quotes = case % 3 == 2;
            let text = random_csv(&mut rng, &kinds, records, quotes);
            std::fs::write(&path, &text).unwrap();
            let na_values: Vec<String> = if case % 2 == 0 {
                Vec::new()
            } else {
                vec!["NA".into(), "-1".into()]
            };
            // Ranges from one byte up: many ranges, cut anywhere a line break is.
            let min_bytes = [1, 64, u64::MAX][case % 3];
            let label = format!(
                "case {case}: {kinds:?} {na_values:?} ranges from {min_bytes} bytes: {:?}",
                String::from_utf8_lossy(&text)
            );
            decoded += usize::from(check_against_datafusion(
                &path,
                &schema_of(&kinds),
                &na_values,
                min_bytes,
                &label,
            ));
        }
        // The rare unusual values make some files undecodable; most must decode.
        assert!(decoded > cases / 2, "only {decoded} of {cases} decoded");
    }

    #[test]
    fn a_file_cut_into_ranges_reads_as_one_with_or_without_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.csv");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let kinds = [
            Decode::Text,
            Decode::Number,
            Decode::Boolean,
            Decode::Number,
        ];
        for quotes in [false, true] {
            let mut text = b"c0,c1,c2,c3\n".to_vec();
            for i in 0..5_000 {
                let name = if quotes && i % 997 == 0 {
                    format!("\"p\n{i}\"")
                } else {
                    format!("p{i}")
                };
                let spend = format!("{:.3}", rng.random::<f64>() * 100.0);
                let flag = ["true", "false", ""][i % 3];
                let crlf = if i % 7 == 0 { "\r\n" } else { "\n" };
                text.extend_from_slice(format!("{name},{spend},{flag},{i}{crlf}").as_bytes());
            }
            std::fs::write(&path, &text).unwrap();
            for min_bytes in [1, 1000, u64::MAX] {
                assert!(check_against_datafusion(
                    &path,
                    &schema_of(&kinds),
                    &[],
                    min_bytes,
                    &format!("quotes {quotes}, ranges from {min_bytes} bytes"),
                ));
            }
            let ranges = range_starts(&path, text.len() as u64, 8).unwrap();
            assert_eq!(ranges.len(), 8);
            assert_eq!(ranges[0].start, 0);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(text[pair[1].start as usize - 1], b'\n');
            }
        }
    }

    #[test]
    fn every_form_of_number_and_boolean_reads_as_datafusion_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forms.csv");
        let numbers = [
            "+4",
            ".5",
            "5.",
            " 1.5",
            "2 ",
            "inf",
            "-Infinity",
            "NaN",
            "nan",
            "1E-320",
            "1e400",
            "-0",
            "007",
            "0.30000000000000004",
            "123456789012345678",
            "9007199254740993",
            "",
            "1e-5",
            "-.25",
        ];
        let booleans = ["True", "FALSE", "", "true", "false", "tRuE"];
        let mut text = String::from("c0,c1,c2\n");
        for (i, number) in numbers.iter().enumerate() {
            text.push_str(&format!("p{i},{number},{}\n", booleans[i % booleans.len()]));
        }
        std::fs::write(&path, &text).unwrap();
        let schema = schema_of(&[Decode::Text, Decode::Number, Decode::Boolean]);
        assert!(check_against_datafusion(&path, &schema, &[], 1, "plain"));
        text.push_str("pna,NA,NA\npsp, NA ,\n");
        std::fs::write(&path, &text).unwrap();
        let na = ["NA".to_string()];
        assert!(check_against_datafusion(&path, &schema, &na, 1, "na"));
    }

    #[test]
    fn a_na_value_in_a_true_false_column_is_missing_whichever_reader_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = LoadOptions {
            delimiter: None,
            text_columns: Vec::new(),
            na_values: vec!["NA".into()],
        };
        // The date column leaves the second file to DataFusion.
        for (name, text) in [
            ("plain.csv", "id,flag\na,true\nb,NA\nc,FALSE\n"),
            (
                "dated.csv",
                "id,flag,day\na,true,2024-01-02\nb,NA,2024-01-03\nc,FALSE,\n",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let table = crate::data::load_table(&path, &options).unwrap();
            let flags = table.column("flag", "flag").unwrap();
            let flags = flags.as_any().downcast_ref::<BooleanArray>().unwrap();
            assert_eq!(
                flags.iter().collect::<Vec<_>>(),
                [Some(true), None, Some(false)],
                "{name}"
            );
        }
    }

    #[test]
    fn what_it_cannot_read_as_datafusion_does_it_leaves_to_datafusion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.csv");
        let schema = schema_of(&[Decode::Text, Decode::Number]);
        let cases: [&[u8]; 4] = [
            b"c0,c1\na,1\nb\n",
            b"c0,c1\na,1\nb,x\n",
            b"c0,c1\na,1\n\xff,2\n",
            b"c0,c1\na,1\nb,2,3\n",
        ];
        for text in cases {
            std::fs::write(&path, text).unwrap();
            assert!(
                decode_csv_in_ranges(&path, b',', &schema, &[], 1)
                    .unwrap()
                    .is_none()
            );
        }
        let dates: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("c0", DataType::Utf8, true),
            Field::new("c1", DataType::Date32, true),
        ]));
        std::fs::write(&path, "c0,c1\na,2024-01-02\n").unwrap();
        assert!(
            decode_csv_in_ranges(&path, b',', &dates, &[], 1)
                .unwrap()
                .is_none()
        );
    }
}
