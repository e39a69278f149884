//! `anomalies(source, value_col [, time_col [, method]])`: unusual rows or time buckets.
//!
//! ```sql
//! SELECT * FROM anomalies('sales', 'revenue');                -- per row, robust z-score
//! SELECT * FROM anomalies('sales', 'revenue', 'order_date');  -- per day, after MSTL
//! ```
//!
//! Without a time column each row is scored by its robust z-score: the distance from
//! the median in units of the median absolute deviation (MAD × 1.4826, which equals
//! the standard deviation for normal data). With one, the value is summed per bucket at
//! the natural grain ([`crate::series`]), trend and weekly/daily seasonality are removed
//! with MSTL (`augurs`), and the residuals are scored the same way. A point is
//! anomalous when its score exceeds 3.5 (Iglewicz and Hoaglin's cut-off).
//!
//! Methods: `'mad'` (the default without a time column) and `'mstl'` (the default with
//! one; falls back to `'mad'` on the bucket values when the series is too short for a
//! seasonal period).

use std::sync::Arc;

use async_trait::async_trait;
use augurs::mstl::{stlrs, MSTLModel};
use augurs::Fit;
use datafusion::arrow::array::{
    Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::cast::{as_float64_array, as_int64_array};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;

use crate::report::Report;
use crate::series::{self, describe_bucket, median, Series};
use crate::source::{quote_ident, string_literal, Source};
use crate::stats::Row;

/// Robust z-scores above this are anomalies.
const THRESHOLD: f64 = 3.5;
/// MAD × this estimates the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.4826;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Mad,
    Mstl,
}

#[derive(Debug, Default)]
pub struct Anomalies {
    value_col: String,
    time_col: Option<String>,
    method: Option<Method>,
}

fn string_arg(name: &str, expr: &Expr) -> Result<String> {
    match string_literal(expr) {
        Some(s) => Ok(s),
        None => plan_err!("anomalies: {name} must be a string, got {expr}"),
    }
}

#[async_trait]
impl Report for Anomalies {
    const NAME: &'static str = "anomalies";

    fn from_args(args: &[Expr]) -> Result<Self> {
        if args.is_empty() || args.len() > 3 {
            return plan_err!(
                "anomalies expects (table_name, value_column [, time_column [, method]]), got {} arguments",
                args.len() + 1
            );
        }
        let method = match args.get(2).map(|e| string_arg("method", e)).transpose()? {
            None => None,
            Some(m) => Some(match m.to_lowercase().as_str() {
                "mad" => Method::Mad,
                "mstl" => Method::Mstl,
                other => {
                    return plan_err!("anomalies: unknown method '{other}'; use 'mad' or 'mstl'")
                }
            }),
        };
        Ok(Self {
            value_col: string_arg("value_column", &args[0])?,
            time_col: args
                .get(1)
                .map(|e| string_arg("time_column", e))
                .transpose()?,
            method,
        })
    }

    fn schema(&self) -> SchemaRef {
        let first = match self.time_col {
            Some(_) => Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            None => Field::new("row_id", DataType::Int64, false),
        };
        Arc::new(Schema::new(vec![
            first,
            Field::new("value", DataType::Float64, true),
            Field::new("expected_low", DataType::Float64, true),
            Field::new("expected_high", DataType::Float64, true),
            Field::new("score", DataType::Float64, false),
            Field::new("severity", DataType::Utf8, false),
            Field::new("explanation", DataType::Utf8, false),
        ]))
    }

    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        match &self.time_col {
            None => self.per_row(state, source).await,
            Some(time_col) => self.per_bucket(state, source, time_col).await,
        }
    }
}

fn severity(score: f64) -> &'static str {
    match score.abs() {
        s if s > 7.0 => "high",
        s if s > 5.0 => "medium",
        _ => "low",
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Anomalies {
    /// Anomalies of `value_col` per bucket of `time_col` (MSTL by default).
    pub(crate) fn over_time(value_col: &str, time_col: &str) -> Self {
        Self {
            value_col: value_col.to_string(),
            time_col: Some(time_col.to_string()),
            method: None,
        }
    }

    /// Robust z-score per row, computed in SQL over the whole input.
    async fn per_row(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        let v = format!("CAST({} AS DOUBLE)", quote_ident(&self.value_col));
        let from = source.relation_sql();
        let center = Row::query(state, &format!("SELECT median({v}) AS m FROM {from}")).await?;
        let Some(m) = center.float("m") else {
            return Ok(RecordBatch::new_empty(self.schema()));
        };
        let spread = Row::query(
            state,
            &format!("SELECT median(abs({v} - {m})) AS mad FROM {from}"),
        )
        .await?;
        let sigma = spread.float("mad").unwrap_or(0.0) * MAD_TO_SIGMA;
        if sigma <= 0.0 {
            return Ok(RecordBatch::new_empty(self.schema()));
        }
        let (lo, hi) = (m - THRESHOLD * sigma, m + THRESHOLD * sigma);
        let sql = format!(
            "SELECT row_id, value FROM (SELECT row_number() OVER () AS row_id, {v} AS value FROM {from}) AS numbered \
             WHERE value < {lo} OR value > {hi} ORDER BY abs(value - {m}) DESC, row_id"
        );
        let plan = state.create_logical_plan(&sql).await?;
        let batches = datafusion::prelude::DataFrame::new(state.clone(), plan)
            .collect()
            .await?;
        let mut out = Out::new(false);
        for batch in &batches {
            let ids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int64)?;
            let ids = as_int64_array(&ids)?;
            let values = as_float64_array(batch.column(1))?;
            for i in 0..batch.num_rows() {
                let value = values.value(i);
                let score = (value - m) / sigma;
                let explanation = format!(
                    "{} in row {} is {} ({:+.1} robust standard deviations from the median {})",
                    self.value_col,
                    ids.value(i),
                    fmt_num(value),
                    score,
                    fmt_num(m)
                );
                out.push_row(ids.value(i), value, lo, hi, score, explanation);
            }
        }
        out.finish(self.schema())
    }

    /// Scores each bucket's residual after trend and seasonality are removed.
    async fn per_bucket(
        &self,
        state: &SessionState,
        source: &Source,
        time_col: &str,
    ) -> Result<RecordBatch> {
        let series = series::load(state, source, time_col, &self.value_col).await?;
        let periods = series.grain.periods(series.values.len());
        let use_mstl = self.method != Some(Method::Mad) && !periods.is_empty();
        let expected: Vec<f64> = if use_mstl {
            // Robust LOESS: a spike must not bend the trend or the seasonal estimate.
            let mut stl = stlrs::StlParams::new();
            stl.robust(true);
            let mut params = stlrs::MstlParams::new();
            params.stl_params(stl);
            let model = MSTLModel::naive(periods).mstl_params(params);
            let fit = model
                .fit(&series.values)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let remainder = fit.fit().remainder();
            series
                .values
                .iter()
                .zip(remainder)
                .map(|(y, r)| y - f64::from(*r))
                .collect()
        } else {
            vec![median(&series.values); series.values.len()]
        };
        let residuals: Vec<f64> = series
            .values
            .iter()
            .zip(&expected)
            .map(|(y, e)| y - e)
            .collect();
        let center = median(&residuals);
        let deviations: Vec<f64> = residuals.iter().map(|r| (r - center).abs()).collect();
        let sigma = median(&deviations) * MAD_TO_SIGMA;
        let mut out = Out::new(true);
        if sigma <= 0.0 {
            return out.finish(self.schema());
        }
        let mut flagged: Vec<usize> = (0..residuals.len())
            .filter(|&i| ((residuals[i] - center) / sigma).abs() > THRESHOLD)
            .collect();
        flagged.sort_by(|&a, &b| residuals[b].abs().total_cmp(&residuals[a].abs()));
        for i in flagged {
            let score = (residuals[i] - center) / sigma;
            let base = expected[i] + center;
            out.push_bucket(&series, i, base, sigma, score, &self.value_col, use_mstl);
        }
        out.finish(self.schema())
    }
}

/// The output rows.
struct Out {
    by_time: bool,
    row_id: Int64Builder,
    ts: TimestampMicrosecondBuilder,
    value: Float64Builder,
    low: Float64Builder,
    high: Float64Builder,
    score: Float64Builder,
    severity: StringBuilder,
    explanation: StringBuilder,
}

impl Out {
    fn new(by_time: bool) -> Self {
        Self {
            by_time,
            row_id: Int64Builder::new(),
            ts: TimestampMicrosecondBuilder::new(),
            value: Float64Builder::new(),
            low: Float64Builder::new(),
            high: Float64Builder::new(),
            score: Float64Builder::new(),
            severity: StringBuilder::new(),
            explanation: StringBuilder::new(),
        }
    }

    fn push_row(&mut self, id: i64, value: f64, lo: f64, hi: f64, score: f64, explanation: String) {
        self.row_id.append_value(id);
        self.push(value, lo, hi, score, explanation);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_bucket(
        &mut self,
        s: &Series,
        i: usize,
        base: f64,
        sigma: f64,
        score: f64,
        value_col: &str,
        seasonal: bool,
    ) {
        let value = s.values[i];
        let (when, weekday) = describe_bucket(s.ts[i], s.grain);
        let context = if seasonal {
            format!(" for a {weekday}")
        } else {
            String::new()
        };
        let explanation = if base > 0.0 && value > base {
            format!(
                "{value_col} on {when} was {:.1}x the expected {}{context}",
                value / base,
                fmt_num(base)
            )
        } else {
            format!(
                "{value_col} on {when} was {}, expected about {}{context}",
                fmt_num(value),
                fmt_num(base)
            )
        };
        self.ts.append_value(s.ts[i]);
        self.push(
            value,
            base - THRESHOLD * sigma,
            base + THRESHOLD * sigma,
            score,
            explanation,
        );
    }

    fn push(&mut self, value: f64, lo: f64, hi: f64, score: f64, explanation: String) {
        self.value.append_value(value);
        self.low.append_value(lo);
        self.high.append_value(hi);
        self.score.append_value((score * 100.0).round() / 100.0);
        self.severity.append_value(severity(score));
        self.explanation.append_value(explanation);
    }

    fn finish(mut self, schema: SchemaRef) -> Result<RecordBatch> {
        let first: Arc<dyn datafusion::arrow::array::Array> = if self.by_time {
            Arc::new(self.ts.finish())
        } else {
            Arc::new(self.row_id.finish())
        };
        Ok(RecordBatch::try_new(
            schema,
            vec![
                first,
                Arc::new(self.value.finish()),
                Arc::new(self.low.finish()),
                Arc::new(self.high.finish()),
                Arc::new(self.score.finish()),
                Arc::new(self.severity.finish()),
                Arc::new(self.explanation.finish()),
            ],
        )?)
    }
}
