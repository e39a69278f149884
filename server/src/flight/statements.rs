//! What a statement is over Flight SQL: JDBC/ADBC `?` placeholders, a statement
//! ticket's handle, a prepared statement's parameter schema and bound parameters.

use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{DataFusionError, ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::{StreamExt, TryStreamExt};
use tonic::Status;

use crate::engine::Engine;
use crate::error::to_status;

/// Rewrites JDBC/ADBC-style `?` placeholders to DataFusion's `$1, $2, ...`.
/// Literals and quoted identifiers are left alone (the tokenizer knows them).
pub fn positional_placeholders(sql: &str) -> String {
    if !sql.contains('?') {
        return sql.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let mut n = 0;
    tokens
        .into_iter()
        .map(|t| match t {
            Token::Question => {
                n += 1;
                format!("${n}")
            }
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                format!("${n}")
            }
            other => other.to_string(),
        })
        .collect()
}

/// Whether `sql` is one statement the catalog runs (`CREATE`, `DROP`, `GRANT`, ...).
pub(super) fn is_catalog_statement(sql: &str) -> bool {
    matches!(Engine::parse(sql).as_deref(), Ok([stmt]) if insightflow_catalog::Catalog::handles(stmt))
}

/// A statement ticket's handle: a fresh id, so that each FlightInfo's query can be
/// cancelled on its own, then the SQL.
pub(super) fn statement_handle(sql: &str) -> bytes::Bytes {
    format!("{}:{sql}", uuid::Uuid::new_v4().simple()).into()
}

/// The SQL of a handle made by [`statement_handle`].
pub(super) fn handle_sql(handle: &[u8]) -> Result<String, Status> {
    std::str::from_utf8(handle)
        .ok()
        .and_then(|text| text.split_once(':'))
        .filter(|(id, _)| id.len() == 32)
        .map(|(_, sql)| sql.to_string())
        .ok_or_else(|| Status::invalid_argument("ticket is not a statement of this server"))
}

/// The `$n` parameters of a plan as an Arrow schema, in order.
pub(super) fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, DataFusionError> {
    let types = plan.get_parameter_types()?;
    let mut ids: Vec<(usize, String)> = types
        .keys()
        .map(|k| {
            (
                k.trim_start_matches('$').parse().unwrap_or(usize::MAX),
                k.clone(),
            )
        })
        .collect();
    ids.sort();
    let fields: Vec<Field> = ids
        .into_iter()
        .map(|(_, k)| {
            let t = types[&k]
                .clone()
                .unwrap_or(datafusion::arrow::datatypes::DataType::Utf8);
            Field::new(k, t, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

pub(super) fn params_is_empty(p: &ParamValues) -> bool {
    matches!(p, ParamValues::List(v) if v.is_empty())
}

/// Reads the parameter batch a client binds to a prepared statement (first row).
pub(super) async fn read_parameters(
    stream: PeekableFlightDataStream,
) -> Result<ParamValues, Status> {
    let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        stream.map_err(FlightError::from),
    );
    let mut values = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch =
            batch.map_err(|e| Status::invalid_argument(format!("bad parameter batch: {e}")))?;
        if batch.num_rows() == 0 {
            continue;
        }
        if batch.num_rows() > 1 || !values.is_empty() {
            return Err(Status::unimplemented(
                "binding more than one row of parameters is not supported",
            ));
        }
        for column in batch.columns() {
            values.push(ScalarValue::try_from_array(column, 0).map_err(|e| to_status(&e))?);
        }
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::positional_placeholders;

    #[test]
    fn question_marks_become_dollar_params() {
        assert_eq!(
            positional_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c > ?"),
            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c > $2"
        );
        assert_eq!(positional_placeholders("SELECT 1"), "SELECT 1");
    }
}
