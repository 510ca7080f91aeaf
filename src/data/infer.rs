//! A CSV file's column types as DataFusion's inference gives them, worked out on every core.
//!
//! DataFusion infers a CSV file's types on one core: it cuts the file's first records into
//! chunks at line breaks, lets arrow-csv infer each chunk's types (arrow's per-value classes,
//! merged within the chunk: integers and decimals make Float64, anything mixed Utf8), and merges
//! the chunks' types: nulls dropped, one type kept, Int64 with Float64 Float64, anything else
//! Utf8. Where no chunk's type is temporal, that merge gives the same as arrow's merge of every
//! value at once, however the records are cut: a Utf8 anywhere stays Utf8 both ways, and
//! Boolean, Int64 and Float64 combine the same in the two rules (checked case by case in the
//! tests). So the same records cut into one part per core, each part's types inferred by
//! arrow-csv itself, and merged by DataFusion's rule, give DataFusion's schema.
//!
//! This holds only where the cut cannot change the records. The parts are cut only where every
//! line break ends a record as both DataFusion's chunking and arrow's reader see it: no quote,
//! no backslash (DataFusion's chunking takes it as an escape), no line that is empty, and no
//! carriage return but before a line feed, in the records read. Anything else (such bytes, a
//! temporal type in a part, a record of another length, text that is not UTF-8, a sample larger
//! than [`MAX_SAMPLE_BYTES`]) answers None, and the caller asks DataFusion, which gives the
//! schema or names the error.

use std::io::Read;
use std::path::Path;

use arrow::csv::reader::Format;
use arrow::datatypes::DataType;
use rayon::prelude::*;

use crate::{Error, Result};

/// The most bytes of a file's first records held at once; a larger sample is left to
/// DataFusion, which streams it.
const MAX_SAMPLE_BYTES: usize = 256 << 20;

/// What is read at a time while looking for the end of the sampled records.
const READ_BLOCK: usize = 1 << 20;

/// The types DataFusion's inference gives the columns of the CSV file at `path` from its first
/// `max_records` records (after the header of `columns` names), with `delimiter` and, when
/// given, `null_regex` marking nulls; None where the file's first records cannot be cut safely
/// (the module's doc) or are fewer than `min_records`.
pub(crate) fn infer_in_parts(
    path: &Path,
    delimiter: u8,
    null_regex: Option<&str>,
    columns: usize,
    max_records: usize,
    min_records: usize,
) -> Result<Option<Vec<DataType>>> {
    let Some((sample, records)) = read_sample(path, max_records)? else {
        return Ok(None);
    };
    if records < min_records.max(1) {
        return Ok(None);
    }
    let null_regex = match null_regex.map(regex::Regex::new) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return Ok(None),
    };
    let parts = rayon::current_num_threads().clamp(1, records);
    let cuts = cut_at_lines(&sample, parts);
    let inferred: Vec<Option<(Vec<DataType>, usize)>> = cuts
        .par_windows(2)
        .enumerate()
        .map(|(i, w)| {
            let mut format = Format::default()
                .with_header(i == 0)
                .with_delimiter(delimiter)
                .with_truncated_rows(false);
            if let Some(r) = &null_regex {
                format = format.with_null_regex(r.clone());
            }
            let (schema, read) = format.infer_schema(&sample[w[0]..w[1]], None).ok()?;
            let types: Vec<DataType> = schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            Some((types, read))
        })
        .collect();
    let mut read = 0;
    let mut per_column: Vec<Vec<DataType>> = vec![Vec::new(); columns];
    for part in inferred {
        let Some((types, n)) = part else {
            return Ok(None);
        };
        if types.len() != columns {
            return Ok(None);
        }
        read += n;
        for (column, t) in per_column.iter_mut().zip(types) {
            column.push(t);
        }
    }
    if read != records {
        return Ok(None);
    }
    Ok(per_column
        .iter()
        .map(|types| merge_chunk_types(types))
        .collect())
}

/// DataFusion's merge of the types a column got in each chunk, or None when one is temporal
/// (there the merge depends on where the chunks were cut).
fn merge_chunk_types(types: &[DataType]) -> Option<DataType> {
    let mut seen: Vec<&DataType> = Vec::new();
    for t in types {
        match t {
            DataType::Null => {}
            DataType::Boolean | DataType::Int64 | DataType::Float64 | DataType::Utf8 => {
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
            _ => return None,
        }
    }
    Some(match seen.as_slice() {
        [] => DataType::Null,
        [one] => (*one).clone(),
        [a, b]
            if matches!(
                (a, b),
                (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64)
            ) =>
        {
            DataType::Float64
        }
        _ => DataType::Utf8,
    })
}

/// The file's header line and its first `max_records` lines (or all, if fewer), and how many
/// records those are; None when a byte or a line there could make a cut unsafe (the module's
/// doc) or the sample would be larger than [`MAX_SAMPLE_BYTES`].
fn read_sample(path: &Path, max_records: usize) -> Result<Option<(Vec<u8>, usize)>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut sample: Vec<u8> = Vec::new();
    // Lines ended so far (the header's included), and where the unscanned bytes begin.
    let mut lines = 0usize;
    let mut line_start = 0usize;
    loop {
        if sample.len() >= MAX_SAMPLE_BYTES {
            return Ok(None);
        }
        let got = (&mut file)
            .take(READ_BLOCK as u64)
            .read_to_end(&mut sample)
            .map_err(|e| Error::io(path, e))?;
        let at_end = got == 0;
        // Whole lines only: the last one may be cut by the block.
        let mut from = line_start;
        while let Some(i) = memchr::memchr(b'\n', &sample[from..]) {
            let end = from + i;
            if !plain_line(&sample[from..end]) {
                return Ok(None);
            }
            lines += 1;
            from = end + 1;
            if lines == max_records + 1 {
                sample.truncate(from);
                return Ok(Some((sample, max_records)));
            }
        }
        line_start = from;
        if at_end {
            // The last line, without a line break.
            if line_start < sample.len() {
                if !plain_line(&sample[line_start..]) {
                    return Ok(None);
                }
                lines += 1;
            }
            return Ok(Some((sample, lines.saturating_sub(1))));
        }
    }
}

/// A line that arrow's reader reads as one record and DataFusion's chunking ends where it ends:
/// not empty, no quote or backslash, and a carriage return only at its end (before the line
/// feed).
fn plain_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    !line.is_empty() && memchr::memchr3(b'\r', b'"', b'\\', line).is_none()
}

/// `parts + 1` offsets cutting `sample` (whole lines) into about equal parts at line breaks,
/// the first part holding the header line; fewer when there are fewer lines.
fn cut_at_lines(sample: &[u8], parts: usize) -> Vec<usize> {
    let mut cuts = vec![0];
    for k in 1..parts {
        let target = sample.len() * k / parts;
        let from = (*cuts.last().unwrap_or(&0)).max(target);
        match memchr::memchr(b'\n', &sample[from.min(sample.len())..]) {
            Some(i) if from + i + 1 < sample.len() => cuts.push(from + i + 1),
            _ => break,
        }
    }
    cuts.push(sample.len());
    cuts.dedup();
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{CsvReadOptions, SessionContext};
    use proptest::prelude::*;

    /// DataFusion's own inference of `path`, as `table_schema` asks for it.
    fn datafusion_types(
        path: &Path,
        max_records: usize,
        null_regex: Option<&str>,
    ) -> Vec<DataType> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ctx = SessionContext::new();
            let mut options = CsvReadOptions::new()
                .has_header(true)
                .newlines_in_values(true)
                .schema_infer_max_records(max_records);
            if let Some(r) = null_regex {
                options = options.null_regex(Some(r.to_string()));
            }
            let df = ctx.read_csv(path.to_str().unwrap(), options).await.unwrap();
            df.schema()
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    t => t.clone(),
                })
                .collect()
        })
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_merge_is_datafusions_rule_for_chunk_types() {
        use DataType::*;
        let d = |types: &[DataType]| merge_chunk_types(types);
        assert_eq!(d(&[Int64, Float64]), Some(Float64));
        assert_eq!(d(&[Float64, Int64, Null]), Some(Float64));
        assert_eq!(d(&[Null, Null]), Some(Null));
        assert_eq!(d(&[Boolean, Null, Boolean]), Some(Boolean));
        assert_eq!(d(&[Boolean, Int64]), Some(Utf8));
        assert_eq!(d(&[Boolean, Float64, Int64]), Some(Utf8));
        assert_eq!(d(&[Utf8, Int64]), Some(Utf8));
        assert_eq!(d(&[Date32, Date32]), None);
        assert_eq!(d(&[Int64, Date32]), None);
    }

    #[test]
    fn cuts_fall_after_line_breaks() {
        let sample = b"h\n1\n2\n3\n4\n";
        assert_eq!(cut_at_lines(sample, 1), vec![0, sample.len()]);
        let cuts = cut_at_lines(sample, 2);
        assert_eq!(cuts.len(), 3);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample[cuts[1] - 1], b'\n');
        // More parts than lines: fewer parts.
        assert!(cut_at_lines(b"h\n1", 8).len() <= 3);
    }

    #[test]
    fn unsafe_bytes_and_lines_leave_the_file_to_datafusion() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("quote.csv", "a,b\n1,\"x\"\n2,y\n"),
            ("backslash.csv", "a,b\n1,x\\\n2,y\n"),
            ("empty_line.csv", "a,b\n1,x\n\n2,y\n"),
            ("lone_cr.csv", "a,b\n1,x\r2,y\n"),
        ] {
            let path = write(&dir, name, text);
            assert_eq!(
                infer_in_parts(&path, b',', None, 2, 100, 1).unwrap(),
                None,
                "{name}"
            );
        }
        let crlf = write(&dir, "crlf.csv", "a,b\r\n1,x\r\n2.5,y\r\n");
        assert_eq!(
            infer_in_parts(&crlf, b',', None, 2, 100, 1).unwrap(),
            Some(vec![DataType::Float64, DataType::Utf8])
        );
        // A ragged record, a date column: DataFusion's say.
        let ragged = write(&dir, "ragged.csv", "a,b\n1,x\n2\n3,z\n");
        assert_eq!(
            infer_in_parts(&ragged, b',', None, 2, 100, 1).unwrap(),
            None
        );
        let dates = write(&dir, "dates.csv", "a,b\n1,2024-01-02\n2,2024-01-03\n");
        assert_eq!(infer_in_parts(&dates, b',', None, 2, 100, 1).unwrap(), None);
    }

    #[test]
    fn integers_and_decimals_in_different_parts_make_float64() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "split.csv", "a,b,c\n0.000,,\n0,,\n");
        // Two records, one part each: Float64 and Int64 merged across the parts.
        assert_eq!(cut_at_lines(&std::fs::read(&path).unwrap(), 2).len(), 3);
        let ours = infer_in_parts(&path, b',', None, 3, 100_000, 1).unwrap();
        assert_eq!(
            ours,
            Some(vec![DataType::Float64, DataType::Null, DataType::Null])
        );
        assert_eq!(ours, Some(datafusion_types(&path, 100_000, None)));
    }

    /// One value of a class arrow tells apart, as written in a CSV field.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            (-1000i64..1000).prop_map(|v| v.to_string()),
            (-1e6f64..1e6).prop_map(|v| format!("{v:.3}")),
            Just("true".to_string()),
            Just("FALSE".to_string()),
            Just("NA".to_string()),
            Just("nan".to_string()),
            Just("99999999999999999999".to_string()),
            Just("1e5".to_string()),
            Just("abc".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Columns whose classes change along the file (runs of one class, then another),
        /// sampled in full or in part, with and without a null pattern: the same types as
        /// DataFusion's inference, whenever the parts give an answer.
        #[test]
        fn the_same_types_as_datafusion(
            runs in proptest::collection::vec((value(), value(), value(), 1usize..3000), 1..6),
            max_records in prop_oneof![Just(100_000usize), 1usize..6000],
            na in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut text = String::from("a,b,c\n");
            for (a, b, c, n) in &runs {
                for _ in 0..*n {
                    text.push_str(&format!("{a},{b},{c}\n"));
                }
            }
            let path = write(&dir, "t.csv", &text);
            let null_regex = na.then_some("^(?:NA|)$");
            let ours = infer_in_parts(&path, b',', null_regex, 3, max_records, 1).unwrap();
            let theirs = datafusion_types(&path, max_records, null_regex);
            prop_assert_eq!(ours, Some(theirs));
        }
    }
}
