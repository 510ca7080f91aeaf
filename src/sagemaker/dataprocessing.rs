//! Batch transform's DataProcessing for CSV, as SageMaker documents it
//! (reference/sagemaker-byoc.md): each line is treated as a JSON array; `InputFilter` selects what
//! is sent to the container, `JoinSource = Input` appends the container's output row to the
//! original (unfiltered) input row, and `OutputFilter` selects from the joined row.
//!
//! The filters are JSONPath index expressions: `$`, `$[0]`, `$[1,3,5]`, `$[-1]`, `$[1:]`,
//! `$[:5]`, `$[1:4]`, and unions of those (`$[0,2:4,-1]`). Unlike Python, a slice's end is
//! inclusive: `$[1:4]` is the second through fifth columns. Negative indexes count from the end.
//! An index outside the row is an error; a slice takes what exists of its range.

use std::fmt;

use crate::{Error, Result};

/// One part of a bracketed union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    Index(i64),
    /// `start:end`, both inclusive, either side open.
    Slice(Option<i64>, Option<i64>),
}

/// A parsed CSV DataProcessing filter (`$` keeps the whole row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnFilter {
    text: String,
    /// `None` for `$`.
    selectors: Option<Vec<Selector>>,
}

impl fmt::Display for ColumnFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ColumnFilter {
    /// `$`: the whole row.
    pub fn all() -> ColumnFilter {
        ColumnFilter {
            text: "$".into(),
            selectors: None,
        }
    }

    /// Parses a filter; SageMaker caps them at 63 characters.
    pub fn parse(text: &str) -> Result<ColumnFilter> {
        let bad = |why: &str| Error::Config(format!("JSONPath filter {text:?}: {why}"));
        if text.chars().count() > 63 {
            return Err(bad("longer than SageMaker's 63 characters"));
        }
        let trimmed = text.trim();
        if trimmed == "$" {
            return Ok(ColumnFilter::all());
        }
        let inner = trimmed
            .strip_prefix("$[")
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| bad("expected `$` or `$[...]` (for CSV only index expressions work)"))?;
        if inner.contains('[') || inner.contains(']') {
            return Err(bad("nested brackets are not supported"));
        }
        let number = |s: &str| -> Result<Option<i64>> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<i64>()
                .map(Some)
                .map_err(|_| bad(&format!("{s:?} is not an index")))
        };
        let mut selectors = Vec::new();
        for part in inner.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("empty index"));
            }
            let selector = match part.split_once(':') {
                Some((start, end)) => {
                    if end.contains(':') {
                        return Err(bad("slice steps are not supported"));
                    }
                    Selector::Slice(number(start)?, number(end)?)
                }
                None => Selector::Index(number(part)?.ok_or_else(|| bad("empty index"))?),
            };
            selectors.push(selector);
        }
        Ok(ColumnFilter {
            text: text.to_string(),
            selectors: Some(selectors),
        })
    }

    /// Whether this is `$` (the row passes unchanged).
    pub fn is_all(&self) -> bool {
        self.selectors.is_none()
    }

    /// The column positions this filter takes from a row of `width` columns, in order.
    pub fn positions(&self, width: usize) -> std::result::Result<Vec<usize>, String> {
        let Some(selectors) = &self.selectors else {
            return Ok((0..width).collect());
        };
        let w = width as i64;
        let resolve = |i: i64| if i < 0 { w + i } else { i };
        let mut out = Vec::new();
        for selector in selectors {
            match *selector {
                Selector::Index(i) => {
                    let at = resolve(i);
                    if at < 0 || at >= w {
                        return Err(format!(
                            "{}: index {i} is outside a row of {width} columns",
                            self.text
                        ));
                    }
                    out.push(at as usize);
                }
                Selector::Slice(start, end) => {
                    let from = resolve(start.unwrap_or(0)).max(0);
                    let to = resolve(end.unwrap_or(w - 1)).min(w - 1);
                    out.extend((from..=to).map(|i| i as usize));
                }
            }
        }
        Ok(out)
    }

    /// Applies the filter to one row's fields.
    pub fn apply<'a>(&self, fields: &[&'a str]) -> std::result::Result<Vec<&'a str>, String> {
        Ok(self
            .positions(fields.len())?
            .into_iter()
            .map(|i| fields[i])
            .collect())
    }
}

/// `JoinSource`: whether the container's output is appended to the input row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinSource {
    #[default]
    None,
    Input,
}

impl JoinSource {
    pub fn as_api(self) -> &'static str {
        match self {
            JoinSource::None => "None",
            JoinSource::Input => "Input",
        }
    }
}

/// The three DataProcessing settings of a transform job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProcessing {
    pub input_filter: ColumnFilter,
    pub join_source: JoinSource,
    pub output_filter: ColumnFilter,
}

impl Default for DataProcessing {
    fn default() -> Self {
        DataProcessing {
            input_filter: ColumnFilter::all(),
            join_source: JoinSource::None,
            output_filter: ColumnFilter::all(),
        }
    }
}

/// Splits CSV lines into their fields (RFC 4180 quoting; SageMaker treats a line as a JSON array
/// of them). One splitter serves many lines: building a CSV parser per line costs more than
/// parsing the line.
pub struct LineSplitter {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(b',')
    }
}

impl LineSplitter {
    pub fn new(delimiter: u8) -> LineSplitter {
        LineSplitter {
            reader: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// The fields of one line (without its line ending).
    pub fn split<'a>(&'a mut self, line: &str) -> std::result::Result<Vec<&'a str>, String> {
        use csv_core::ReadRecordResult;
        self.reader.reset();
        let mut input = line.as_bytes();
        let (mut out_len, mut ends_len) = (0usize, 0usize);
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.out[out_len..],
                &mut self.ends[ends_len..],
            );
            input = &input[nin..];
            // csv_core counts field ends from the start of the record, across calls.
            out_len += nout;
            ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => {} // call again with no input to end the record
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        let text =
            std::str::from_utf8(&self.out[..out_len]).map_err(|_| "not valid UTF-8".to_string())?;
        let mut fields = Vec::with_capacity(ends_len.max(1));
        let mut start = 0;
        for &end in &self.ends[..ends_len] {
            fields.push(&text[start..end]);
            start = end;
        }
        if fields.is_empty() {
            fields.push("");
        }
        Ok(fields)
    }
}

/// The fields of one CSV line, owned (for tests and one-off use).
pub fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    Ok(LineSplitter::default()
        .split(line)?
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Joins fields into one CSV line (quoted only where needed), without a line ending.
pub fn join_csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(fields.iter().map(|f| f.as_ref()));
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).unwrap_or_default()
}

impl DataProcessing {
    /// What the container receives for one input line.
    pub fn filter_input(
        &self,
        splitter: &mut LineSplitter,
        line: &str,
    ) -> std::result::Result<String, String> {
        if self.input_filter.is_all() {
            return Ok(line.to_string());
        }
        let fields = splitter.split(line)?;
        let chosen = self.input_filter.apply(&fields)?;
        Ok(join_csv_line(&chosen))
    }

    /// The output line for one input line and the container's answer to it.
    pub fn assemble(
        &self,
        splitter: &mut LineSplitter,
        input: &str,
        output: &str,
    ) -> std::result::Result<String, String> {
        if self.join_source == JoinSource::None && self.output_filter.is_all() {
            return Ok(output.to_string());
        }
        let mut row: Vec<String> = match self.join_source {
            JoinSource::Input => splitter
                .split(input)?
                .into_iter()
                .map(str::to_string)
                .collect(),
            JoinSource::None => Vec::new(),
        };
        row.extend(splitter.split(output)?.into_iter().map(str::to_string));
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        let chosen = self.output_filter.apply(&refs)?;
        Ok(join_csv_line(&chosen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(filter: &str, width: usize) -> Vec<usize> {
        ColumnFilter::parse(filter)
            .unwrap()
            .positions(width)
            .unwrap()
    }

    #[test]
    fn documented_examples() {
        // The developer guide's own examples, on a row of 8 columns.
        assert_eq!(positions("$", 3), vec![0, 1, 2]);
        assert_eq!(positions("$[0]", 8), vec![0]);
        assert_eq!(positions("$[1,3,5]", 8), vec![1, 3, 5]);
        assert_eq!(positions("$[-1]", 8), vec![7]);
        // "$[1:4]: the second through fifth columns" (inclusive end).
        assert_eq!(positions("$[1:4]", 8), vec![1, 2, 3, 4]);
        // "$[:5]": columns 0 to 5.
        assert_eq!(positions("$[:5]", 8), vec![0, 1, 2, 3, 4, 5]);
        // "$[5:]": the sixth column to the last.
        assert_eq!(positions("$[5:]", 8), vec![5, 6, 7]);
        assert_eq!(positions("$[1:]", 3), vec![1, 2]);
        // The original example's output filter, with the whitespace it used.
        assert_eq!(positions("$[0 ,-1]", 5), vec![0, 4]);
        assert_eq!(positions("$[0,-1]", 5), vec![0, 4]);
        assert_eq!(positions("$[-3:-2]", 5), vec![2, 3]);
        assert_eq!(positions("$[0,2:3,-1]", 6), vec![0, 2, 3, 5]);
        assert_eq!(positions("$[3,1]", 6), vec![3, 1]);
    }

    #[test]
    fn out_of_range_and_malformed() {
        let f = ColumnFilter::parse("$[5]").unwrap();
        assert!(f.positions(5).unwrap_err().contains("outside a row of 5"));
        assert!(ColumnFilter::parse("$[-6]").unwrap().positions(5).is_err());
        // A slice takes what exists of its range.
        assert_eq!(positions("$[3:10]", 5), vec![3, 4]);
        for bad in [
            "", "[0]", "$[", "$[]", "$[a]", "$[0,]", "$[1:2:3]", "$.x", "$[[0]]",
        ] {
            assert!(
                ColumnFilter::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
        let long = format!("$[{}]", vec!["1"; 40].join(","));
        assert!(ColumnFilter::parse(&long).is_err());
    }

    #[test]
    fn join_and_filter_like_the_original_example() {
        // InputFilter drops the id; JoinSource appends the score to the whole input row;
        // OutputFilter keeps the id and the score.
        let dp = DataProcessing {
            input_filter: ColumnFilter::parse("$[1:]").unwrap(),
            join_source: JoinSource::Input,
            output_filter: ColumnFilter::parse("$[0,-1]").unwrap(),
        };
        let line = "c-17,34,\"admin., retired\",\"\"";
        let sp = &mut LineSplitter::default();
        assert_eq!(
            dp.filter_input(sp, line).unwrap(),
            "34,\"admin., retired\","
        );
        assert_eq!(dp.assemble(sp, line, "0.25").unwrap(), "c-17,0.25");
        // Several output values: -1 keeps the last.
        assert_eq!(dp.assemble(sp, line, "0.75,0.25").unwrap(), "c-17,0.25");
        // Without a join the output filter applies to the container's row alone.
        let plain = DataProcessing::default();
        assert_eq!(plain.filter_input(sp, line).unwrap(), line);
        assert_eq!(plain.assemble(sp, line, "0.25").unwrap(), "0.25");
    }

    #[test]
    fn line_splitter_reuses_its_parser() {
        let mut sp = LineSplitter::default();
        assert_eq!(sp.split("a,b,,c").unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(sp.split("").unwrap(), vec![""]);
        assert_eq!(sp.split("\"x,\"\"y\"\"\",1").unwrap(), vec!["x,\"y\"", "1"]);
        let long: String = (0..500)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let fields = sp.split(&long).unwrap();
        assert_eq!(fields.len(), 500);
        assert_eq!(fields[499], "499");
        assert_eq!(sp.split("é,ü").unwrap(), vec!["é", "ü"]);
        let mut semi = LineSplitter::new(b';');
        assert_eq!(semi.split("1;\"a;b\"").unwrap(), vec!["1", "a;b"]);
    }
}
