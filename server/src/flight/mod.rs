//! The Arrow Flight SQL front end.
//!
//! Handshake with HTTP basic auth answers with a bearer token that every later call
//! must carry. Queries are planned through the shared [`Engine`], so Flight clients see
//! exactly what pg clients see. Each `FlightInfo` has exactly one endpoint whose ticket
//! holds what `DoGet` needs to run the statement (Grafana's Flight SQL source relies on
//! one endpoint).

mod auth;
mod cancel;
mod compact;
mod execute;
mod ingest;
mod metadata;
mod statements;
mod track;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow_flight::encode::FlightDataEncoderBuilder;
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
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use futures::{stream, Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::Engine;
use crate::error::to_status;
use insightflow_catalog::rows_affected;
use tokio::time::Duration;

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
