//! Runs queries (`SELECT`, `VALUES`, `WITH`) for datafusion-postgres and streams their
//! rows with our batch encoder ([`super::rows`]) instead of arrow-pg's per-value one.
//!
//! It is the last query hook: statements the other hooks answer (cursors, `SET`/`SHOW`,
//! transactions) never reach it, and everything else (inserts, DDL) stays with
//! datafusion-postgres. Hooks are not told the portal's result formats, so the session
//! leaves them in [`ResultFormat`] before it runs a portal.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use futures::{stream, StreamExt};
use parking_lot::Mutex;
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use super::rows::encode_batch;

/// Where datafusion-postgres keeps a session's `statement_timeout`.
pub(crate) const STATEMENT_TIMEOUT_MS: &str = "statement_timeout_ms";

/// The result formats of the portal the session is about to run.
#[derive(Default)]
pub(crate) struct ResultFormat(Mutex<Option<Format>>);

impl ResultFormat {
    pub(crate) fn set(&self, format: Format) {
        *self.0.lock() = Some(format);
    }

    fn take(&self) -> Format {
        self.0.lock().take().unwrap_or_default()
    }
}

pub(crate) struct ResultsHook {
    pub(crate) format: Arc<ResultFormat>,
}

#[async_trait]
impl QueryHook for ResultsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let sql = statement.to_string();
        let df = within_timeout(client, ctx.sql(&sql)).await;
        Some(respond(df, &Format::UnifiedText, client).await)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let format = self.format.take();
        let plan = match plan.clone().replace_params_with_values(params) {
            Ok(plan) => plan,
            Err(e) => return Some(Err(api_error(e))),
        };
        let df = within_timeout(client, ctx.execute_logical_plan(plan)).await;
        Some(respond(df, &format, client).await)
    }
}

/// The session's `statement_timeout` (unset or 0: none).
pub(crate) fn statement_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<std::time::Duration> {
    client
        .metadata()
        .get(STATEMENT_TIMEOUT_MS)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis)
}

/// Planning under the session's `statement_timeout` (streaming is watched by the session).
async fn within_timeout(
    client: &dyn HookClient,
    planning: impl std::future::Future<Output = datafusion::error::Result<DataFrame>>,
) -> PgWireResult<DataFrame> {
    let planned = match statement_timeout(client) {
        Some(limit) => tokio::time::timeout(limit, planning).await.map_err(|_| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                crate::error::sqlstate::QUERY_CANCELED.into(),
                "canceling statement due to statement timeout".into(),
            )))
        })?,
        None => planning.await,
    };
    planned.map_err(api_error)
}

async fn respond(
    df: PgWireResult<DataFrame>,
    format: &Format,
    client: &dyn HookClient,
) -> PgWireResult<Response> {
    let df = df?;
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(
        df.schema().as_arrow(),
        format,
        Some(options),
    )?);
    let batches = df.execute_stream().await.map_err(api_error)?;
    let row_fields = fields.clone();
    let rows = batches
        .flat_map(|batch| {
            stream::iter(match batch {
                Ok(batch) => slices(batch).map(Ok).collect(),
                Err(e) => vec![Err(api_error(e))],
            })
        })
        .flat_map(move |slice| {
            let rows = slice.and_then(|slice| encode_batch(&row_fields, &slice));
            stream::iter(match rows {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            })
        });
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// The most rows encoded into one buffer: DataFusion streams batches of this size, but
/// a table built from one huge batch (a `MemTable`, a `VALUES` list) would otherwise be
/// encoded whole before its first row went out.
const ROWS_PER_ENCODE: usize = 8192;

/// `batch` in zero-copy slices of at most [`ROWS_PER_ENCODE`] rows, encoded one by one.
fn slices(batch: RecordBatch) -> impl Iterator<Item = RecordBatch> {
    let rows = batch.num_rows();
    (0..rows)
        .step_by(ROWS_PER_ENCODE)
        .map(move |offset| batch.slice(offset, ROWS_PER_ENCODE.min(rows - offset)))
}

fn api_error(e: DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array};

    #[test]
    fn a_large_batch_is_encoded_in_slices_that_keep_every_row_in_order() {
        let values = Int32Array::from_iter_values(0..20_000);
        let batch = RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap();
        let sizes: Vec<usize> = slices(batch.clone()).map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [8192, 8192, 3616]);
        let back: Vec<i32> = slices(batch)
            .flat_map(|b| {
                let column = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
                column.values().to_vec()
            })
            .collect();
        assert_eq!(back, (0..20_000).collect::<Vec<_>>());
        let empty = RecordBatch::new_empty(Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        assert_eq!(slices(empty).count(), 0);
    }
}
