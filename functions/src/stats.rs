//! Column statistics in one pass: the facts `profile` reports and `quality` judges.
//!
//! One aggregate query computes, per column: non-null count, a HyperLogLog distinct
//! estimate, min and max; for numbers mean, sample stddev and t-digest quartiles.
//! Columns whose estimate is at most [`EXACT_DISTINCT_LIMIT`] are then read from one
//! GROUP BY each ([`values`]): exact distinct count and top values, and for text how
//! many values parse as integers, floats, dates, timestamps or booleans (each distinct
//! value parsed once). Text columns of more values are parsed row by row, in one pass.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, Schema};
use datafusion::common::Result;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::prelude::DataFrame;

mod values;

use values::column_values;
pub(crate) use values::{top_values, ValueCount};

use crate::quartiles;
use crate::source::{quote_ident, Source};

/// By default, up to this many distinct values (estimated) a column's distinct count is
/// exact.
pub const EXACT_DISTINCT_LIMIT: i64 = 100_000;

/// What kind of statistics a column gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Integer,
    Float,
    Text,
    Temporal,
    Boolean,
    Other,
}

impl Kind {
    pub(crate) fn of(t: &DataType) -> Self {
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

    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, Kind::Integer | Kind::Float)
    }
}

/// How many non-null values of a text column parse as each type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Parses {
    pub(crate) integer: i64,
    pub(crate) float: i64,
    pub(crate) date: i64,
    pub(crate) timestamp: i64,
    pub(crate) boolean: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnStats {
    pub(crate) name: String,
    pub(crate) data_type: DataType,
    pub(crate) kind: Kind,
    pub(crate) non_null: i64,
    pub(crate) distinct: Option<i64>,
    pub(crate) min: Option<String>,
    pub(crate) max: Option<String>,
    pub(crate) mean: Option<f64>,
    pub(crate) stddev: Option<f64>,
    pub(crate) p25: Option<f64>,
    pub(crate) p50: Option<f64>,
    pub(crate) p75: Option<f64>,
    /// Floats that are whole numbers (for `inferred_type`).
    pub(crate) whole: Option<i64>,
    pub(crate) parses: Parses,
    /// The most frequent values, when the statistics' own passes found them (columns
    /// of few distinct values, see [`values`]).
    pub(crate) top_values: Option<Vec<ValueCount>>,
}

impl ColumnStats {
    /// The type the values look like: a text column of ISO dates is a `date`.
    pub(crate) fn inferred_type(&self) -> String {
        let all = |n: i64| self.non_null > 0 && n == self.non_null;
        let p = self.parses;
        match self.kind {
            Kind::Text if all(p.integer) => "integer".into(),
            Kind::Text if all(p.float) => "float".into(),
            Kind::Text if all(p.date) => "date".into(),
            Kind::Text if all(p.timestamp) => "timestamp".into(),
            Kind::Text if all(p.boolean) => "boolean".into(),
            Kind::Text => "text".into(),
            Kind::Float if self.whole.is_some_and(all) => "integer".into(),
            Kind::Float => "float".into(),
            Kind::Integer => "integer".into(),
            _ => sql_type_name(&self.data_type),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TableStats {
    pub(crate) rows: i64,
    pub(crate) columns: Vec<ColumnStats>,
}

/// The Postgres name of an Arrow type, as psql users read it.
pub(crate) fn sql_type_name(t: &DataType) -> String {
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
fn aggregates(i: usize, name: &str, data_type: &DataType) -> Vec<String> {
    let c = quote_ident(name);
    let kind = Kind::of(data_type);
    let mut aggs = vec![format!("count({c}) AS nn_{i}")];
    if kind != Kind::Other {
        // approx_distinct hashes every type profile sees but floats as they are;
        // formatting each value as text first only to hash it is wasted work.
        let hashed = if data_type.is_floating() {
            format!("CAST({c} AS VARCHAR)")
        } else {
            c.clone()
        };
        aggs.push(format!("approx_distinct({hashed}) AS ad_{i}"));
        aggs.push(format!("CAST(min({c}) AS VARCHAR) AS min_{i}"));
        aggs.push(format!("CAST(max({c}) AS VARCHAR) AS max_{i}"));
    }
    if kind.is_numeric() {
        let d = format!("CAST({c} AS DOUBLE)");
        aggs.push(format!("avg({d}) AS mean_{i}"));
        aggs.push(format!("stddev({d}) AS sd_{i}"));
        // One t-digest for the three quartiles (see `quartiles`).
        for alias in ["p25", "p50", "p75"] {
            aggs.push(format!(
                "get_field({}({d}), '{alias}') AS {alias}_{i}",
                quartiles::NAME
            ));
        }
    }
    if kind == Kind::Float {
        aggs.push(format!("count(CASE WHEN CAST({c} AS DOUBLE) = trunc(CAST({c} AS DOUBLE)) THEN 1 END) AS whole_{i}"));
    }
    aggs
}

/// The single row of an aggregate query, read by alias.
pub(crate) struct Row(RecordBatch);

impl Row {
    pub(crate) async fn query(state: &SessionState, sql: &str) -> Result<Self> {
        let plan = state.create_logical_plan(sql).await?;
        let batches = DataFrame::new(state.clone(), plan).collect().await?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        Ok(Row(concat_batches(&schema, &batches)?))
    }

    pub(crate) fn int(&self, alias: &str) -> Option<i64> {
        let col = cast(self.0.column_by_name(alias)?, &DataType::Int64).ok()?;
        let col = col.as_primitive::<Int64Type>();
        (!col.is_empty() && col.is_valid(0)).then(|| col.value(0))
    }

    pub(crate) fn float(&self, alias: &str) -> Option<f64> {
        let col = cast(self.0.column_by_name(alias)?, &DataType::Float64).ok()?;
        let col = col.as_primitive::<Float64Type>();
        (!col.is_empty() && col.is_valid(0))
            .then(|| col.value(0))
            .filter(|v| v.is_finite())
    }

    pub(crate) fn text(&self, alias: &str) -> Option<String> {
        let col = cast(self.0.column_by_name(alias)?, &DataType::Utf8).ok()?;
        let col = col.as_string::<i32>();
        (!col.is_empty() && col.is_valid(0)).then(|| col.value(0).to_string())
    }
}

/// Computes the statistics of every column of `source`.
/// Distinct counts are exact for columns estimated at or below `exact_limit`.
pub(crate) async fn collect(
    state: &SessionState,
    source: &Source,
    exact_limit: i64,
) -> Result<TableStats> {
    let input = source.sql(state, "*", "").await?;
    let fields: Vec<(String, DataType)> = input
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    if fields.is_empty() {
        return Ok(TableStats {
            rows: 0,
            columns: vec![],
        });
    }
    let mut select = vec!["count(*) AS row_count".to_string()];
    for (i, (name, t)) in fields.iter().enumerate() {
        select.extend(aggregates(i, name, t));
    }
    let sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        source.relation_sql()
    );
    let mut with_quartiles = state.clone();
    with_quartiles.register_udaf(quartiles::udaf())?;
    let row = Row::query(&with_quartiles, &sql).await?;

    // Columns estimated at few distinct values are read from a GROUP BY each: exact
    // distinct count, top values and (text) parse counts. Other text columns are
    // parsed row by row, all in one pass.
    let few_values = |i: usize| {
        row.int(&format!("ad_{i}"))
            .is_some_and(|d| d <= exact_limit)
    };
    let mut by_value = HashMap::new();
    let mut by_row = Vec::new();
    for (i, (name, t)) in fields.iter().enumerate() {
        let kind = Kind::of(t);
        if kind != Kind::Other && few_values(i) {
            by_value.insert(i, column_values(state, source, name, kind).await?);
        } else if kind == Kind::Text {
            by_row.push((i, name.as_str()));
        }
    }
    let by_row = match by_row.is_empty() {
        true => None,
        false => Some(Row::query(state, &parses_by_row(source, &by_row)).await?),
    };

    let columns = fields
        .into_iter()
        .enumerate()
        .map(|(i, (name, data_type))| {
            let count = |what: &str| row.int(&format!("{what}_{i}")).unwrap_or(0);
            let (exact, parses, top_values) = match by_value.remove(&i) {
                Some(values) => (Some(values.distinct), values.parses, Some(values.top)),
                None => (
                    None,
                    by_row
                        .as_ref()
                        .map(|r| parses(r, &format!("_{i}")))
                        .unwrap_or_default(),
                    None,
                ),
            };
            ColumnStats {
                kind: Kind::of(&data_type),
                name,
                data_type,
                non_null: count("nn"),
                distinct: exact.or_else(|| row.int(&format!("ad_{i}"))),
                min: row.text(&format!("min_{i}")),
                max: row.text(&format!("max_{i}")),
                mean: row.float(&format!("mean_{i}")),
                stddev: row.float(&format!("sd_{i}")),
                p25: row.float(&format!("p25_{i}")),
                p50: row.float(&format!("p50_{i}")),
                p75: row.float(&format!("p75_{i}")),
                whole: row.int(&format!("whole_{i}")),
                parses,
                top_values,
            }
        })
        .collect();
    Ok(TableStats {
        rows: row.int("row_count").unwrap_or(0),
        columns,
    })
}

/// The parse counts read from `row`, whose aliases end in `suffix`.
fn parses(row: &Row, suffix: &str) -> Parses {
    let count = |what: &str| row.int(&format!("{what}{suffix}")).unwrap_or(0);
    Parses {
        integer: count("int"),
        float: count("dbl"),
        date: count("date"),
        timestamp: count("ts"),
        boolean: count("bool"),
    }
}

/// For each kind of value a text can hold, an expression over `t` that is not NULL
/// exactly when `t` parses as that kind.
fn parse_tests(t: &str) -> [(&'static str, String); 5] {
    [
        ("int", format!("try_cast({t} AS BIGINT)")),
        ("dbl", format!("try_cast({t} AS DOUBLE)")),
        ("date", format!("CASE WHEN {t} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}$' THEN try_cast({t} AS DATE) END")),
        ("ts", format!("CASE WHEN {t} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}[ T]\\d' THEN try_cast({t} AS TIMESTAMP) END")),
        ("bool", format!("CASE WHEN lower({t}) IN ('true', 'false', 't', 'f', 'yes', 'no') THEN 1 END")),
    ]
}

/// Text columns of many distinct values are parsed row by row, all in one pass. The
/// tests get aliases in an inner projection: DataFusion names an aggregate by its
/// unaliased expression, and `try_cast`s of one column would collide.
fn parses_by_row(source: &Source, columns: &[(usize, &str)]) -> String {
    let mut derived = Vec::new();
    let mut counts = Vec::new();
    for (i, name) in columns {
        for (what, test) in parse_tests(&format!("trim({})", quote_ident(name))) {
            derived.push(format!("{test} AS \"__{what}_{i}\""));
            counts.push(format!("count(\"__{what}_{i}\") AS {what}_{i}"));
        }
    }
    format!(
        "SELECT {} FROM (SELECT {} FROM {}) AS parsed",
        counts.join(", "),
        derived.join(", "),
        source.relation_sql()
    )
}
