//! `profile(source)`: one row per column describing what the data holds.
//!
//! ```sql
//! SELECT column_name, null_pct, distinct_count, inferred_type FROM profile('sales');
//! SELECT * FROM profile('(SELECT * FROM sales WHERE region = ''North'')');
//! ```
//!
//! The statistics come from [`crate::stats`] (quartiles are t-digest approximations).
//! `distinct_count` is exact for columns with at most 100,000 distinct values (or the
//! limit given as a second argument: `profile('t', 1000000)`), a HyperLogLog estimate
//! above: a count above the limit is an estimate. Top values come from one `GROUP BY`
//! per column (the same that counts distinct values exactly, where it does); columns of 10,000 values or more that are at least 90%
//! distinct (ids, timestamps, measurements) get none, as no value repeats.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;

use crate::report::Report;
use crate::source::Source;
use crate::stats::{self, sql_type_name, Kind, ValueCount};

/// From this many values on, a column with 90% distinct values gets no top values.
const MOSTLY_UNIQUE_MIN_ROWS: i64 = 10_000;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    let float = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("column_name", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        int("row_count"),
        int("null_count"),
        float("null_pct"),
        int("distinct_count"),
        text("min"),
        text("max"),
        float("mean"),
        float("stddev"),
        float("p25"),
        float("median"),
        float("p75"),
        text("top_values"),
        text("inferred_type"),
    ]))
});

/// The `profile` report.
#[derive(Debug)]
pub struct Profile {
    /// Columns with at most this many distinct values get an exact count.
    exact_limit: i64,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            exact_limit: stats::EXACT_DISTINCT_LIMIT,
        }
    }
}

#[async_trait]
impl Report for Profile {
    const NAME: &'static str = "profile";

    fn from_args(args: &[Expr]) -> Result<Self> {
        match args {
            [] => Ok(Self::default()),
            [Expr::Literal(value, _)] => match value.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(n))) if n >= 0 => Ok(Self { exact_limit: n }),
                _ => plan_err!("profile's second argument is the largest distinct count to compute exactly, a number >= 0, like profile('t', 1000000); got {value}"),
            },
            _ => plan_err!("profile expects (table_name [, exact_distinct_limit]), got {} arguments", args.len() + 1),
        }
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        let table = stats::collect(state, source, self.exact_limit).await?;
        let rows = table.rows;
        let mut b = Builders::default();
        for column in &table.columns {
            let nulls = rows - column.non_null;
            b.column_name.append_value(&column.name);
            b.data_type.append_value(sql_type_name(&column.data_type));
            b.row_count.append_value(rows);
            b.null_count.append_value(nulls);
            b.null_pct.append_option(percent(nulls, rows));
            b.distinct_count.append_option(column.distinct);
            b.min.append_option(column.min.clone());
            b.max.append_option(column.max.clone());
            b.mean.append_option(column.mean);
            b.stddev.append_option(column.stddev);
            b.p25.append_option(column.p25);
            b.median.append_option(column.p50);
            b.p75.append_option(column.p75);
            let top = if mostly_unique(column.non_null, column.distinct) {
                None
            } else if let Some(top) = &column.top_values {
                Some(top_values_json(top))
            } else if column.kind != Kind::Other {
                Some(top_values_json(
                    &stats::top_values(state, source, &column.name).await?,
                ))
            } else {
                None
            };
            b.top_values.append_option(top);
            b.inferred_type.append_value(column.inferred_type());
        }
        b.finish()
    }
}

/// A large column whose values nearly never repeat has no top values worth a
/// `GROUP BY` over millions of groups (ids, timestamps, measurements).
fn mostly_unique(non_null: i64, distinct: Option<i64>) -> bool {
    non_null >= MOSTLY_UNIQUE_MIN_ROWS && distinct.is_some_and(|d| d * 10 >= non_null * 9)
}

/// `part` of `whole` in percent (0–100), two decimals; `None` for an empty whole.
pub(crate) fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (10000.0 * part as f64 / whole as f64).round() / 100.0)
}

/// `[{"value":"North","count":488}, ...]`
fn top_values_json(top: &[ValueCount]) -> String {
    let items = top
        .iter()
        .map(|(value, count)| serde_json::json!({ "value": value, "count": count }));
    serde_json::Value::Array(items.collect()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_large_nearly_distinct_columns_skip_top_values() {
        assert!(super::mostly_unique(1_000_000, Some(950_000)));
        assert!(!super::mostly_unique(1_000_000, Some(10)));
        assert!(
            !super::mostly_unique(2_000, Some(2_000)),
            "small tables keep them"
        );
        assert!(!super::mostly_unique(1_000_000, None));
    }
}

#[derive(Default)]
struct Builders {
    column_name: StringBuilder,
    data_type: StringBuilder,
    row_count: Int64Builder,
    null_count: Int64Builder,
    null_pct: Float64Builder,
    distinct_count: Int64Builder,
    min: StringBuilder,
    max: StringBuilder,
    mean: Float64Builder,
    stddev: Float64Builder,
    p25: Float64Builder,
    median: Float64Builder,
    p75: Float64Builder,
    top_values: StringBuilder,
    inferred_type: StringBuilder,
}

impl Builders {
    fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.column_name.finish()),
            Arc::new(self.data_type.finish()),
            Arc::new(self.row_count.finish()),
            Arc::new(self.null_count.finish()),
            Arc::new(self.null_pct.finish()),
            Arc::new(self.distinct_count.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.mean.finish()),
            Arc::new(self.stddev.finish()),
            Arc::new(self.p25.finish()),
            Arc::new(self.median.finish()),
            Arc::new(self.p75.finish()),
            Arc::new(self.top_values.finish()),
            Arc::new(self.inferred_type.finish()),
        ];
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }
}
