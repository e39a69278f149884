//! Statements datafusion-postgres answers differently from Postgres 16:
//! `SHOW server_version[_num]` (it reports its own name, which drivers cannot parse) and
//! `SAVEPOINT` / `RELEASE` / `ROLLBACK TO` (it refuses them; psycopg and pgjdbc send them
//! inside transactions). Reads need no savepoints, so they are accepted as no-ops.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};

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

#[async_trait]
impl QueryHook for PgCompatHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(tag) = savepoint_tag(statement) {
            return Some(Ok(Response::Execution(Tag::new(tag))));
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
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        savepoint_tag(statement).map(|tag| Ok(Response::Execution(Tag::new(tag))))
    }
}
