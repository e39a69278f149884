//! Statements datafusion-postgres answers differently from Postgres 16:
//! `SHOW server_version[_num]` (it reports its own name, which drivers cannot parse) and
//! `SAVEPOINT` / `RELEASE` / `ROLLBACK TO` (it refuses them; psycopg and pgjdbc send them
//! inside transactions). Reads need no savepoints, so they are accepted as no-ops.
//! `DEALLOCATE ALL` (psycopg sends it after DDL) and `DEALLOCATE <name>` of a statement
//! prepared over the protocol are Postgres' (DataFusion knows only SQL `PREPARE`s).
//! `SET search_path` picks the schema that unqualified names resolve in, for this
//! session only, and is reported back (`SHOW`, ParameterStatus) as the client wrote it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use insightflow_catalog::DEFAULT_SCHEMA;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;

use crate::pg_compat::SERVER_VERSION;

pub(crate) struct PgCompatHook;

fn savepoint_tag(statement: &Statement) -> Option<&'static str> {
    match statement {
        Statement::Savepoint { .. } => Some("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Some("RELEASE"),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some("ROLLBACK"),
        _ => None,
    }
}

/// The schemas of `SET search_path TO a, b` (or `= 'a, b'`), in order.
fn search_path(statement: &Statement) -> Option<Vec<String>> {
    let Statement::Set(Set::SingleAssignment {
        variable, values, ..
    }) = statement
    else {
        return None;
    };
    if !variable.to_string().eq_ignore_ascii_case("search_path") {
        return None;
    }
    let names = values
        .iter()
        .flat_map(|value| {
            match value {
                Expr::Value(v) => v.clone().into_string().unwrap_or_default(),
                Expr::Identifier(ident) => ident.value.clone(),
                other => other.to_string(),
            }
            .split(',')
            .map(|name| name.trim().trim_matches('"').to_string())
            .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    Some(names)
}

/// Unqualified names of this session resolve in the first schema of `path` that exists
/// (Postgres searches them all; DataFusion has one default schema). `pg_catalog` and
/// `"$user"` are skipped, and with none left the schema is `public`.
async fn set_search_path(
    ctx: &SessionContext,
    client: &mut dyn HookClient,
    path: &[String],
) -> PgWireResult<Response> {
    use_search_path(ctx, path);
    let value = path.join(", ");
    client
        .metadata_mut()
        .insert("search_path".to_string(), value.clone());
    client
        .send_message(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            "search_path".to_string(),
            value,
        )))
        .await?;
    Ok(Response::Execution(Tag::new("SET")))
}

fn use_search_path(ctx: &SessionContext, path: &[String]) {
    let state = ctx.state();
    let catalog_name = &state.config_options().catalog.default_catalog;
    let exists = |schema: &str| {
        ctx.catalog(catalog_name)
            .is_some_and(|catalog| catalog.schema(schema).is_some())
    };
    let schema = path
        .iter()
        .find(|name| !matches!(name.as_str(), "pg_catalog" | "$user") && exists(name))
        .map(String::as_str)
        .unwrap_or(DEFAULT_SCHEMA)
        .to_string();
    tracing::debug!(%schema, "search_path");
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .default_schema = schema;
}

fn server_setting(statement: &Statement) -> Option<(&'static str, String)> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let [name] = variable.as_slice() else {
        return None;
    };
    match name.value.to_lowercase().as_str() {
        "server_version" => Some(("server_version", SERVER_VERSION.to_string())),
        "server_version_num" => {
            let mut parts = SERVER_VERSION.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next().unwrap_or("0").parse().ok()?;
            Some(("server_version_num", (major * 10000 + minor).to_string()))
        }
        _ => None,
    }
}

/// Answers `DEALLOCATE ALL` and `DEALLOCATE` of a protocol-level statement; other
/// names are DataFusion's SQL `PREPARE`s and go on to it.
fn deallocate(statement: &Statement, client: &dyn HookClient) -> Option<Response> {
    let Statement::Deallocate { name, .. } = statement else {
        return None;
    };
    if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
        // Statements the client prepared stay until it parses the names again (a
        // Parse replaces them) or closes them.
        return Some(Response::Execution(Tag::new("DEALLOCATE ALL")));
    }
    let store = client.portal_store();
    store.get_statement(&name.value)?;
    store.rm_statement(&name.value);
    Some(Response::Execution(Tag::new("DEALLOCATE")))
}

#[async_trait]
impl QueryHook for PgCompatHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(path) = search_path(statement) {
            return Some(set_search_path(ctx, client, &path).await);
        }
        if let Some(tag) = savepoint_tag(statement) {
            return Some(Ok(Response::Execution(Tag::new(tag))));
        }
        if let Some(done) = deallocate(statement, client) {
            return Some(Ok(done));
        }
        let (name, value) = server_setting(statement)?;
        let fields = Arc::new(vec![FieldInfo::new(
            name.to_string(),
            None,
            None,
            Type::TEXT,
            FieldFormat::Text,
        )]);
        let mut encoder = DataRowEncoder::new(fields.clone());
        if let Err(e) = encoder.encode_field(&Some(value)) {
            return Some(Err(e));
        }
        let row = encoder.take_row();
        let rows = futures::stream::once(async move { Ok(row) });
        Some(Ok(Response::Query(QueryResponse::new(
            fields,
            Box::pin(rows),
        ))))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if savepoint_tag(statement).is_some() {
            return Some(
                ctx.state()
                    .create_logical_plan("SELECT 1 WHERE false")
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e))),
            );
        }
        let (name, value) = server_setting(statement)?;
        let sql = format!("SELECT '{value}' AS {name}");
        Some(
            ctx.state()
                .create_logical_plan(&sql)
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
        )
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(path) = search_path(statement) {
            return Some(set_search_path(ctx, client, &path).await);
        }
        if let Some(done) = deallocate(statement, client) {
            return Some(Ok(done));
        }
        savepoint_tag(statement).map(|tag| Ok(Response::Execution(Tag::new(tag))))
    }
}
