//! A text column of few distinct values, read from one `GROUP BY` of it: the exact
//! distinct count, how many rows parse as each type (each distinct value parsed once,
//! weighted by its count), and the most frequent values — three facts that would
//! otherwise take a pass over every row each.

use std::cmp::Reverse;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::prelude::DataFrame;

use super::{parse_tests, Parses};
use crate::source::{quote_ident, Source};

/// How many of the most frequent values a column reports.
pub(crate) const TOP_VALUES: usize = 5;

#[derive(Debug, Default)]
pub(crate) struct TextValues {
    pub(crate) distinct: i64,
    pub(crate) parses: Parses,
    /// The [`TOP_VALUES`] most frequent values (NULL included), most frequent first,
    /// ties in value order.
    pub(crate) top: Vec<(Option<String>, i64)>,
}

pub(crate) async fn text_values(
    state: &SessionState,
    source: &Source,
    name: &str,
) -> Result<TextValues> {
    let mut columns = vec![
        "CAST(v AS VARCHAR) AS v".to_string(),
        "CAST(n AS BIGINT) AS n".to_string(),
    ];
    for (what, test) in parse_tests("trim(v)") {
        columns.push(format!("({test}) IS NOT NULL AS \"{what}\""));
    }
    let sql = format!(
        "SELECT {} FROM (SELECT {} AS v, count(*) AS n FROM {} GROUP BY 1) AS by_value",
        columns.join(", "),
        quote_ident(name),
        source.relation_sql()
    );
    let plan = state.create_logical_plan(&sql).await?;
    let batches = DataFrame::new(state.clone(), plan).collect().await?;

    let mut out = TextValues::default();
    let mut values = Vec::new();
    for batch in &batches {
        // Read through casts: the session may map VARCHAR to Utf8View.
        let value = cast(batch.column(0), &DataType::Utf8)?;
        let value = value.as_string::<i32>();
        let count = cast(batch.column(1), &DataType::Int64)?;
        let count = count.as_primitive::<Int64Type>();
        let parsed: Vec<ArrayRef> = (2..7)
            .map(|c| cast(batch.column(c), &DataType::Boolean))
            .collect::<std::result::Result<_, _>>()?;
        let parsed: Vec<_> = parsed.iter().map(|a| a.as_boolean()).collect();
        for r in 0..batch.num_rows() {
            let n = count.value(r);
            let weight = |k: usize| if parsed[k].value(r) { n } else { 0 };
            out.parses.integer += weight(0);
            out.parses.float += weight(1);
            out.parses.date += weight(2);
            out.parses.timestamp += weight(3);
            out.parses.boolean += weight(4);
            let v = value.is_valid(r).then(|| value.value(r).to_string());
            out.distinct += i64::from(v.is_some());
            values.push((v, n));
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
