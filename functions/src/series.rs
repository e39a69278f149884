//! A time series from a table: one value per bucket at the data's natural grain.
//!
//! The value column is summed per bucket (a day's revenue is the sum of its orders).
//! The grain is a day when every timestamp falls on midnight, an hour otherwise.
//! Buckets with no rows count as 0, so the series is regular, as decomposition needs.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{plan_err, Result};
use datafusion::execution::SessionState;

use crate::source::{quote_ident, Source};
use crate::stats::Row;

/// At most this many buckets: a decade of days, or a year of hours.
const MAX_BUCKETS: i64 = 20_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    Day,
    Hour,
}

impl Grain {
    pub(crate) fn micros(self) -> i64 {
        match self {
            Grain::Day => MICROS_PER_DAY,
            Grain::Hour => MICROS_PER_HOUR,
        }
    }

    /// Seasonal periods worth modelling for a series of `len` buckets.
    pub(crate) fn periods(self, len: usize) -> Vec<usize> {
        let candidates: &[usize] = match self {
            Grain::Day => &[7],
            Grain::Hour => &[24, 168],
        };
        candidates.iter().copied().filter(|p| len > 2 * p).collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) grain: Grain,
    /// Bucket starts, microseconds since the epoch.
    pub(crate) ts: Vec<i64>,
    pub(crate) values: Vec<f64>,
}

/// Reads `value_col` summed per bucket of `time_col`.
pub(crate) async fn load(
    state: &SessionState,
    source: &Source,
    time_col: &str,
    value_col: &str,
) -> Result<Series> {
    let t = format!("CAST({} AS TIMESTAMP)", quote_ident(time_col));
    let v = quote_ident(value_col);
    let from = source.relation_sql();
    let shape = Row::query(
        state,
        &format!("SELECT count(CASE WHEN date_trunc('day', {t}) <> {t} THEN 1 END) AS intraday FROM {from}"),
    )
    .await?;
    let grain = if shape.int("intraday").unwrap_or(0) == 0 {
        Grain::Day
    } else {
        Grain::Hour
    };
    let unit = if grain == Grain::Day { "day" } else { "hour" };
    let sql = format!(
        "SELECT date_trunc('{unit}', {t}) AS bucket, sum(CAST({v} AS DOUBLE)) AS value \
         FROM {from} WHERE {t} IS NOT NULL GROUP BY 1 ORDER BY 1"
    );
    let plan = state.create_logical_plan(&sql).await?;
    let batches = datafusion::prelude::DataFrame::new(state.clone(), plan)
        .collect()
        .await?;
    let mut points = Vec::new();
    for batch in &batches {
        let ts = cast(
            batch.column(0),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let vs = cast(batch.column(1), &DataType::Float64)?;
        let vs = vs.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let value = if vs.is_valid(i) { vs.value(i) } else { 0.0 };
            points.push((ts.value(i), value));
        }
    }
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(Series {
            grain,
            ts: vec![],
            values: vec![],
        });
    };
    let step = grain.micros();
    let buckets = (last.0 - first.0) / step + 1;
    if buckets > MAX_BUCKETS {
        return plan_err!("{time_col} spans {buckets} {unit}s; at most {MAX_BUCKETS} are supported: filter the input with a (query)");
    }
    let start = first.0;
    let mut values = vec![0.0; buckets as usize];
    for (ts, v) in points {
        values[((ts - start) / step) as usize] += v;
    }
    let ts = (0..buckets).map(|i| start + i * step).collect();
    Ok(Series { grain, ts, values })
}

/// `2025-03-14` or `2025-03-14 09:00`, and the weekday name.
pub(crate) fn describe_bucket(micros: i64, grain: Grain) -> (String, &'static str) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let date = format!("{y:04}-{m:02}-{d:02}");
    match grain {
        Grain::Day => (date, weekday),
        Grain::Hour => {
            let hour = micros.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR;
            (format!("{date} {hour:02}:00"), weekday)
        }
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Median of a slice (NaN-free input).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_named_with_weekdays() {
        // 2025-03-14 was a Friday.
        let micros = 20161 * MICROS_PER_DAY;
        assert_eq!(
            describe_bucket(micros, Grain::Day),
            ("2025-03-14".to_string(), "Friday")
        );
        assert_eq!(
            describe_bucket(micros + 9 * MICROS_PER_HOUR, Grain::Hour).0,
            "2025-03-14 09:00"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
