//! A deterministic synthetic promotion history, for benchmarks and demonstrations at any size.
//!
//! Seventeen columns: an id, eight numeric attributes, seven categorical ones (cardinalities 3 to
//! 1,000, some Zipf-distributed), missing values in several, and a `converted` label (about 5%
//! positive) drawn from a logistic model with interactions (membership x channel, age x income,
//! recency x visits) plus per-city and per-product effects. The same seed gives the same file on
//! every machine: ChaCha8's stream is fixed by its specification, and each row is generated from
//! its own stream (seed, row), so rows can be produced in parallel and in any batch size.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson, Zipf};

/// The column names, in file order.
pub const COLUMNS: [&str; 17] = [
    "customer_id",
    "age",
    "income",
    "tenure_months",
    "visits_30d",
    "days_since_last_order",
    "spend_90d",
    "email_opens_30d",
    "discount_rate",
    "channel",
    "device",
    "region",
    "segment",
    "membership",
    "city",
    "product_interest",
    "converted",
];

const CHANNELS: [&str; 3] = ["email", "sms", "push"];
const DEVICES: [&str; 4] = ["ios", "android", "web", "other"];
const MEMBERSHIP: [&str; 5] = ["none", "bronze", "silver", "gold", "platinum"];
const REGIONS: usize = 12;
const SEGMENTS: usize = 8;
const CITIES: usize = 300;
const PRODUCTS: usize = 1000;

/// One generated row: numbers (None = missing) and category labels (None = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthRow {
    pub customer_id: u64,
    pub numbers: [Option<f64>; 8],
    pub categories: [Option<String>; 7],
    pub converted: u8,
}

/// The generator: fixed effects drawn once from the seed, rows drawn from (seed, row index).
pub struct Generator {
    seed: u64,
    city_effect: Vec<f64>,
    product_effect: Vec<f64>,
    region_effect: Vec<f64>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e77e_c75e_ed00);
        let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
        let mut effects = |n: usize, scale: f64| -> Vec<f64> {
            (0..n).map(|_| scale * normal.sample(&mut rng)).collect()
        };
        Generator {
            seed,
            city_effect: effects(CITIES, 0.5),
            product_effect: effects(PRODUCTS, 0.7),
            region_effect: effects(REGIONS, 0.25),
        }
    }

    /// Row `index` (0-based).
    pub fn row(&self, index: u64) -> SynthRow {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
        let missing = |p: f64, rng: &mut ChaCha8Rng| rng.random::<f64>() < p;

        let age = (18.0 + 72.0 * rng.random::<f64>().powf(1.4)).floor();
        let income = (10.4 + 0.6 * normal.sample(&mut rng)).exp().round();
        let tenure = (rng.random::<f64>() * 240.0).floor();
        let visits = Poisson::<f64>::new(3.0)
            .expect("valid")
            .sample(&mut rng)
            .min(60.0);
        let recency = (rng.random::<f64>().powi(2) * 365.0).floor();
        let spend = if rng.random::<f64>() < 0.1 {
            0.0
        } else {
            ((4.0 + normal.sample(&mut rng)).exp() * 100.0).round() / 100.0
        };
        let opens = Poisson::<f64>::new(2.0).expect("valid").sample(&mut rng);
        let discount = (rng.random::<f64>() * 50.0).round() / 100.0;
        let channel = rng.random_range(0..CHANNELS.len());
        let device = rng.random_range(0..DEVICES.len());
        let region = rng.random_range(0..REGIONS);
        let segment = rng.random_range(0..SEGMENTS);
        let membership = [0.5, 0.75, 0.9, 0.97, 1.0]
            .iter()
            .position(|&c| rng.random::<f64>() < c)
            .unwrap_or(4);
        let city = Zipf::<f64>::new(CITIES as f64, 1.1)
            .expect("valid")
            .sample(&mut rng) as usize
            - 1;
        let product = Zipf::<f64>::new(PRODUCTS as f64, 1.05)
            .expect("valid")
            .sample(&mut rng) as usize
            - 1;

        // The response: interactions a rule would struggle to express, plus rare-category effects.
        let logit = -3.9
            + 0.9 * f64::from(membership >= 2 && channel == 2)
            + 0.35 * membership as f64
            + 0.012 * (age - 45.0) * ((income.ln() - 10.4) / 0.6)
            + 0.09 * visits * f64::from(recency < 30.0)
            - 0.004 * recency
            + 0.25 * (spend + 1.0).ln() / 4.0
            + 0.15 * opens.min(6.0)
            + 1.2 * discount * f64::from(segment < 3)
            + 0.4 * f64::from(device == 0 && channel == 2)
            + self.city_effect[city]
            + self.product_effect[product]
            + self.region_effect[region];
        let converted = u8::from(rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp()));

        let numbers = [
            (!missing(0.02, &mut rng)).then_some(age),
            (!missing(0.05, &mut rng)).then_some(income),
            Some(tenure),
            Some(visits),
            (!missing(0.08, &mut rng)).then_some(recency),
            (!missing(0.03, &mut rng)).then_some(spend),
            Some(opens),
            Some(discount),
        ];
        let categories = [
            Some(CHANNELS[channel].to_string()),
            Some(DEVICES[device].to_string()),
            Some(format!("region_{region:02}")),
            (!missing(0.04, &mut rng))
                .then(|| format!("segment_{}", (b'A' + segment as u8) as char)),
            Some(MEMBERSHIP[membership].to_string()),
            Some(format!("city_{city:03}")),
            (!missing(0.02, &mut rng)).then(|| format!("product_{product:04}")),
        ];
        SynthRow {
            customer_id: index + 1,
            numbers,
            categories,
            converted,
        }
    }
}

/// Rows generated (in parallel) and written per batch.
const BATCH: u64 = 65_536;

/// Writes `rows` synthetic rows to `path` (Parquet for `.parquet`, CSV otherwise), atomically.
pub fn write_synth(
    path: &std::path::Path,
    rows: u64,
    seed: u64,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> crate::Result<()> {
    use crate::Error;
    use crate::data::Format;
    use rayon::prelude::*;

    let generator = Generator::new(seed);
    let mut file = crate::output::AtomicFile::create(path, force)?;
    let handle = file.file().try_clone().map_err(|e| Error::io(path, e))?;
    let io = |e: std::io::Error| Error::io(path, e);
    match Format::of(path) {
        Format::Csv => {
            let mut w =
                csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, handle));
            w.write_record(COLUMNS).map_err(|e| io(e.into()))?;
            let mut start = 0;
            while start < rows {
                let end = (start + BATCH).min(rows);
                let lines: Vec<Vec<u8>> = (start..end)
                    .into_par_iter()
                    .map(|i| csv_line(&generator.row(i)))
                    .collect();
                for line in lines {
                    w.write_byte_record(&csv::ByteRecord::from(
                        line.split(|&b| b == 0).collect::<Vec<_>>(),
                    ))
                    .map_err(|e| io(e.into()))?;
                }
                start = end;
                progress(start);
            }
            w.flush().map_err(io)?;
        }
        Format::Parquet => {
            let schema = parquet_schema();
            let mut w = parquet::arrow::ArrowWriter::try_new(handle, schema.clone(), None)
                .map_err(|e| Error::data(path, e.to_string()))?;
            let mut start = 0;
            while start < rows {
                let end = (start + BATCH).min(rows);
                let batch: Vec<SynthRow> = (start..end)
                    .into_par_iter()
                    .map(|i| generator.row(i))
                    .collect();
                w.write(&to_batch(&schema, &batch))
                    .map_err(|e| Error::data(path, e.to_string()))?;
                start = end;
                progress(start);
            }
            w.close().map_err(|e| Error::data(path, e.to_string()))?;
        }
    }
    file.commit(force)
}

/// A row's fields joined by NUL (never inside a field), for the CSV writer to quote as needed.
fn csv_line(row: &SynthRow) -> Vec<u8> {
    let mut fields: Vec<String> = Vec::with_capacity(COLUMNS.len());
    fields.push(row.customer_id.to_string());
    fields.extend(
        row.numbers
            .iter()
            .map(|n| n.map(|v| v.to_string()).unwrap_or_default()),
    );
    fields.extend(row.categories.iter().map(|c| c.clone().unwrap_or_default()));
    fields.push(row.converted.to_string());
    fields.join("\0").into_bytes()
}

fn parquet_schema() -> std::sync::Arc<arrow::datatypes::Schema> {
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields = vec![Field::new(COLUMNS[0], DataType::Int64, false)];
    fields.extend(
        COLUMNS[1..9]
            .iter()
            .map(|c| Field::new(*c, DataType::Float64, true)),
    );
    fields.extend(
        COLUMNS[9..16]
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true)),
    );
    fields.push(Field::new(COLUMNS[16], DataType::Int64, false));
    std::sync::Arc::new(Schema::new(fields))
}

fn to_batch(
    schema: &std::sync::Arc<arrow::datatypes::Schema>,
    rows: &[SynthRow],
) -> arrow::array::RecordBatch {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.customer_id as i64),
    ))];
    for j in 0..8 {
        columns.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.numbers[j]),
        )));
    }
    for j in 0..7 {
        columns.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.categories[j].as_deref()),
        )));
    }
    columns.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| i64::from(r.converted)),
    )));
    arrow::array::RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_realistic() {
        let g = Generator::new(7);
        assert_eq!(g.row(12345), Generator::new(7).row(12345));
        assert_ne!(g.row(1), Generator::new(8).row(1));
        let n = 20_000;
        let rows: Vec<SynthRow> = (0..n).map(|i| g.row(i)).collect();
        let rate = rows.iter().map(|r| f64::from(r.converted)).sum::<f64>() / n as f64;
        assert!((0.01..=0.10).contains(&rate), "positive rate {rate}");
        let missing_age = rows.iter().filter(|r| r.numbers[0].is_none()).count();
        assert!(missing_age > 0);
        let cities: std::collections::BTreeSet<_> = rows
            .iter()
            .filter_map(|r| r.categories[5].clone())
            .collect();
        assert!(cities.len() > 100, "{} cities", cities.len());
        let channels: std::collections::BTreeSet<_> = rows
            .iter()
            .filter_map(|r| r.categories[0].clone())
            .collect();
        assert_eq!(channels.len(), 3);
    }
}
