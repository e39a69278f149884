//! A column read from one `GROUP BY` of its own values, for the facts that would each
//! take another pass over every row: the exact distinct count, the most frequent
//! values, and for text how many rows parse as each type (each distinct value parsed
//! once, weighted by its count).
//!
//! Values are grouped as they are stored and formatted as text only afterwards, once
//! per distinct value: formatting ten million integers to group them by their text
//! costs more than the grouping itself.

use std::cmp::Reverse;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::prelude::DataFrame;

use super::{parse_tests, Kind, Parses};
use crate::source::{quote_ident, Source};

/// How many of the most frequent values a column reports.
pub(crate) const TOP_VALUES: usize = 5;

/// A value as text (`None` for NULL) and how many rows hold it.
pub(crate) type ValueCount = (Option<String>, i64);

#[derive(Debug, Default)]
pub(crate) struct ColumnValues {
    /// Distinct non-null values.
    pub(crate) distinct: i64,
    /// For text columns; zero for others.
    pub(crate) parses: Parses,
    /// The [`TOP_VALUES`] most frequent values (NULL included), most frequent first,
    /// ties in text order, NULL last.
    pub(crate) top: Vec<ValueCount>,
}

/// Reads every distinct value of column `name` with its count: meant for columns of
/// few distinct values (the caller checks an estimate first).
pub(crate) async fn column_values(
    state: &SessionState,
    source: &Source,
    name: &str,
    kind: Kind,
) -> Result<ColumnValues> {
    let mut columns = vec![
        "CAST(v AS VARCHAR) AS v".to_string(),
        "CAST(n AS BIGINT) AS n".to_string(),
    ];
    if kind == Kind::Text {
        for (what, test) in parse_tests("trim(v)") {
            columns.push(format!("({test}) IS NOT NULL AS \"{what}\""));
        }
    }
    let sql = format!(
        "SELECT {} FROM {}",
        columns.join(", "),
        by_value(source, name)
    );
    let batches = run(state, &sql).await?;

    let mut out = ColumnValues::default();
    let mut values = Vec::new();
    for batch in &batches {
        let parsed: Vec<ArrayRef> = (2..batch.num_columns())
            .map(|c| cast(batch.column(c), &DataType::Boolean))
            .collect::<std::result::Result<_, _>>()?;
        let parsed: Vec<_> = parsed.iter().map(|a| a.as_boolean()).collect();
        let start = values.len();
        read_value_counts(batch, &mut values)?;
        for (r, (value, n)) in values[start..].iter().enumerate() {
            let weight = |k: usize| match parsed.get(k) {
                Some(p) if p.value(r) => *n,
                _ => 0,
            };
            out.parses.integer += weight(0);
            out.parses.float += weight(1);
            out.parses.date += weight(2);
            out.parses.timestamp += weight(3);
            out.parses.boolean += weight(4);
            out.distinct += i64::from(value.is_some());
        }
    }
    // Most frequent first; then by value, NULL last (as ORDER BY n DESC, v NULLS LAST).
    values.sort_unstable_by(|(a, n), (b, m)| {
        (Reverse(n), a.is_none(), a).cmp(&(Reverse(m), b.is_none(), b))
    });
    values.truncate(TOP_VALUES);
    out.top = values;
    Ok(out)
}

/// Only the [`TOP_VALUES`] most frequent values of column `name`, for columns with too
/// many distinct values to read them all.
pub(crate) async fn top_values(
    state: &SessionState,
    source: &Source,
    name: &str,
) -> Result<Vec<ValueCount>> {
    let sql = format!(
        "SELECT CAST(v AS VARCHAR) AS v, CAST(n AS BIGINT) AS n FROM {} \
         ORDER BY n DESC, v ASC NULLS LAST LIMIT {TOP_VALUES}",
        by_value(source, name)
    );
    let mut top = Vec::new();
    for batch in run(state, &sql).await? {
        read_value_counts(&batch, &mut top)?;
    }
    Ok(top)
}

/// The derived table `by_value(v, n)`: each value of the column and its row count.
fn by_value(source: &Source, name: &str) -> String {
    format!(
        "(SELECT {} AS v, count(*) AS n FROM {} GROUP BY 1) AS by_value",
        quote_ident(name),
        source.relation_sql()
    )
}

async fn run(state: &SessionState, sql: &str) -> Result<Vec<RecordBatch>> {
    let plan = state.create_logical_plan(sql).await?;
    DataFrame::new(state.clone(), plan).collect().await
}

/// Appends the (value, count) pairs of the batch's first two columns.
fn read_value_counts(batch: &RecordBatch, out: &mut Vec<ValueCount>) -> Result<()> {
    // Read through casts: the session may map VARCHAR to Utf8View.
    let value = cast(batch.column(0), &DataType::Utf8)?;
    let value = value.as_string::<i32>();
    let count = cast(batch.column(1), &DataType::Int64)?;
    let count = count.as_primitive::<Int64Type>();
    for r in 0..batch.num_rows() {
        let v = value.is_valid(r).then(|| value.value(r).to_string());
        out.push((v, count.value(r)));
    }
    Ok(())
}
