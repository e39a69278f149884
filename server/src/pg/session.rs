//! Query handling over pgwire: datafusion-postgres for queries, the catalog for DDL.
//!
//! datafusion-postgres gives us the extended protocol, parameter typing, binary
//! encoders, `SET`/`SHOW`, transactions and cursors. Two things it cannot do are
//! added here: statements that must persist or whose paths must be checked
//! (`CREATE EXTERNAL TABLE`, `CREATE VIEW`, `DROP`, `COPY ... TO`) go through the
//! [`Engine`]'s catalog, and its opaque errors get real SQLSTATEs ([`PgErrors`]).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, Parser, QueryHook};
use futures::{Sink, SinkExt, StreamExt};
use insightflow_catalog::{Caller, Catalog, CatalogOutcome, RoleLimits};
use insightflow_functions::ask::{collect_notes, Notes};
use parking_lot::Mutex;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tracing::{debug, Instrument};

use super::cancel::RunningQueries;
use super::copy::{self, CopyCommand, CopyIns};
use super::results::{statement_timeout, ResultFormat, ResultsHook, STATEMENT_TIMEOUT_MS};
use super::show::PgCompatHook;
use super::temp_tables::TempTables;
use super::track;
use crate::engine::Engine;
use crate::error::{refine_pg_error, to_pg_error};
use crate::monitor::Tracked;
use crate::pg_compat::{rewrite_sql, split_session_statements, SessionStatement};

type PgStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// Marks a session that got the server's defaults.
const DEFAULTS_APPLIED: &str = "insightflow.defaults";

/// The query handlers of one pg connection.
pub(crate) struct PgSession {
    engine: Engine,
    /// This connection's context: `SET` changes it and no other session.
    ctx: Arc<SessionContext>,
    /// This connection's temporary tables (in `ctx`).
    temp: TempTables,
    inner: Arc<DfSessionService>,
    parser: Arc<PgParser>,
    running: Arc<RunningQueries>,
    /// The result formats of the portal being run, for [`ResultsHook`].
    result_format: Arc<ResultFormat>,
    /// For sessions that did not `SET statement_timeout`.
    default_timeout: Option<std::time::Duration>,
    pub(crate) copy_ins: Arc<CopyIns>,
}

impl PgSession {
    pub(crate) fn new(
        engine: Engine,
        running: Arc<RunningQueries>,
        default_timeout: Option<std::time::Duration>,
    ) -> Self {
        let result_format = Arc::new(ResultFormat::default());
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(PgCompatHook),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
            // Last: queries no other hook answered.
            Arc::new(ResultsHook {
                format: result_format.clone(),
            }),
        ];
        let temp = TempTables::default();
        let ctx = temp.session_context(engine.ctx());
        let inner = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
        let parser = Arc::new(PgParser {
            engine: engine.clone(),
            temp: temp.clone(),
            inner: ExtendedQueryHandler::query_parser(inner.as_ref()),
            notices: Mutex::new(HashMap::new()),
        });
        Self {
            engine,
            ctx,
            temp,
            inner,
            parser,
            running,
            result_format,
            default_timeout,
            copy_ins: Arc::default(),
        }
    }

    /// Lets a cancel request or the session's `statement_timeout` stop these responses
    /// while they stream.
    fn watch<C: ClientInfo>(&self, client: &C, responses: &mut [Response]) {
        let (pid, key) = client.pid_and_secret_key();
        let timeout = statement_timeout(client);
        tracing::debug!(pid, "watching query for cancel");
        for response in responses {
            self.running.watch(pid, key.clone(), timeout, response);
        }
    }

    /// Gives a session the server's defaults before its first statement, so that its
    /// own `SET statement_timeout` (0 included) replaces them.
    fn apply_defaults<C: ClientInfo>(&self, client: &mut C) {
        if client.metadata().contains_key(DEFAULTS_APPLIED) {
            return;
        }
        let metadata = client.metadata_mut();
        metadata.insert(DEFAULTS_APPLIED.to_string(), "true".to_string());
        if let Some(timeout) = self.default_timeout {
            metadata.insert(
                STATEMENT_TIMEOUT_MS.to_string(),
                timeout.as_millis().to_string(),
            );
        }
    }

    /// `COPY ... FROM STDIN` starts the copy sub-protocol; `TO STDOUT` streams rows.
    async fn run_copy<C: ClientInfo>(
        &self,
        client: &C,
        copy: datafusion::error::Result<CopyCommand>,
        tracked: &Tracked,
    ) -> PgWireResult<Response> {
        let response = match copy.map_err(|e| to_pg_error(&e))? {
            CopyCommand::FromStdin {
                table,
                columns,
                format,
            } => {
                let pid = client.pid_and_secret_key().0;
                self.copy_ins
                    .start(&self.engine, pid, table, columns, format, tracked.clone())
                    .await
                    .map(Response::CopyIn)
            }
            CopyCommand::ToStdout { query, format } => copy::copy_out(&self.engine, &query, format)
                .await
                .map(Response::CopyOut),
        };
        response.map_err(|e| to_pg_error(&e))
    }

    async fn run_catalog_statement(&self, stmt: DFStatement) -> PgWireResult<Response> {
        let outcome = self
            .engine
            .catalog()
            .execute(&self.ctx, stmt)
            .await
            .map_err(|e| to_pg_error(&e))?;
        Ok(Response::Execution(tag_of(&outcome)))
    }
}

/// A role's `max_result_rows`: the rows up to it go out, then SQLSTATE 54000.
fn capped(caller: &Caller, responses: &mut [Response]) {
    let Some(max) = caller.limits().max_result_rows else {
        return;
    };
    let message =
        RoleLimits::exceeded("max_result_rows", max, caller.name(), "the result").to_string();
    for response in responses {
        match response {
            Response::Query(query) => {
                let rows =
                    std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
                query.data_rows = cap_rows(rows, max, message.clone());
            }
            Response::CopyOut(copy) => {
                let data =
                    std::mem::replace(&mut copy.data_stream, Box::pin(futures::stream::empty()));
                copy.data_stream = cap_rows(data, max, message.clone());
            }
            _ => {}
        }
    }
}

type PgStream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = PgWireResult<T>> + Send>>;

fn cap_rows<T: Send + 'static>(rows: PgStream<T>, max: u64, message: String) -> PgStream<T> {
    Box::pin(futures::stream::unfold(
        (Some(rows), 0u64),
        move |(rows, seen)| {
            let message = message.clone();
            async move {
                let mut rows = rows?;
                match rows.next().await {
                    None => None,
                    Some(Ok(_)) if seen == max => {
                        let error = ErrorInfo::new(
                            "ERROR".into(),
                            crate::error::sqlstate::PROGRAM_LIMIT_EXCEEDED.into(),
                            message,
                        );
                        Some((Err(PgWireError::UserError(Box::new(error))), (None, seen)))
                    }
                    Some(item) => Some((item, (Some(rows), seen + 1))),
                }
            }
        },
    ))
}

/// The span of one statement: its logs carry the query id and the user.
fn query_span(tracked: &Tracked, caller: &Caller) -> tracing::Span {
    tracing::info_span!("query", query_id = tracked.query_id(), user = caller.name())
}

/// Rows a result stream takes in one entry into the caller's scope (the rows of one
/// encoded batch are ready at once; a scope per row cost ~10% of the server CPU of a
/// large fetch).
const ROWS_PER_SCOPE: usize = 256;

/// Result streams run after the handler returned: they are polled as the session's
/// user, so catalog listings built while they run show what that user may see.
fn polled_as(caller: &Caller, responses: &mut [Response]) {
    for response in responses {
        match response {
            Response::Query(query) => {
                let rows =
                    std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
                query.data_rows = Box::pin(caller.clone().scope_ahead(rows, ROWS_PER_SCOPE));
            }
            Response::CopyOut(copy) => {
                let data =
                    std::mem::replace(&mut copy.data_stream, Box::pin(futures::stream::empty()));
                copy.data_stream = Box::pin(caller.clone().scope_stream(data));
            }
            _ => {}
        }
    }
}

/// The user this connection authenticated as.
fn session_user<C: ClientInfo + ?Sized>(client: &C) -> String {
    client
        .metadata()
        .get(pgwire::api::METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

/// Every statement of a connection runs as its user.
fn session_caller<C: ClientInfo + ?Sized>(engine: &Engine, client: &C) -> Caller {
    engine.caller(&session_user(client))
}

fn tag_of(outcome: &CatalogOutcome) -> Tag {
    let tag = Tag::new(outcome.tag);
    match outcome.rows {
        Some(rows) => tag.with_rows(rows),
        None => tag,
    }
}

/// Who runs a statement the extended protocol parses.
enum Route {
    /// DataFusion, this SQL (one statement on temporary tables, rewritten).
    Temporary(String),
    /// The catalog, or the COPY sub-protocol: kept as text until Execute.
    AtExecute,
    /// DataFusion, as the client wrote it.
    DataFusion,
}

/// Parses `sql` once to decide its [`Route`].
fn route(temp: &TempTables, sql: &str) -> Route {
    if copy::parse(sql).is_some() {
        return Route::AtExecute;
    }
    match Engine::parse(sql).as_deref() {
        Ok([stmt]) => match temp.rewrite(stmt) {
            Some(rewritten) => Route::Temporary(rewritten.to_string()),
            None if Catalog::handles(stmt) => Route::AtExecute,
            None => Route::DataFusion,
        },
        _ => Route::DataFusion,
    }
}

/// The one statement of `sql` if the catalog must run it.
fn catalog_statement(sql: &str) -> Option<DFStatement> {
    let mut stmts = Engine::parse(sql).ok()?;
    if stmts.len() == 1 && Catalog::handles(&stmts[0]) {
        stmts.pop()
    } else {
        None
    }
}

#[async_trait]
impl SimpleQueryHandler for PgSession {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.apply_defaults(client);
        let caller = session_caller(&self.engine, client);
        let tracked = track::admit(&self.engine, client, caller.name(), query)?;
        let span = query_span(&tracked, &caller);
        let result = caller
            .clone()
            .scope(self.simple_query(client, query, &tracked))
            .instrument(span)
            .await;
        match result {
            Ok(mut responses) => {
                capped(&caller, &mut responses);
                track::follow(&tracked, &mut responses);
                polled_as(&caller, &mut responses);
                Ok(responses)
            }
            Err(e) => {
                track::failed(&tracked, &e);
                Err(e)
            }
        }
    }
}

impl PgSession {
    async fn simple_query<C>(
        &self,
        client: &mut C,
        query: &str,
        tracked: &Tracked,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(copy) = copy::parse(query) {
            return Ok(vec![self.run_copy(client, copy, tracked).await?]);
        }
        if let Some(pieces) = split_session_statements(query) {
            let mut responses = Vec::new();
            for piece in pieces {
                match piece {
                    SessionStatement::Unlisten => {
                        responses.push(Response::Execution(Tag::new("UNLISTEN")))
                    }
                    SessionStatement::ResetAll => {
                        let metadata = client.metadata_mut();
                        metadata.remove(STATEMENT_TIMEOUT_MS);
                        metadata.remove(DEFAULTS_APPLIED);
                        metadata.remove("search_path");
                        self.apply_defaults(client);
                        // The session's SETs (search_path's schema included) are undone.
                        *self.ctx.state_ref().write().config_mut() =
                            self.engine.ctx().copied_config();
                        responses.push(Response::Execution(Tag::new("RESET")))
                    }
                    SessionStatement::Sql(sql) => {
                        responses.extend(Box::pin(self.simple_query(client, &sql, tracked)).await?)
                    }
                }
            }
            return Ok(responses);
        }
        let stmts = match Engine::parse(query) {
            Ok(stmts) if stmts.iter().any(Catalog::handles) => stmts,
            // Queries (and pg syntax DataFusion's parser does not know) go as they came.
            _ => {
                let (responses, notes) = collect_notes(SimpleQueryHandler::do_query(
                    self.inner.as_ref(),
                    client,
                    &rewrite_sql(query, &[]),
                ))
                .await;
                tracked.noted(&notes);
                send_notices(client, notes).await?;
                let mut responses = responses?;
                self.watch(client, &mut responses);
                return Ok(responses);
            }
        };
        let mut responses = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            // Temporary tables are DataFusion's memory tables, never the catalog's.
            let (stmt, temp) = match self.temp.rewrite(&stmt) {
                Some(rewritten) => (rewritten, true),
                None => (stmt, false),
            };
            let result = if !temp && Catalog::handles(&stmt) {
                debug!(statement = %stmt, "catalog statement");
                self.run_catalog_statement(stmt).await.map(|r| vec![r])
            } else {
                let text = stmt.to_string();
                let (result, notes) = collect_notes(SimpleQueryHandler::do_query(
                    self.inner.as_ref(),
                    client,
                    &rewrite_sql(&text, &[]),
                ))
                .await;
                tracked.noted(&notes);
                send_notices(client, notes).await?;
                result
            };
            match result {
                Ok(r) => responses.extend(r),
                // Like Postgres: what ran before the error is reported, the rest is skipped.
                Err(mut e) if !responses.is_empty() => {
                    refine_pg_error(&mut e);
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.watch(client, &mut responses);
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgSession {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.apply_defaults(client);
        let caller = session_caller(&self.engine, client);
        let sql = &portal.statement.statement.0;
        let tracked = track::admit(&self.engine, client, caller.name(), sql)?;
        let span = query_span(&tracked, &caller);
        let result = caller
            .clone()
            .scope(self.extended_query(client, portal, max_rows, &tracked))
            .instrument(span)
            .await;
        match result {
            Ok(mut response) => {
                let responses = std::slice::from_mut(&mut response);
                capped(&caller, responses);
                track::follow(&tracked, responses);
                polled_as(&caller, responses);
                Ok(response)
            }
            Err(e) => {
                track::failed(&tracked, &e);
                Err(e)
            }
        }
    }
}

impl PgSession {
    async fn extended_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        max_rows: usize,
        tracked: &Tracked,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, plan) = &portal.statement.statement;
        if plan.is_none() {
            if let Some(stmt) = catalog_statement(sql) {
                return self.run_catalog_statement(stmt).await;
            }
            if let Some(copy) = copy::parse(sql) {
                return self.run_copy(client, copy, tracked).await;
            }
        }
        let pending = self.parser.take_notes(client.pid_and_secret_key().0);
        tracked.noted(&pending);
        send_notices(client, pending).await?;
        self.result_format.set(portal.result_column_format.clone());
        let mut response =
            ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await?;
        self.watch(client, std::slice::from_mut(&mut response));
        Ok(response)
    }
}

/// datafusion-postgres's parser, except that catalog statements are kept as text
/// (planned nothing) so `do_query` can hand them to the catalog.
pub(crate) struct PgParser {
    engine: Engine,
    temp: TempTables,
    inner: Arc<Parser>,
    /// Notices raised while planning (the SQL `ask` generated), by connection, until
    /// the portal runs: Parse has no way to send them.
    notices: Mutex<HashMap<i32, Notes>>,
}

impl PgParser {
    fn take_notes(&self, pid: i32) -> Notes {
        self.notices.lock().remove(&pid).unwrap_or_default()
    }
}

/// Which parameters the client gave a type in Parse (0 and `unknown` are no type).
fn typed_params(types: &[Option<Type>]) -> Vec<bool> {
    types
        .iter()
        .map(|t| {
            t.as_ref()
                .is_some_and(|t| t.oid() != 0 && *t != Type::UNKNOWN)
        })
        .collect()
}

/// Sends `notices` to the client as NOTICE messages (psql prints them).
async fn send_notices<C>(client: &mut C, notes: Notes) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for notice in notes.notices {
        let info = ErrorInfo::new("NOTICE".to_string(), "00000".to_string(), notice);
        client
            .send(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    Ok(())
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let temp_sql = match route(&self.temp, sql) {
            Route::AtExecute => return Ok(Some((sql.to_string(), None))),
            Route::Temporary(sql) => Some(sql),
            Route::DataFusion => None,
        };
        let sql = temp_sql.as_deref().unwrap_or(sql);
        let caller = session_caller(&self.engine, client);
        let (parsed, notes) = caller
            .clone()
            .scope(collect_notes(self.inner.parse_sql(
                client,
                &rewrite_sql(sql, &typed_params(types)),
                types,
            )))
            .await;
        if let Err(e) = &parsed {
            // The statement never reaches Execute: record it here.
            let tracked = track::begin(&self.engine, client, caller.name(), sql);
            tracked.noted(&notes);
            track::failed(&tracked, e);
        }
        if notes != Notes::default() {
            let pid = client.pid_and_secret_key().0;
            let mut pending = self.notices.lock();
            let entry = pending.entry(pid).or_default();
            entry.notices.extend(notes.notices);
            entry.asks.extend(notes.asks);
        }
        parsed
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// Gives every error a real SQLSTATE before it is sent.
pub(crate) struct PgErrors;

impl ErrorHandler for PgErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        refine_pg_error(error);
        if let PgWireError::InvalidPassword(_) = error {
            // Postgres' wording, with the user name psql and drivers show.
            let user = client
                .metadata()
                .get(pgwire::api::METADATA_USER)
                .cloned()
                .unwrap_or_default();
            *error = PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
                "FATAL".to_string(),
                crate::error::sqlstate::INVALID_PASSWORD.to_string(),
                format!("password authentication failed for user \"{user}\""),
            )));
        }
        tracing::info!(client = %client.socket_addr(), error = %error, "pg error");
    }
}
