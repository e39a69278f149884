//! `forecast(source, time_col, value_col, horizon)`: the next `horizon` periods.
//!
//! ```sql
//! SELECT * FROM forecast('sales', 'order_date', 'revenue', 14);
//! ```
//!
//! The value is summed per bucket at the natural grain ([`crate::series`]); trend and
//! seasonality (weekly for days; daily and weekly for hours) are separated with robust
//! MSTL and the trend is forecast with AutoETS (`augurs`). A series too short for a
//! seasonal period is forecast with AutoETS alone. `lower` and `upper` bound a 95%
//! prediction interval.

use std::sync::Arc;

use async_trait::async_trait;
use augurs::ets::AutoETS;
use augurs::mstl::{stlrs, MSTLModel};
use augurs::{Fit, Forecast, Predict};
use datafusion::arrow::array::{Float64Builder, RecordBatch, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;

use crate::report::Report;
use crate::series;
use crate::source::{string_literal, Source};

/// Prediction interval level.
const LEVEL: f64 = 0.95;
const MAX_HORIZON: i64 = 10_000;
/// Fewer points than this cannot be forecast meaningfully.
const MIN_POINTS: usize = 4;

#[derive(Debug, Default)]
pub struct ForecastReport {
    time_col: String,
    value_col: String,
    horizon: usize,
}

fn model_error(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl Report for ForecastReport {
    const NAME: &'static str = "forecast";

    fn from_args(args: &[Expr]) -> Result<Self> {
        let usage = "forecast expects (table_name, time_column, value_column, horizon)";
        let [time, value, horizon] = args else {
            return plan_err!("{usage}, got {} arguments", args.len() + 1);
        };
        let text = |e: &Expr| match string_literal(e) {
            Some(s) => Ok(s),
            None => plan_err!("{usage}: columns are strings, got {e}"),
        };
        let horizon = match horizon {
            Expr::Literal(v, _) => v
                .clone()
                .cast_to(&DataType::Int64)
                .ok()
                .and_then(|v| match v {
                    ScalarValue::Int64(Some(n)) => Some(n),
                    _ => None,
                }),
            _ => None,
        };
        let horizon = match horizon {
            Some(n) if (1..=MAX_HORIZON).contains(&n) => n as usize,
            _ => {
                return plan_err!("{usage}: horizon must be a whole number from 1 to {MAX_HORIZON}")
            }
        };
        Ok(Self {
            time_col: text(time)?,
            value_col: text(value)?,
            horizon,
        })
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("forecast", DataType::Float64, false),
            Field::new("lower", DataType::Float64, true),
            Field::new("upper", DataType::Float64, true),
        ]))
    }

    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        let series = series::load(state, source, &self.time_col, &self.value_col).await?;
        let n = series.values.len();
        if n < MIN_POINTS {
            return plan_err!(
                "forecast needs at least {MIN_POINTS} periods of {} to learn from, got {n}",
                self.value_col
            );
        }
        let periods = series.grain.periods(n);
        let forecast: Forecast = if periods.is_empty() {
            let fit = AutoETS::non_seasonal()
                .fit(&series.values)
                .map_err(model_error)?;
            fit.predict(self.horizon, LEVEL).map_err(model_error)?
        } else {
            let mut stl = stlrs::StlParams::new();
            stl.robust(true);
            let mut params = stlrs::MstlParams::new();
            params.stl_params(stl);
            let model = MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model())
                .mstl_params(params);
            let fit = model.fit(&series.values).map_err(model_error)?;
            fit.predict(self.horizon, LEVEL).map_err(model_error)?
        };
        let step = series.grain.micros();
        let Some(&last) = series.ts.last() else {
            return plan_err!("forecast needs at least {MIN_POINTS} periods, got none");
        };
        let mut ts = TimestampMicrosecondBuilder::new();
        let mut point = Float64Builder::new();
        let mut lower = Float64Builder::new();
        let mut upper = Float64Builder::new();
        for (k, p) in forecast.point.iter().enumerate() {
            ts.append_value(last + (k as i64 + 1) * step);
            point.append_value(*p);
            let bound =
                |v: Option<&Vec<f64>>| v.and_then(|v| v.get(k).copied()).filter(|x| x.is_finite());
            lower.append_option(bound(forecast.intervals.as_ref().map(|i| &i.lower)));
            upper.append_option(bound(forecast.intervals.as_ref().map(|i| &i.upper)));
        }
        Ok(RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(ts.finish()),
                Arc::new(point.finish()),
                Arc::new(lower.finish()),
                Arc::new(upper.finish()),
            ],
        )?)
    }
}
