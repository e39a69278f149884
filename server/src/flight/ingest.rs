//! Flight SQL bulk ingest (`CommandStatementIngest`, ADBC `adbc_ingest`): create,
//! append, replace and create-append, all through the same insert path as `COPY`.

use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::FlightData;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use insightflow_catalog::access::current_caller;
use insightflow_catalog::{RoleLimits, DEFAULT_SCHEMA};
use tonic::{Request, Status};

use super::FlightSqlServer;
use crate::error::to_status;

impl FlightSqlServer {
    /// `adbc_ingest` as the current caller: creating or replacing a table needs the
    /// rights of `CREATE TABLE`, appending those of `INSERT`.
    pub(super) async fn ingest(
        &self,
        ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
        if ticket.temporary {
            return Err(Status::unimplemented(
                "temporary ingest tables are not supported",
            ));
        }
        let schema_name = ticket
            .schema
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        let table = TableReference::partial(schema_name.as_str(), ticket.table.as_str());
        let options = ticket.table_definition_options.unwrap_or_default();
        let if_exists =
            TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Fail);
        let if_not_exist = TableNotExistOption::try_from(options.if_not_exist)
            .unwrap_or(TableNotExistOption::Fail);

        let data = capped(request.into_inner().map_err(FlightError::from));
        let mut batches =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data).peekable();
        // The schema comes with the first message, before any rows.
        let _ = std::pin::Pin::new(&mut batches).peek().await;
        let schema = batches
            .get_ref()
            .schema()
            .cloned()
            .ok_or_else(|| Status::invalid_argument("ingest stream has no schema"))?;

        let ctx = self.engine.ctx();
        let catalog = self.engine.catalog();
        let exists = ctx.table_exist(table.clone()).map_err(|e| to_status(&e))?;
        let creates = !exists && if_not_exist == TableNotExistOption::Create
            || exists && if_exists == TableExistsOption::Replace;
        if creates {
            current_caller()
                .and_then(|c| c.check_schema_owner(&schema_name))
                .map_err(|e| to_status(&DataFusionError::from(e)))?;
        }
        match (exists, if_exists, if_not_exist) {
            (true, TableExistsOption::Append, _) => {}
            (true, TableExistsOption::Replace, _) => {
                catalog
                    .drop_table(ctx, &schema_name, &ticket.table)
                    .await
                    .map_err(|e| to_status(&e))?;
                catalog
                    .create_managed_table(ctx, &schema_name, &ticket.table, schema.clone())
                    .map_err(|e| to_status(&e))?;
            }
            (true, _, _) => {
                return Err(Status::already_exists(format!(
                    "table \"{}\" already exists (SQLSTATE 42P07)",
                    ticket.table
                )))
            }
            (false, _, TableNotExistOption::Create) => catalog
                .create_managed_table(ctx, &schema_name, &ticket.table, schema.clone())
                .map_err(|e| to_status(&e))?,
            (false, _, _) => {
                return Err(Status::not_found(format!(
                    "table \"{}\" does not exist (SQLSTATE 42P01)",
                    ticket.table
                )))
            }
        }
        // A refusal raised on the way in (a role's cap) keeps its SQLSTATE.
        let rows = batches.map_err(|e| match e {
            FlightError::ExternalError(inner) => match inner.downcast::<DataFusionError>() {
                Ok(e) => *e,
                Err(other) => DataFusionError::External(other),
            },
            other => DataFusionError::External(Box::new(other)),
        });
        let rows = Box::pin(RecordBatchStreamAdapter::new(schema, rows));
        let written = self
            .engine
            .insert_stream(table, rows, InsertOp::Append)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(written as i64)
    }
}

/// A role's `max_file_bytes`: data past it fails the ingest (SQLSTATE 54000), so
/// nothing is committed.
fn capped<S>(data: S) -> futures::stream::BoxStream<'static, Result<FlightData, FlightError>>
where
    S: futures::Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
{
    let caller = current_caller().ok();
    let Some((max, user)) = caller.and_then(|c| {
        let max = c.limits().max_file_bytes?;
        Some((max, c.name().to_string()))
    }) else {
        return data.boxed();
    };
    let mut received = 0u64;
    data.map(move |item| {
        let data = item?;
        received += (data.data_header.len() + data.data_body.len()) as u64;
        if received > max {
            let error = RoleLimits::exceeded("max_file_bytes", max, &user, "the ingested data");
            return Err(FlightError::ExternalError(Box::new(DataFusionError::from(
                error,
            ))));
        }
        Ok(data)
    })
    .boxed()
}
