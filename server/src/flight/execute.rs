//! Planning and running statements for Flight calls: as the caller, under the
//! statement timeout, recorded in the query log, with the role's row cap.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::ActionCreatePreparedStatementResult;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use futures::{stream, Stream, StreamExt, TryStreamExt};
use insightflow_catalog::access::{check_plan, current_caller};
use insightflow_catalog::{rows_affected, Caller, RoleLimits};
use insightflow_functions::ask::collect_notes;
use tokio::time::Instant;
use tonic::{Response, Status};
use tracing::Instrument;

use super::{
    compact, lock, positional_placeholders, track, DoGetStream, FlightSqlServer, Prepared,
};
use crate::engine::{Engine, StatementResult};
use crate::error::to_status;
use crate::monitor::{Tracked, Who};

impl FlightSqlServer {
    /// Starts the record of a statement (refused at the rate limit).
    pub(super) fn admit(&self, who: &Who, sql: &str) -> Result<Tracked, Status> {
        track::admit(self.engine.monitor(), who, sql)
    }

    /// When a statement started now must end.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.statement_timeout.map(|t| Instant::now() + t)
    }

    /// Runs `work`, bounded by the statement timeout.
    pub(super) async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match self.statement_timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(track::timed_out())),
            None => work.await,
        }
    }

    /// Plans `sql` as `caller`; what `ask` did goes into `tracked`.
    pub(super) async fn plan(
        &self,
        caller: &Caller,
        sql: &str,
        tracked: &Tracked,
    ) -> Result<LogicalPlan, Status> {
        let span =
            tracing::info_span!("query", query_id = tracked.query_id(), user = caller.name());
        let planning = self.bounded(caller.clone().scope(self.plan_as_caller(sql)));
        let (plan, notes) = collect_notes(planning).instrument(span).await;
        tracked.noted(&notes);
        if let Err(status) = &plan {
            track::failed(tracked, status);
        }
        plan
    }

    pub(super) async fn plan_as_caller(&self, sql: &str) -> Result<LogicalPlan, Status> {
        let sql = positional_placeholders(sql);
        let mut stmts = Engine::parse(&sql).map_err(|e| to_status(&e))?;
        if stmts.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "expected exactly one statement, got {}",
                stmts.len()
            )));
        }
        let stmt = stmts.remove(0);
        if insightflow_catalog::Catalog::handles(&stmt) {
            return Err(Status::invalid_argument(
                "catalog statements (CREATE, DROP, COPY) run through ExecuteUpdate, not a query",
            ));
        }
        let state = self.engine.ctx().state();
        let plan = state
            .statement_to_plan(stmt)
            .await
            .map_err(|e| to_status(&e))?;
        // Refuse at GetFlightInfo already, not only when the ticket is fetched.
        let default_schema = &state.config_options().catalog.default_schema;
        current_caller()
            .map_err(DataFusionError::from)
            .and_then(|caller| check_plan(&caller, &plan, default_schema))
            .map_err(|e| to_status(&e))?;
        Ok(plan)
    }

    /// Streams `plan`'s rows as `caller`, recorded in `tracked`, until the deadline or
    /// until `ticket` is cancelled.
    pub(super) async fn stream_plan(
        &self,
        caller: &Caller,
        plan: LogicalPlan,
        tracked: Tracked,
        deadline: Option<Instant>,
        ticket: bytes::Bytes,
    ) -> Result<Response<DoGetStream>, Status> {
        let started = caller
            .clone()
            .scope(self.bounded(self.stream_plan_as_caller(plan, tracked.clone())))
            .await;
        match started {
            Ok(stream) => {
                let stream = self.running.cancellable(ticket, stream);
                let stream = track::follow(tracked, stream, deadline);
                Ok(Response::new(Box::pin(caller.clone().scope_stream(stream))))
            }
            Err(status) => {
                track::failed(&tracked, &status);
                Err(status)
            }
        }
    }

    pub(super) async fn stream_plan_as_caller(
        &self,
        plan: LogicalPlan,
        tracked: Tracked,
    ) -> Result<DoGetStream, Status> {
        let df = self
            .engine
            .ctx()
            .execute_logical_plan(plan)
            .await
            .map_err(|e| to_status(&e))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.execute_stream().await.map_err(|e| to_status(&e))?;
        let batches = capped(batches)
            .map_ok(compact::compact_views)
            .inspect(move |batch| {
                if let Ok(batch) = batch {
                    tracked.sent(batch.num_rows() as u64, 0);
                }
            })
            .map_err(|e| FlightError::Tonic(Box::new(to_status(&e))));
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            });
        Ok(Box::pin(flight))
    }

    /// Runs every statement of `sql`; returns rows affected (0 for DDL).
    pub(super) async fn execute_update(&self, who: &Who, sql: &str) -> Result<i64, Status> {
        let tracked = self.admit(who, sql)?;
        let caller = self.engine.caller(&who.user);
        let result = self
            .bounded(caller.scope(self.execute_update_as_caller(sql)))
            .await;
        track::counted(&tracked, &result);
        result
    }

    pub(super) async fn execute_update_as_caller(&self, sql: &str) -> Result<i64, Status> {
        let mut affected = 0;
        for result in self
            .engine
            .sql(&positional_placeholders(sql))
            .await
            .map_err(|e| to_status(&e))?
        {
            affected += match result {
                StatementResult::Done(outcome) => outcome.rows.unwrap_or(0) as i64,
                StatementResult::Rows(df) => {
                    let batches = df.collect().await.map_err(|e| to_status(&e))?;
                    rows_affected(&batches) as i64
                }
            };
        }
        Ok(affected)
    }

    pub(super) fn prepared(&self, handle: &[u8]) -> Result<Prepared, Status> {
        let handle =
            std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("bad handle"))?;
        lock(&self.prepared).get(handle).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "no prepared statement {handle}: it was closed or never created"
            ))
        })
    }

    pub(super) fn bound_plan(prepared: &Prepared) -> Result<LogicalPlan, Status> {
        let plan = prepared
            .plan
            .clone()
            .ok_or_else(|| Status::invalid_argument("a catalog statement takes no parameters"))?;
        match &prepared.params {
            Some(params) => plan
                .with_param_values(params.clone())
                .map_err(|e| to_status(&e)),
            None => Ok(plan),
        }
    }

    /// Keeps a prepared statement under a new handle.
    pub(super) fn prepare(
        &self,
        sql: String,
        plan: Option<LogicalPlan>,
    ) -> ActionCreatePreparedStatementResult {
        let handle = uuid::Uuid::new_v4().simple().to_string();
        let prepared = Prepared {
            sql,
            plan,
            params: None,
        };
        lock(&self.prepared).insert(handle.clone(), prepared);
        ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            ..Default::default()
        }
    }
}

/// A role's `max_result_rows`: the rows up to it go out, then SQLSTATE 54000.
fn capped(
    batches: SendableRecordBatchStream,
) -> Pin<Box<dyn Stream<Item = Result<RecordBatch, DataFusionError>> + Send>> {
    let Some(caller) = Caller::current() else {
        return batches;
    };
    let Some(max) = caller.limits().max_result_rows else {
        return batches;
    };
    let user = caller.name().to_string();
    let exceeded = move || -> DataFusionError {
        RoleLimits::exceeded("max_result_rows", max, &user, "the result").into()
    };
    Box::pin(stream::unfold(
        (Some(batches), 0u64, false),
        move |(batches, seen, over)| {
            let exceeded = exceeded.clone();
            async move {
                if over {
                    return Some((Err(exceeded()), (None, seen, false)));
                }
                let mut batches = batches?;
                let batch = match batches.next().await? {
                    Ok(batch) => batch,
                    Err(e) => return Some((Err(e), (None, seen, false))),
                };
                let rows = batch.num_rows() as u64;
                if seen + rows <= max {
                    return Some((Ok(batch), (Some(batches), seen + rows, false)));
                }
                // The rows that fit; the next poll reports the cap.
                let fits = batch.slice(0, (max - seen) as usize);
                Some((Ok(fits), (None, max, true)))
            }
        },
    ))
}
