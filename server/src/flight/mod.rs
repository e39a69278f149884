//! The Arrow Flight SQL front end.
//!
//! Handshake with HTTP basic auth answers with a bearer token that every later call
//! must carry. Queries are planned through the shared [`Engine`], so Flight clients see
//! exactly what pg clients see. Each `FlightInfo` has exactly one endpoint whose ticket
//! holds what `DoGet` needs to run the statement (Grafana's Flight SQL source relies on
//! one endpoint).

mod cancel;
mod compact;
mod ingest;
mod metadata;
mod statements;
mod track;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use futures::{stream, Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::{Engine, StatementResult};
use crate::error::to_status;
use datafusion::execution::SendableRecordBatchStream;
use insightflow_catalog::access::{check_plan, current_caller};
use insightflow_catalog::Caller;
use insightflow_catalog::{rows_affected, RoleLimits};
use insightflow_functions::ask::collect_notes;
use tokio::time::{Duration, Instant};
use tracing::Instrument;

use crate::monitor::{Tracked, Who};
use cancel::RunningTickets;
pub use statements::positional_placeholders;
use statements::{
    handle_sql, is_catalog_statement, parameter_schema, params_is_empty, read_parameters,
    statement_handle,
};
use track::Tokens;

type DoGetStream = <FlightSqlServer as FlightService>::DoGetStream;

/// A prepared statement: its SQL, plan and the parameters last bound to it. A catalog
/// statement (`CREATE`, `DROP`, ...) has no plan: it runs when executed (ADBC prepares
/// every statement its DB-API `execute` gets).
#[derive(Debug, Clone)]
struct Prepared {
    sql: String,
    plan: Option<LogicalPlan>,
    params: Option<ParamValues>,
}

/// The Flight SQL service; cheap to clone.
#[derive(Clone)]
pub struct FlightSqlServer {
    engine: Engine,
    tokens: Tokens,
    prepared: Arc<Mutex<HashMap<String, Prepared>>>,
    /// How long a statement may run, planning included; `None`: no limit.
    statement_timeout: Option<Duration>,
    /// The DoGet streams running now, for CancelFlightInfo.
    running: RunningTickets,
}

impl FlightSqlServer {
    pub fn new(engine: Engine, statement_timeout: Option<Duration>) -> Self {
        Self {
            engine,
            tokens: Tokens::default(),
            prepared: Arc::default(),
            statement_timeout,
            running: RunningTickets::default(),
        }
    }

    /// The user behind a request's bearer token.
    fn authenticate<T>(&self, req: &Request<T>) -> Result<String, Status> {
        Ok(self.who(req)?.user)
    }

    /// Who sent a request: the session and user behind its bearer token.
    fn who<T>(&self, req: &Request<T>) -> Result<Who, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no authorization header: call Handshake with basic auth first",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("expected 'authorization: Bearer <token>'"))?;
        self.tokens
            .who(token)
            .ok_or_else(|| Status::unauthenticated("unknown or expired token: handshake again"))
    }

    /// Starts the record of a statement (refused at the rate limit).
    fn admit(&self, who: &Who, sql: &str) -> Result<Tracked, Status> {
        track::admit(self.engine.monitor(), who, sql)
    }

    /// When a statement started now must end.
    fn deadline(&self) -> Option<Instant> {
        self.statement_timeout.map(|t| Instant::now() + t)
    }

    /// Runs `work`, bounded by the statement timeout.
    async fn bounded<T>(
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

    fn check_basic(&self, header: &str) -> Result<String, Status> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
            Status::unauthenticated("expected 'authorization: Basic <base64(user:password)>'")
        })?;
        // Go's gRPC clients (ADBC) send unpadded base64.
        let decoded = STANDARD_NO_PAD
            .decode(encoded.trim().trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        self.engine
            .catalog()
            .store()
            .check_password(user, password)
            .map(|u| u.name)
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "password authentication failed for user \"{user}\""
                ))
            })
    }

    /// The caller behind a request's bearer token: every statement runs as them.
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        Ok(self.engine.caller(&self.authenticate(req)?))
    }

    /// Plans `sql` as `caller`; what `ask` did goes into `tracked`.
    async fn plan(
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

    async fn plan_as_caller(&self, sql: &str) -> Result<LogicalPlan, Status> {
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
    async fn stream_plan(
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

    async fn stream_plan_as_caller(
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
    async fn execute_update(&self, who: &Who, sql: &str) -> Result<i64, Status> {
        let tracked = self.admit(who, sql)?;
        let caller = self.engine.caller(&who.user);
        let result = self
            .bounded(caller.scope(self.execute_update_as_caller(sql)))
            .await;
        track::counted(&tracked, &result);
        result
    }

    async fn execute_update_as_caller(&self, sql: &str) -> Result<i64, Status> {
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

    fn prepared(&self, handle: &[u8]) -> Result<Prepared, Status> {
        let handle =
            std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("bad handle"))?;
        lock(&self.prepared).get(handle).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "no prepared statement {handle}: it was closed or never created"
            ))
        })
    }

    fn bound_plan(prepared: &Prepared) -> Result<LogicalPlan, Status> {
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
    fn prepare(
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The action type Flight defines for cancelling a FlightInfo's queries.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

fn info_for(
    message: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(message.as_any().encode_to_vec());
    FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))
        .map(|info| {
            info.with_endpoint(FlightEndpoint::new().with_ticket(ticket))
                .with_descriptor(descriptor)
        })
}

impl FlightSqlServer {
    /// A metadata command's FlightInfo: one endpoint whose ticket is the command.
    fn metadata_info(
        &self,
        query: impl ProstMessageExt,
        schema: &Schema,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(&request)?;
        Ok(Response::new(info_for(
            query,
            schema,
            request.into_inner(),
        )?))
    }

    /// A metadata command's rows, for an authenticated caller.
    fn metadata_rows(
        &self,
        request: &Request<Ticket>,
        rows: Result<RecordBatch, Status>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request)?;
        Ok(batch_stream(rows?))
    }
}

fn batch_stream(batch: RecordBatch) -> Response<DoGetStream> {
    let schema = batch.schema();
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async { Ok(batch) }))
        .map_err(|e| Status::internal(e.to_string()));
    Response::new(Box::pin(flight))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("handshake needs 'authorization: Basic ...'"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let user = self.check_basic(header)?;
        let client = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let token = self.tokens.issue(self.engine.monitor(), user, client);
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(stream::iter(vec![Ok(reply)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        // Recorded only if it fails here; a query that plans is recorded at DoGet.
        let tracked = self.admit(&who, &query.query)?;
        let plan = self.plan(&caller, &query.query, &tracked).await;
        let plan = match plan {
            Ok(plan) => {
                tracked.discard();
                plan
            }
            Err(status) => return Err(status),
        };
        let schema = plan.schema().as_arrow().clone();
        let ticket = TicketStatementQuery {
            statement_handle: statement_handle(&query.query),
        };
        Ok(Response::new(info_for(
            ticket,
            &schema,
            request.into_inner(),
        )?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        let sql = handle_sql(&ticket.statement_handle)?;
        let deadline = self.deadline();
        let tracked = self.engine.monitor().begin(who, &sql);
        let plan = self.plan(&caller, &sql, &tracked).await?;
        let ticket = request.into_inner().ticket;
        self.stream_plan(&caller, plan, tracked, deadline, ticket)
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        if is_catalog_statement(&query.query) {
            return Ok(self.prepare(query.query, None));
        }
        let tracked = self.admit(&who, &query.query)?;
        let plan = self.plan(&caller, &query.query, &tracked).await?;
        tracked.discard();
        let dataset_schema = schema_bytes(plan.schema().as_arrow())?;
        let params = parameter_schema(&plan).map_err(|e| to_status(&e))?;
        let parameter_schema = if params.fields().is_empty() {
            Default::default()
        } else {
            schema_bytes(&params)?
        };
        let mut result = self.prepare(query.query, Some(plan));
        result.dataset_schema = dataset_schema;
        result.parameter_schema = parameter_schema;
        Ok(result)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authenticate(&request)?;
        let handle = query.prepared_statement_handle.clone();
        self.prepared(&handle)?;
        let params = read_parameters(request.into_inner()).await?;
        let key = String::from_utf8_lossy(&handle).to_string();
        if let Some(p) = lock(&self.prepared).get_mut(&key) {
            p.params = Some(params);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = self.who(&request)?;
        let prepared = self.prepared(&cmd.prepared_statement_handle)?;
        let schema = match &prepared.plan {
            Some(plan) => plan.schema().as_arrow().clone(),
            None => {
                // Executing a catalog statement: it runs now; its result has no rows.
                self.execute_update(&who, &prepared.sql).await?;
                Schema::empty()
            }
        };
        Ok(Response::new(info_for(cmd, &schema, request.into_inner())?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        let prepared = self.prepared(&query.prepared_statement_handle)?;
        if prepared.plan.is_none() {
            // A catalog statement ran at GetFlightInfo.
            return Ok(batch_stream(RecordBatch::new_empty(Arc::new(
                Schema::empty(),
            ))));
        }
        let tracked = self.admit(&who, &prepared.sql)?;
        let plan = Self::bound_plan(&prepared).inspect_err(|s| track::failed(&tracked, s))?;
        let deadline = self.deadline();
        let ticket = request.into_inner().ticket;
        self.stream_plan(&caller, plan, tracked, deadline, ticket)
            .await
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        let mut prepared = self.prepared(&query.prepared_statement_handle)?;
        let params = read_parameters(request.into_inner()).await?;
        if params_is_empty(&params) {
            return self.execute_update(&who, &prepared.sql).await;
        }
        let tracked = self.admit(&who, &prepared.sql)?;
        prepared.params = Some(params);
        let run = async {
            let plan = Self::bound_plan(&prepared)?;
            let df = self
                .engine
                .ctx()
                .execute_logical_plan(plan)
                .await
                .map_err(|e| to_status(&e))?;
            let batches = df.collect().await.map_err(|e| to_status(&e))?;
            Ok(rows_affected(&batches) as i64)
        };
        let result = self.bounded(caller.scope(run)).await;
        track::counted(&tracked, &result);
        result
    }

    /// `CancelQuery` (Flight SQL's own, older than `CancelFlightInfo`).
    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        self.authenticate(&request)?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("CancelQuery: not a FlightInfo: {e}")))?;
        Ok(ActionCancelQueryResult {
            result: self.running.cancel(&info) as i32,
        })
    }

    /// `CancelFlightInfo`, the action Flight itself defines for cancelling.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.authenticate(&request)?;
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!(
                "unknown action {:?}: this server knows the Flight SQL actions and {CANCEL_FLIGHT_INFO}",
                action.r#type
            )));
        }
        let info = CancelFlightInfoRequest::decode(action.body)
            .map_err(|e| Status::invalid_argument(format!("{CANCEL_FLIGHT_INFO}: {e}")))?
            .info
            .ok_or_else(|| Status::invalid_argument("CancelFlightInfo without a FlightInfo"))?;
        let result = CancelFlightInfoResult::new(self.running.cancel(&info));
        let body = arrow_flight::Result::new(result.encode_to_vec());
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.to_string(),
            description: "Cancels the running queries of a FlightInfo\n
                Request Message: CancelFlightInfoRequest\n
                Response Message: CancelFlightInfoResult"
                .to_string(),
        })])
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.authenticate(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        lock(&self.prepared).remove(&handle);
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let who = self.who(&request)?;
        self.execute_update(&who, &query.query).await
    }

    /// ADBC `adbc_ingest`: create, append, replace or create-append a managed table
    /// from the streamed batches; all rows commit together.
    async fn do_put_statement_ingest(
        &self,
        ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let who = self.who(&request)?;
        let caller = self.engine.caller(&who.user);
        let what = format!(
            "-- Flight bulk ingest into {}{}",
            ticket
                .schema
                .as_deref()
                .map(|s| format!("{s}."))
                .unwrap_or_default(),
            ticket.table
        );
        let tracked = self.admit(&who, &what)?;
        let result = caller.scope(self.ingest(ticket, request)).await;
        track::counted(&tracked, &result);
        result
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(&request, metadata::catalogs(self.engine.ctx(), query))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(&request, metadata::schemas(self.engine.ctx(), query))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let tables = metadata::tables(self.engine.ctx(), &caller, query);
        Ok(batch_stream(caller.clone().scope(tables).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(&request, metadata::table_types(query))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let rows = query
            .into_builder(&metadata::SQL_INFO)
            .build()
            .map_err(|e| Status::internal(e.to_string()));
        self.metadata_rows(&request, rows)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::primary_keys_schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(
            &request,
            Ok(metadata::no_rows(metadata::primary_keys_schema())),
        )
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(
            &request,
            Ok(metadata::no_rows(metadata::foreign_keys_schema())),
        )
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(
            &request,
            Ok(metadata::no_rows(metadata::foreign_keys_schema())),
        )
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_rows(
            &request,
            Ok(metadata::no_rows(metadata::foreign_keys_schema())),
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&metadata::XDBC_TYPES).schema();
        self.metadata_info(query, &schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let rows = query
            .into_builder(&metadata::XDBC_TYPES)
            .build()
            .map_err(|e| Status::internal(e.to_string()));
        self.metadata_rows(&request, rows)
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(format!(
            "DoGet for {} is not supported",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
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
