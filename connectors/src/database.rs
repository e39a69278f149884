//! `STORED AS POSTGRES` and `STORED AS MYSQL`: a table of another database, read in
//! place through datafusion-table-providers, which pushes filters, projections and
//! limits into the SQL it sends and keeps a pool of connections.
//!
//! ```sql
//! CREATE EXTERNAL TABLE orders STORED AS POSTGRES
//!   LOCATION 'postgres://app:secret@db.internal:5432/shop'   -- or 'host=... dbname=...'
//!   OPTIONS ('table' 'public.orders');
//! CREATE EXTERNAL TABLE users STORED AS MYSQL
//!   LOCATION 'mysql://app:secret@db.internal:3306/shop'
//!   OPTIONS ('table' 'users', 'sslmode' 'disabled');
//! CREATE EXTERNAL TABLE big_orders STORED AS POSTGRES LOCATION '...'
//!   OPTIONS ('query' 'SELECT o.id, c.name FROM orders o JOIN customers c ON ...');
//! ```
//!
//! The schema comes from the remote table, or from the remote query (see [`query`]).
//! `table` defaults to the new table's own name; other OPTIONS (`sslmode`, `sslrootcert`, `connection_pool_size`, ...) go to
//! the pool. TLS is used when the server offers it (`prefer`/`preferred`) unless
//! `sslmode` says otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Constraints, Statistics, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::CreateExternalTable;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_table_providers::mysql::MySQLTableFactory;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::util::secrets::to_secret_map;
use insightflow_catalog::Error;

mod query;

/// Which database a factory reaches.
#[derive(Debug, Clone, Copy)]
pub enum Database {
    Postgres,
    MySql,
}

impl Database {
    /// The `STORED AS` name.
    pub fn name(self) -> &'static str {
        match self {
            Database::Postgres => "POSTGRES",
            Database::MySql => "MYSQL",
        }
    }
}

#[derive(Debug)]
pub struct DatabaseTableFactory(pub Database);

#[async_trait]
impl TableProviderFactory for DatabaseTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let kind = self.0;
        let location = match cmd.locations.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "STORED AS {} needs one LOCATION: the connection string",
                    kind.name()
                )))
            }
        };
        let mut options: HashMap<String, String> = cmd
            .options
            .iter()
            .map(|(k, v)| (k.trim_start_matches("format.").to_string(), v.clone()))
            .collect();
        let source = match (options.remove("table"), options.remove("query")) {
            (Some(_), Some(_)) => {
                return Err(DataFusionError::Plan(
                    "give OPTIONS 'table' or 'query', not both".into(),
                ))
            }
            (None, Some(q)) => Source::Query(query::clean(&q)?),
            (table, None) => Source::Table(TableReference::from(
                table.unwrap_or_else(|| cmd.name.table().to_string()),
            )),
        };
        // The pool's errors name the host, not the password.
        let failed = |what: &str, e: &dyn std::fmt::Display| -> DataFusionError {
            Error::Connection {
                message: format!("{} table {}: {what}: {e}", kind.name(), cmd.name),
            }
            .into()
        };
        let unreadable = |e: &dyn std::fmt::Display| -> DataFusionError {
            let text = e.to_string();
            let lower = text.to_lowercase();
            if lower.contains("does not exist")
                || lower.contains("doesn't exist")
                || lower.contains("not found")
            {
                Error::TableNotFound {
                    name: format!("{source} (in the {} database)", kind.name().to_lowercase()),
                }
                .into()
            } else {
                DataFusionError::Execution(format!(
                    "{} table {}: cannot read {source}: {text}",
                    kind.name(),
                    cmd.name
                ))
            }
        };
        let provider = match kind {
            Database::Postgres => {
                let mut params = postgres_params(&location)?;
                params
                    .entry("sslmode".into())
                    .or_insert_with(|| "prefer".into());
                params.extend(options);
                let pool = PostgresConnectionPool::new(to_secret_map(params))
                    .await
                    .map_err(|e| failed("cannot connect", &e))?;
                match &source {
                    Source::Table(table) => {
                        PostgresTableFactory::new(Arc::new(pool))
                            .table_provider(table.clone())
                            .await
                    }
                    Source::Query(sql) => query::postgres(Arc::new(pool), sql).await,
                }
                .map_err(|e| unreadable(&e))?
            }
            Database::MySql => {
                let mut params = HashMap::from([("connection_string".to_string(), location)]);
                params.insert("sslmode".into(), "preferred".into());
                params.extend(options);
                let pool = MySQLConnectionPool::new(to_secret_map(params))
                    .await
                    .map_err(|e| failed("cannot connect", &e))?;
                match &source {
                    Source::Table(table) => {
                        MySQLTableFactory::new(Arc::new(pool))
                            .table_provider(table.clone())
                            .await
                    }
                    Source::Query(sql) => query::mysql(Arc::new(pool), sql).await,
                }
                .map_err(|e| unreadable(&e))?
            }
        };
        Ok(Arc::new(Remote(provider)))
    }
}

/// What a remote table reads: a table of the remote database, or a query run there.
enum Source {
    Table(TableReference),
    Query(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Table(table) => write!(f, "{table}"),
            Source::Query(sql) => write!(f, "the query '{sql}'"),
        }
    }
}

/// The remote table, except that a scan needing no column (`count(*)`) fetches the
/// first one and drops it: datafusion-table-providers 0.15 answers an empty projection
/// with every column, which DataFusion rejects.
#[derive(Debug)]
struct Remote(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for Remote {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match projection {
            Some(columns) if columns.is_empty() => {
                let first = self.0.scan(state, Some(&vec![0]), filters, limit).await?;
                let none: Vec<ProjectionExpr> = Vec::new();
                Ok(Arc::new(ProjectionExec::try_new(none, first)?))
            }
            _ => self.0.scan(state, projection, filters, limit).await,
        }
    }
}

/// The pool's parameters from a libpq connection string or URL.
fn postgres_params(location: &str) -> Result<HashMap<String, String>> {
    let config: tokio_postgres::Config = location.parse().map_err(|e| {
        DataFusionError::Plan(format!(
            "LOCATION is not a Postgres connection string ('postgres://user:password@host:5432/db' or 'host=... dbname=...'): {e}"
        ))
    })?;
    let mut params = HashMap::new();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        params.insert("host".to_string(), host.clone());
    }
    if let Some(port) = config.get_ports().first() {
        params.insert("port".to_string(), port.to_string());
    }
    if let Some(user) = config.get_user() {
        params.insert("user".to_string(), user.to_string());
    }
    if let Some(db) = config.get_dbname() {
        params.insert("db".to_string(), db.to_string());
    }
    if let Some(password) = config.get_password() {
        params.insert(
            "pass".to_string(),
            String::from_utf8_lossy(password).into_owned(),
        );
    }
    let sslmode = match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => "disable",
        tokio_postgres::config::SslMode::Require => "require",
        _ => "prefer",
    };
    params.insert("sslmode".to_string(), sslmode.to_string());
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::postgres_params;

    #[test]
    fn urls_and_keyword_strings_give_the_same_parameters() {
        let url = postgres_params("postgres://app:pw@db:6543/shop?sslmode=disable").unwrap();
        let words =
            postgres_params("host=db port=6543 user=app password=pw dbname=shop sslmode=disable")
                .unwrap();
        assert_eq!(url, words);
        assert_eq!(url["pass"], "pw");
        assert_eq!(url["db"], "shop");
        assert!(postgres_params("not a connection string at all =").is_err());
    }
}
