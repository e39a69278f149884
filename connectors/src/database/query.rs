//! A remote *query* read as a table (`OPTIONS ('query' 'SELECT ...')`).
//!
//! The remote database describes the query's columns, and each scan wraps it as a
//! derived table, so filters, projections and limits still go to the remote side:
//!
//! ```sql
//! SELECT "remote_query"."id" FROM (SELECT ... the user's query ...) AS "remote_query"
//!   WHERE ("remote_query"."status" = 'open') LIMIT 3
//! ```
//!
//! datafusion-table-providers writes that SQL for a table name; we give it a fixed
//! name and put the query in its place. Columns are described without running the
//! query: PostgreSQL through a temporary view, MySQL through an empty temporary table,
//! both dropped at once and private to the probing connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::unparser::dialect::{MySqlDialect, PostgreSqlDialect};
use datafusion_table_providers::sql::db_connection_pool::dbconnection::mysqlconn::MySQLConnection;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::AsyncDbConnection;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers::sql::sql_provider_datafusion::{SqlExec, SqlTable};

/// The name the query goes by inside the SQL sent to the remote database.
const ALIAS: &str = "remote_query";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The user's query without the trailing `;` a pasted statement often has.
pub(super) fn clean(query: &str) -> Result<String> {
    let query = query.trim().trim_end_matches(';').trim_end();
    if query.is_empty() {
        return Err(DataFusionError::Plan(
            "OPTIONS ('query' ...) is empty: give the SELECT to run on the remote database".into(),
        ));
    }
    Ok(query.to_string())
}

/// A name no other probe on the same connection uses.
fn probe_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "insightflow_probe_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL query as a table.
pub(super) async fn postgres(
    pool: Arc<PostgresConnectionPool>,
    query: &str,
) -> std::result::Result<Arc<dyn TableProvider>, BoxError> {
    let mut conn = pool.connect().await?;
    let Some(pg) = conn.as_any_mut().downcast_mut::<PostgresConnection>() else {
        return Err("the Postgres pool gave a connection of another kind".into());
    };
    let pg: &PostgresConnection = pg;
    let view = probe_name();
    pg.conn
        .batch_execute(&format!("CREATE TEMP VIEW {view} AS {query}"))
        .await
        .map_err(postgres_error)?;
    let described = async {
        let temp_schema: String = pg
            .conn
            .query_one(
                "SELECT nspname::text FROM pg_namespace WHERE oid = pg_my_temp_schema()",
                &[],
            )
            .await
            .map_err(postgres_error)?
            .get(0);
        let view = TableReference::partial(temp_schema, view.as_str());
        Ok::<SchemaRef, BoxError>(pg.get_schema(&view).await?)
    }
    .await;
    pg.conn
        .batch_execute(&format!("DROP VIEW IF EXISTS {view}"))
        .await
        .map_err(postgres_error)?;
    let schema = described?;
    let table = SqlTable::new_with_schema("postgres", &(pool as _), schema, ALIAS)
        .with_dialect(Arc::new(PostgreSqlDialect {}));
    Ok(Arc::new(RemoteQuery {
        table,
        query: query.to_string(),
        quoted_alias: format!("\"{ALIAS}\""),
    }))
}

/// The server's own message ("relation ... does not exist"), not tokio-postgres' "db error".
fn postgres_error(e: tokio_postgres::Error) -> BoxError {
    match e.as_db_error() {
        Some(db) => db.to_string().into(),
        None => e.into(),
    }
}

/// A MySQL (or MariaDB) query as a table.
pub(super) async fn mysql(
    pool: Arc<MySQLConnectionPool>,
    query: &str,
) -> std::result::Result<Arc<dyn TableProvider>, BoxError> {
    let mut conn = pool.connect().await?;
    let Some(conn) = conn.as_any_mut().downcast_mut::<MySQLConnection>() else {
        return Err("the MySQL pool gave a connection of another kind".into());
    };
    let conn: &MySQLConnection = conn;
    let table = probe_name();
    conn.execute(
        &format!("CREATE TEMPORARY TABLE {table} AS SELECT * FROM ({query}) AS q LIMIT 0"),
        &[],
    )
    .await?;
    let described = conn.get_schema(&TableReference::bare(table.as_str())).await;
    conn.execute(&format!("DROP TEMPORARY TABLE IF EXISTS {table}"), &[])
        .await?;
    let table = SqlTable::new_with_schema("mysql", &(pool as _), described?, ALIAS)
        .with_dialect(Arc::new(MySqlDialect {}));
    Ok(Arc::new(RemoteQuery {
        table,
        query: query.to_string(),
        quoted_alias: format!("`{ALIAS}`"),
    }))
}

/// The query, with a [`SqlTable`] of the same columns writing the SQL around it.
struct RemoteQuery<T: 'static, P: 'static> {
    table: SqlTable<T, P>,
    query: String,
    /// [`ALIAS`] as the dialect quotes it.
    quoted_alias: String,
}

impl<T, P> std::fmt::Debug for RemoteQuery<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteQuery")
            .field("database", &self.table.name())
            .field("query", &self.query)
            .finish()
    }
}

#[async_trait]
impl<T: 'static, P: 'static> TableProvider for RemoteQuery<T, P> {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.table.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let around = self.table.scan_to_sql(projection, filters, limit)?;
        let sql = around_query(&around, &self.quoted_alias, &self.query)?;
        Ok(Arc::new(SqlExec::new(
            projection,
            &self.schema(),
            self.table.clone_pool(),
            sql,
            self.table.dialect_arc(),
        )?))
    }
}

/// `SELECT ... FROM <alias> WHERE ...` → `SELECT ... FROM (<query>) AS <alias> WHERE ...`.
fn around_query(sql: &str, quoted_alias: &str, query: &str) -> Result<String> {
    let from = format!(" FROM {quoted_alias}");
    if !sql.contains(&from) {
        return Err(DataFusionError::Internal(format!(
            "the SQL written for a remote query has no '{from}': {sql}"
        )));
    }
    Ok(sql.replacen(&from, &format!(" FROM ({query}) AS {quoted_alias}"), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_takes_the_place_of_the_alias_once() {
        let sql = r#"SELECT "remote_query"."id" FROM "remote_query" WHERE ("remote_query"."note" = ' FROM "remote_query"') LIMIT 3"#;
        let query = "SELECT id, note FROM orders WHERE amount > 10";
        assert_eq!(
            around_query(sql, "\"remote_query\"", query).unwrap(),
            r#"SELECT "remote_query"."id" FROM (SELECT id, note FROM orders WHERE amount > 10) AS "remote_query" WHERE ("remote_query"."note" = ' FROM "remote_query"') LIMIT 3"#
        );
        assert!(around_query("SELECT 1", "`remote_query`", query).is_err());
    }

    #[test]
    fn a_pasted_statement_loses_its_semicolon_and_an_empty_one_is_refused() {
        assert_eq!(clean("  SELECT 1 ;\n").unwrap(), "SELECT 1");
        assert!(clean(" ; ").is_err());
    }
}
