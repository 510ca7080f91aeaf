//! The values of a time split's column, as points in time that compare correctly.
//!
//! Text compared as text puts `10/2/2024` before `9/1/2024` and `2024-1-15` after `2024-10-01`,
//! so a time column is read as one of:
//! - numbers (a numeric column: week numbers, epoch seconds), compared as numbers;
//! - dates and times: ISO 8601 with or without zero padding (`2024-01-05`, `2024-1-5`,
//!   `2024/1/5`, `2024-01-05T10:30`, `2024-01-05 10:30:00.25`, with an optional `Z` or `+02:00`
//!   offset; no offset means UTC), typed date and timestamp columns (Parquet, inferred CSV), or any
//!   other layout through `split.time_format`, a strftime pattern such as `%m/%d/%Y`.
//!
//! A text value that is neither is an error naming the row and the value, with the pattern to set
//! when the layout is recognisable.

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// A time column, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeColumn {
    /// A numeric column.
    Numbers(Vec<Option<f64>>),
    /// Dates and times as nanoseconds since 1970-01-01 UTC.
    Instants(Vec<Option<i128>>),
}

/// The cutoff, read as the column is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimePoint {
    Number(f64),
    Instant(i128),
}

impl TimeColumn {
    /// Reads `column` (any Arrow type) as a time column; `format` is `split.time_format`.
    pub fn read(column: &ArrayRef, format: Option<&str>) -> Result<TimeColumn, String> {
        match column.data_type() {
            t if t.is_numeric() => {
                let floats = arrow::compute::cast(column.as_ref(), &DataType::Float64)
                    .map_err(|e| e.to_string())?;
                let floats = floats
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("cast to Float64 gives a Float64Array");
                Ok(TimeColumn::Numbers(floats.iter().collect()))
            }
            t if t.is_temporal() => {
                // Arrow prints dates and timestamps in ISO 8601, offsets included.
                let text = crate::data::as_strings(column)?;
                let values = text
                    .iter()
                    .enumerate()
                    .map(|(row, v)| match v {
                        None => Ok(None),
                        Some(v) => parse_iso(v).map(Some).ok_or_else(|| {
                            format!("data row {}: cannot read {v:?} as a date", row + 1)
                        }),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(TimeColumn::Instants(values))
            }
            _ => {
                let text = crate::data::as_strings(column)?;
                let mut values = Vec::with_capacity(text.len());
                for (row, v) in text.iter().enumerate() {
                    let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                        values.push(None);
                        continue;
                    };
                    match parse_instant(v, format) {
                        Some(t) => values.push(Some(t)),
                        None => return Err(not_a_date(row, v, format)),
                    }
                }
                Ok(TimeColumn::Instants(values))
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TimeColumn::Numbers(v) => v.len(),
            TimeColumn::Instants(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first row with no value, if any.
    pub fn first_missing(&self) -> Option<usize> {
        match self {
            TimeColumn::Numbers(v) => v.iter().position(Option::is_none),
            TimeColumn::Instants(v) => v.iter().position(Option::is_none),
        }
    }

    /// Reads the cutoff the way this column's values are read.
    pub fn cutoff(&self, text: &str, format: Option<&str>) -> Result<TimePoint, String> {
        let text = text.trim();
        match self {
            TimeColumn::Numbers(_) => text.parse::<f64>().map(TimePoint::Number).map_err(|_| {
                format!(
                    "split.cutoff {text:?} is not a number, but the time column holds numbers"
                )
            }),
            TimeColumn::Instants(_) => parse_instant(text, format)
                .or_else(|| parse_iso(text))
                .map(TimePoint::Instant)
                .ok_or_else(|| match format {
                    Some(f) => format!(
                        "split.cutoff {text:?} matches neither split.time_format {f:?} nor ISO 8601 (2024-01-31)"
                    ),
                    None => format!(
                        "split.cutoff {text:?} is not an ISO 8601 date (2024-01-31 or 2024-01-31T12:00); set split.time_format for another layout"
                    ),
                }),
        }
    }

    /// Whether row `row` lies before `cutoff` (rows with no value: false; the caller refuses them).
    pub fn before(&self, row: usize, cutoff: TimePoint) -> bool {
        match (self, cutoff) {
            (TimeColumn::Numbers(v), TimePoint::Number(c)) => v[row].is_some_and(|t| t < c),
            (TimeColumn::Instants(v), TimePoint::Instant(c)) => v[row].is_some_and(|t| t < c),
            _ => false,
        }
    }

    /// Orders two rows by time (rows with no value first).
    pub fn cmp_rows(&self, a: usize, b: usize) -> std::cmp::Ordering {
        match self {
            TimeColumn::Numbers(v) => {
                let key = |r: usize| v[r].unwrap_or(f64::NEG_INFINITY);
                key(a).total_cmp(&key(b))
            }
            TimeColumn::Instants(v) => v[a].cmp(&v[b]),
        }
    }

    /// The earliest and latest value over `rows`, written as dates (or date and time when any
    /// value has a time of day), or as numbers.
    pub fn range(&self, rows: &[usize]) -> Option<TimeRange> {
        let first = *rows.iter().min_by(|&&a, &&b| self.cmp_rows(a, b))?;
        let last = *rows.iter().max_by(|&&a, &&b| self.cmp_rows(a, b))?;
        Some(TimeRange {
            from: self.display(first),
            to: self.display(last),
        })
    }

    fn display(&self, row: usize) -> String {
        match self {
            TimeColumn::Numbers(v) => v[row].map_or(String::new(), |x| x.to_string()),
            TimeColumn::Instants(v) => {
                let with_time = v.iter().flatten().any(|t| t.rem_euclid(NANOS_PER_DAY) != 0);
                v[row].map_or(String::new(), |t| format_instant(t, with_time))
            }
        }
    }
}

/// The span of a part of the split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{} to {}", self.from, self.to)
        }
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SECOND;

fn nanos(t: NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    i128::from(utc.timestamp()) * NANOS_PER_SECOND + i128::from(utc.timestamp_subsec_nanos())
}

fn format_instant(t: i128, with_time: bool) -> String {
    let seconds = t.div_euclid(NANOS_PER_SECOND);
    let sub = t.rem_euclid(NANOS_PER_SECOND);
    let Some(moment) = i64::try_from(seconds)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, sub as u32))
    else {
        return t.to_string();
    };
    if with_time {
        moment.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    } else {
        moment.format("%Y-%m-%d").to_string()
    }
}

/// A value in `format` when given (dates, date-times, date-times with an offset), else ISO 8601.
pub fn parse_instant(text: &str, format: Option<&str>) -> Option<i128> {
    let Some(format) = format else {
        return parse_iso(text);
    };
    if let Ok(t) = DateTime::parse_from_str(text, format) {
        return Some(nanos(t.naive_utc()));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(nanos(t));
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .map(|d| nanos(d.and_time(NaiveTime::MIN)))
}

/// ISO 8601 as people write it: `Y-M-D` (or `Y/M/D`), zero padding optional, then optionally
/// `T` or a space and `H:M[:S[.fraction]]`, then optionally `Z` or an offset `±H[H][:MM]`.
pub fn parse_iso(text: &str) -> Option<i128> {
    let text = text.trim();
    let mut s = Scanner::new(text);
    let year = s.number(4, 4)? as i32;
    let separator = s.one_of(b"-/")?;
    let month = s.number(1, 2)? as u32;
    s.expect(separator)?;
    let day = s.number(1, 2)? as u32;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let mut time = NaiveTime::MIN;
    let mut offset_seconds = 0i64;
    if s.one_of(b"T ").is_some() {
        let hour = s.number(1, 2)? as u32;
        s.expect(b':')?;
        let minute = s.number(1, 2)? as u32;
        let (mut second, mut nano) = (0, 0);
        if s.one_of(b":").is_some() {
            second = s.number(1, 2)? as u32;
            if s.one_of(b".,").is_some() {
                let start = s.position;
                let digits = s.number(1, 9)?;
                let width = (s.position - start) as u32;
                nano = (digits * 10u64.pow(9 - width)) as u32;
            }
        }
        time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?;
        if s.one_of(b"Z").is_some() {
        } else if let Some(sign) = s.one_of(b"+-") {
            let hours = s.number(1, 2)? as i64;
            let minutes = if s.one_of(b":").is_some() {
                s.number(2, 2)? as i64
            } else {
                s.number(2, 2).unwrap_or(0) as i64
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let sign = if sign == b'-' { -1 } else { 1 };
            offset_seconds = sign * (hours * 3600 + minutes * 60);
        }
    }
    if !s.done() {
        return None;
    }
    Some(nanos(date.and_time(time)) - i128::from(offset_seconds) * NANOS_PER_SECOND)
}

/// The error for a text value that is not a date, with a pattern to set when one is recognisable.
fn not_a_date(row: usize, value: &str, format: Option<&str>) -> String {
    let at = format!("data row {}: the time column's value {value:?}", row + 1);
    if let Some(f) = format {
        return format!("{at} does not match split.time_format {f:?}");
    }
    let hint = match guess_format(value) {
        Some(pattern) => format!(
            "; it looks like {pattern:?}: set split.time_format = \"{pattern}\" (or --time-format)"
        ),
        None => "; set split.time_format to its strftime pattern (for example \"%d.%m.%Y\"), or split by a numeric column".to_string(),
    };
    format!("{at} is not an ISO 8601 date (2024-01-31, 2024-1-31T09:30){hint}")
}

/// A strftime pattern for common non-ISO layouts (`1/15/2024`, `15.01.2024`, `15/01/2024 10:30`).
fn guess_format(value: &str) -> Option<String> {
    let (date, time) = match value.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let separator = [b'/', b'.', b'-']
        .into_iter()
        .find(|&c| date.as_bytes().contains(&c))?;
    let parts: Vec<&str> = date.split(separator as char).collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let numbers: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if parts[2].len() != 4 {
        return None;
    }
    let sep = separator as char;
    // Day first when the first field cannot be a month; month first otherwise (US habit).
    let date_pattern = if numbers[0] > 12 && numbers[1] <= 12 {
        format!("%d{sep}%m{sep}%Y")
    } else if numbers[0] <= 12 {
        format!("%m{sep}%d{sep}%Y")
    } else {
        return None;
    };
    Some(match time {
        None => date_pattern,
        Some(t) if t.matches(':').count() == 2 => format!("{date_pattern} %H:%M:%S"),
        Some(_) => format!("{date_pattern} %H:%M"),
    })
}

struct Scanner<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            bytes: text.as_bytes(),
            position: 0,
        }
    }

    fn done(&self) -> bool {
        self.position == self.bytes.len()
    }

    /// Between `min` and `max` decimal digits.
    fn number(&mut self, min: usize, max: usize) -> Option<u64> {
        let start = self.position;
        while self.position < self.bytes.len()
            && self.position - start < max
            && self.bytes[self.position].is_ascii_digit()
        {
            self.position += 1;
        }
        if self.position - start < min {
            self.position = start;
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.position])
            .ok()?
            .parse()
            .ok()
    }

    fn one_of(&mut self, set: &[u8]) -> Option<u8> {
        let b = *self.bytes.get(self.position)?;
        set.contains(&b).then(|| {
            self.position += 1;
            b
        })
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.one_of(&[b]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn day(y: i32, m: u32, d: u32) -> i128 {
        nanos(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_time(NaiveTime::MIN),
        )
    }

    #[test]
    fn iso_dates_with_and_without_padding() {
        assert_eq!(parse_iso("2024-01-05"), Some(day(2024, 1, 5)));
        assert_eq!(parse_iso("2024-1-5"), Some(day(2024, 1, 5)));
        assert_eq!(parse_iso("2024/1/5"), Some(day(2024, 1, 5)));
        assert_eq!(parse_iso(" 2024-10-1 "), Some(day(2024, 10, 1)));
        assert_eq!(
            parse_iso("2024-1-5T9:30"),
            Some(day(2024, 1, 5) + (9 * 3600 + 30 * 60) * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_iso("2024-01-05 10:30:15.25"),
            Some(
                day(2024, 1, 5)
                    + (10 * 3600 + 30 * 60 + 15) * NANOS_PER_SECOND
                    + NANOS_PER_SECOND / 4
            )
        );
        assert_eq!(
            parse_iso("2024-01-05T10:00:00+02:00"),
            Some(day(2024, 1, 5) + 8 * 3600 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_iso("2024-01-05T10:00:00Z"),
            parse_iso("2024-01-05 10:00")
        );
        for bad in [
            "2024-13-01",
            "2024-02-30",
            "1/15/2024",
            "2024-01",
            "20240105",
            "2024-01-05x",
            "May 5",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        // Unpadded dates order as dates, not as text.
        assert!(parse_iso("2024-1-15") < parse_iso("2024-10-01"));
    }

    #[test]
    fn strftime_layouts() {
        assert_eq!(
            parse_instant("1/15/2024", Some("%m/%d/%Y")),
            Some(day(2024, 1, 15))
        );
        assert_eq!(
            parse_instant("15.01.2024", Some("%d.%m.%Y")),
            Some(day(2024, 1, 15))
        );
        assert_eq!(
            parse_instant("1/15/2024 13:05", Some("%m/%d/%Y %H:%M")),
            Some(day(2024, 1, 15) + (13 * 3600 + 5 * 60) * NANOS_PER_SECOND)
        );
        assert_eq!(parse_instant("2024-01-15", Some("%m/%d/%Y")), None);
    }

    #[test]
    fn text_columns_are_dates_or_an_error_with_the_pattern_to_set() {
        let column: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("9/1/2024"),
            Some("10/2/2024"),
            None,
        ]));
        let e = TimeColumn::read(&column, None).unwrap_err();
        assert!(
            e.contains("data row 1") && e.contains("\"9/1/2024\""),
            "{e}"
        );
        assert!(e.contains("split.time_format = \"%m/%d/%Y\""), "{e}");
        let t = TimeColumn::read(&column, Some("%m/%d/%Y")).unwrap();
        assert_eq!(t.first_missing(), Some(2));
        let cutoff = t.cutoff("10/1/2024", Some("%m/%d/%Y")).unwrap();
        assert!(t.before(0, cutoff) && !t.before(1, cutoff));
        // The cutoff may also be written in ISO.
        assert_eq!(t.cutoff("2024-10-1", Some("%m/%d/%Y")).unwrap(), cutoff);
        assert_eq!(
            t.range(&[0, 1]).unwrap().to_string(),
            "2024-09-01 to 2024-10-02"
        );
        let day_first: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["25/12/2024"]));
        let e = TimeColumn::read(&day_first, None).unwrap_err();
        assert!(e.contains("%d/%m/%Y"), "{e}");
        let words: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["soon"]));
        let e = TimeColumn::read(&words, None).unwrap_err();
        assert!(e.contains("split.time_format"), "{e}");
    }

    #[test]
    fn numbers_and_typed_dates() {
        let column: ArrayRef = Arc::new(Float64Array::from(vec![9.0, 10.0, 100.0]));
        let t = TimeColumn::read(&column, None).unwrap();
        let c = t.cutoff("10", None).unwrap();
        assert!(t.before(0, c) && !t.before(1, c) && !t.before(2, c));
        assert!(t.cutoff("2024-01-01", None).is_err());
        let dates: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![19_723, 19_724]));
        let t = TimeColumn::read(&dates, None).unwrap();
        assert_eq!(
            t,
            TimeColumn::Instants(vec![Some(day(2024, 1, 1)), Some(day(2024, 1, 2))])
        );
    }
}
