//! `profile(source)`: one row per column describing what the data holds.
//!
//! ```sql
//! SELECT column_name, null_pct, distinct_count, inferred_type FROM profile('sales');
//! SELECT * FROM profile('(SELECT * FROM sales WHERE region = ''North'')');
//! ```
//!
//! One aggregate query computes counts, min/max, mean, sample stddev, approximate
//! quartiles (t-digest) and, for text columns, how many values parse as numbers, dates
//! or timestamps. Distinct counts are HyperLogLog estimates; columns whose estimate is
//! at most [`EXACT_DISTINCT_LIMIT`] are then counted exactly in a second query. Top
//! values come from one small `GROUP BY` per column.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::source::{quote_ident, Source};

/// Up to this many distinct values (estimated) a column's distinct count is exact.
pub const EXACT_DISTINCT_LIMIT: i64 = 100_000;
/// How many top values `top_values` lists.
const TOP_VALUES: usize = 5;

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

/// The `profile` table function.
#[derive(Debug, Default)]
pub struct ProfileFunc;

impl TableFunctionImpl for ProfileFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 1 {
            return plan_err!(
                "profile expects (table_name), got {} arguments",
                exprs.len()
            );
        }
        let source = Source::from_arg("profile", exprs.first())?;
        Ok(Arc::new(ProfileTable { source }))
    }
}

/// The report of one `profile(...)` call; computed when scanned.
#[derive(Debug)]
struct ProfileTable {
    source: Source,
}

#[async_trait]
impl TableProvider for ProfileTable {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("profile needs a SessionState".into()))?;
        let batch = profile(state, &self.source).await?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], SCHEMA.clone(), projection.cloned())?;
        Ok(exec)
    }
}

/// What kind of statistics a column gets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Float,
    Text,
    Temporal,
    Boolean,
    Other,
}

fn kind_of(t: &DataType) -> Kind {
    match t {
        t if t.is_integer() => Kind::Integer,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            Kind::Float
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        t if t.is_temporal() => Kind::Temporal,
        DataType::Boolean => Kind::Boolean,
        _ => Kind::Other,
    }
}

/// The Postgres name of an Arrow type, as psql users read it.
fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The aggregates of column `i` (aliases carry the index).
fn column_aggregates(i: usize, name: &str, kind: Kind) -> Vec<String> {
    let c = quote_ident(name);
    let mut aggs = vec![format!("count({c}) AS nn_{i}")];
    if kind != Kind::Other {
        aggs.push(format!("approx_distinct(CAST({c} AS VARCHAR)) AS ad_{i}"));
        aggs.push(format!("CAST(min({c}) AS VARCHAR) AS min_{i}"));
        aggs.push(format!("CAST(max({c}) AS VARCHAR) AS max_{i}"));
    }
    if matches!(kind, Kind::Integer | Kind::Float) {
        let d = format!("CAST({c} AS DOUBLE)");
        aggs.push(format!("avg({d}) AS mean_{i}"));
        aggs.push(format!("stddev({d}) AS sd_{i}"));
        for (q, alias) in [(0.25, "p25"), (0.5, "p50"), (0.75, "p75")] {
            aggs.push(format!(
                "approx_percentile_cont({q}) WITHIN GROUP (ORDER BY {d}) AS {alias}_{i}"
            ));
        }
    }
    if kind == Kind::Float {
        aggs.push(format!("count(CASE WHEN CAST({c} AS DOUBLE) = trunc(CAST({c} AS DOUBLE)) THEN 1 END) AS whole_{i}"));
    }
    if kind == Kind::Text {
        // Text parsed as other types; computed in the inner projection (see `profile`).
        for what in ["int", "dbl", "date", "ts", "bool"] {
            aggs.push(format!("count(\"__{what}_{i}\") AS {what}_{i}"));
        }
    }
    aggs
}

/// Derived columns of text column `i` for the inner projection: how it parses.
fn text_parses(i: usize, name: &str) -> Vec<String> {
    let t = format!("trim({})", quote_ident(name));
    vec![
        format!("try_cast({t} AS BIGINT) AS \"__int_{i}\""),
        format!("try_cast({t} AS DOUBLE) AS \"__dbl_{i}\""),
        format!("CASE WHEN {t} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}$' THEN try_cast({t} AS DATE) END AS \"__date_{i}\""),
        format!("CASE WHEN {t} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}[ T]\\d' THEN try_cast({t} AS TIMESTAMP) END AS \"__ts_{i}\""),
        format!("CASE WHEN lower({t}) IN ('true', 'false', 't', 'f', 'yes', 'no') THEN 1 END AS \"__bool_{i}\""),
    ]
}

/// The single row of an aggregate query, read by alias.
struct Row(RecordBatch);

impl Row {
    fn int(&self, alias: &str) -> Option<i64> {
        let col = self.0.column_by_name(alias)?;
        let col = cast(col, &DataType::Int64).ok()?;
        let col = col.as_primitive::<Int64Type>();
        (col.len() > 0 && col.is_valid(0)).then(|| col.value(0))
    }

    fn float(&self, alias: &str) -> Option<f64> {
        let col = self.0.column_by_name(alias)?;
        let col = cast(col, &DataType::Float64).ok()?;
        let col = col.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        (col.len() > 0 && col.is_valid(0))
            .then(|| col.value(0))
            .filter(|v| v.is_finite())
    }

    fn text(&self, alias: &str) -> Option<String> {
        let col = self.0.column_by_name(alias)?;
        let col = cast(col, &DataType::Utf8).ok()?;
        let col = col.as_string::<i32>();
        (col.len() > 0 && col.is_valid(0)).then(|| col.value(0).to_string())
    }
}

async fn single_row(state: &SessionState, sql: &str) -> Result<Row> {
    let plan = state.create_logical_plan(sql).await?;
    let batches = datafusion::prelude::DataFrame::new(state.clone(), plan)
        .collect()
        .await?;
    let batch = datafusion::arrow::compute::concat_batches(
        &batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty())),
        &batches,
    )?;
    Ok(Row(batch))
}

/// Computes the report.
async fn profile(state: &SessionState, source: &Source) -> Result<RecordBatch> {
    let input = source.sql(state, "*", "").await?;
    let fields: Vec<Field> = input
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if fields.is_empty() {
        return Ok(RecordBatch::new_empty(SCHEMA.clone()));
    }
    let kinds: Vec<Kind> = fields.iter().map(|f| kind_of(f.data_type())).collect();

    let mut select = vec!["count(*) AS row_count".to_string()];
    let mut derived = vec!["*".to_string()];
    for (i, (f, kind)) in fields.iter().zip(&kinds).enumerate() {
        select.extend(column_aggregates(i, f.name(), *kind));
        if *kind == Kind::Text {
            derived.extend(text_parses(i, f.name()));
        }
    }
    // Derived columns get aliases in an inner projection: DataFusion names an aggregate
    // by its unaliased expression, and `try_cast`s of one column would collide.
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {}) AS profiled",
        select.join(", "),
        derived.join(", "),
        source.from_clause()
    );
    let stats = single_row(state, &sql).await?;
    let rows = stats.int("row_count").unwrap_or(0);

    // Exact distinct counts where the estimate says the set is small.
    let exact: Vec<String> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            stats
                .int(&format!("ad_{i}"))
                .is_some_and(|d| d <= EXACT_DISTINCT_LIMIT)
        })
        .map(|(i, f)| format!("count(DISTINCT {}) AS d_{i}", quote_ident(f.name())))
        .collect();
    let distinct = if exact.is_empty() {
        None
    } else {
        let sql = format!("SELECT {} FROM {}", exact.join(", "), source.from_clause());
        Some(single_row(state, &sql).await?)
    };

    let mut b = Builders::default();
    for (i, (field, kind)) in fields.iter().zip(&kinds).enumerate() {
        let non_null = stats.int(&format!("nn_{i}")).unwrap_or(0);
        let nulls = rows - non_null;
        b.column_name.append_value(field.name());
        b.data_type.append_value(sql_type_name(field.data_type()));
        b.row_count.append_value(rows);
        b.null_count.append_value(nulls);
        b.null_pct
            .append_option((rows > 0).then(|| round(100.0 * nulls as f64 / rows as f64)));
        let exact_distinct = distinct.as_ref().and_then(|d| d.int(&format!("d_{i}")));
        b.distinct_count
            .append_option(exact_distinct.or_else(|| stats.int(&format!("ad_{i}"))));
        b.min.append_option(stats.text(&format!("min_{i}")));
        b.max.append_option(stats.text(&format!("max_{i}")));
        b.mean.append_option(stats.float(&format!("mean_{i}")));
        b.stddev.append_option(stats.float(&format!("sd_{i}")));
        b.p25.append_option(stats.float(&format!("p25_{i}")));
        b.median.append_option(stats.float(&format!("p50_{i}")));
        b.p75.append_option(stats.float(&format!("p75_{i}")));
        b.top_values
            .append_option(top_values(state, source, field.name(), *kind).await?);
        b.inferred_type
            .append_value(inferred_type(&stats, i, field.data_type(), *kind, non_null));
    }
    b.finish()
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The type the values look like: a text column of ISO dates is a `date`.
fn inferred_type(stats: &Row, i: usize, t: &DataType, kind: Kind, non_null: i64) -> String {
    let all = |alias: &str| non_null > 0 && stats.int(&format!("{alias}_{i}")) == Some(non_null);
    match kind {
        Kind::Text if all("int") => "integer".into(),
        Kind::Text if all("dbl") => "float".into(),
        Kind::Text if all("date") => "date".into(),
        Kind::Text if all("ts") => "timestamp".into(),
        Kind::Text if all("bool") => "boolean".into(),
        Kind::Text => "text".into(),
        Kind::Float if all("whole") => "integer".into(),
        Kind::Float => "float".into(),
        Kind::Integer => "integer".into(),
        _ => sql_type_name(t),
    }
}

/// The most frequent values as JSON: `[{"value":"North","count":488}, ...]`.
async fn top_values(
    state: &SessionState,
    source: &Source,
    name: &str,
    kind: Kind,
) -> Result<Option<String>> {
    if kind == Kind::Other {
        return Ok(None);
    }
    let c = quote_ident(name);
    let df = source
        .sql(
            state,
            &format!("CAST({c} AS VARCHAR) AS v, count(*) AS n"),
            &format!("GROUP BY 1 ORDER BY n DESC, v ASC NULLS LAST LIMIT {TOP_VALUES}"),
        )
        .await?;
    let mut items = Vec::new();
    for batch in df.collect().await? {
        let values = batch.column(0).as_string::<i32>();
        let counts: ArrayRef = cast(batch.column(1), &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            let value = values.is_valid(r).then(|| values.value(r));
            items.push(serde_json::json!({ "value": value, "count": counts.value(r) }));
        }
    }
    Ok(Some(serde_json::Value::Array(items).to_string()))
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
