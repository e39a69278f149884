//! The one session-context factory, and the statement runner every front end shares.
//!
//! The pg front end, the Flight SQL front end, `insightflow sql` and the tests all get
//! their `SessionContext` from [`Engine::open`], so they see the same catalog, the same
//! functions and the same SQL. Statements that change the catalog go through
//! [`insightflow_catalog::Catalog`] so that they persist; everything else goes straight
//! to DataFusion.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::collect;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, SessionConfig};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use insightflow_catalog::access::{
    carry_caller_into_spawned_tasks, current_caller, normalize_user_statements, CheckAccess,
    Privilege, VisibleCatalog,
};
use insightflow_catalog::{AllowedRoots, Caller, Catalog, CatalogOutcome, CatalogStore};
use insightflow_catalog::{DEFAULT_CATALOG, DEFAULT_SCHEMA};
use insightflow_functions::ask::{Asker, LlmConfig, LlmGenerator, OfflineTranslator, SqlGenerator};

use crate::monitor::{register_system_tables, AuditOptions, Monitor, MonitorOptions};
use crate::pg_compat;

/// How long a listing of a table's files (local directory or object-store prefix) is
/// reused before the files are listed again.
pub const LISTING_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the engine keeps its data and what it may read.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// Roots for local files; empty means `<data_dir>/files`.
    pub allow_paths: Vec<PathBuf>,
    /// `datafusion.*` settings passed to `ConfigOptions::set`.
    pub datafusion: HashMap<String, String>,
    /// The model behind `ask`; `None`: the offline translator.
    pub llm: Option<LlmConfig>,
    /// Bytes all running queries may hold in memory together; sorts, joins and
    /// aggregates spill to disk beyond their share. `None`: no limit.
    pub memory_limit: Option<usize>,
    /// Statements per second each user may start; 0: no limit.
    pub rate_limit: u32,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            allow_paths: Vec::new(),
            datafusion: HashMap::new(),
            llm: None,
            memory_limit: None,
            rate_limit: 0,
        }
    }
}

/// The result of one statement: rows to stream, or a catalog change that is done.
#[derive(Debug)]
pub enum StatementResult {
    Rows(DataFrame),
    Done(CatalogOutcome),
}

/// A `SessionContext` with everything registered, plus the persistent catalog.
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<SessionContext>,
    catalog: Catalog,
    monitor: Arc<Monitor>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the session context and restores the catalog of `options.data_dir`.
    pub async fn open(options: &EngineOptions) -> anyhow::Result<Self> {
        let data_dir = &options.data_dir;
        let store = Arc::new(CatalogStore::open(data_dir)?);
        let roots = if options.allow_paths.is_empty() {
            vec![default_files_dir(data_dir)]
        } else {
            options.allow_paths.clone()
        };
        let catalog = Catalog::new(store.clone(), AllowedRoots::new(roots)?);

        let mut config = SessionConfig::new()
            // Postgres' information_schema is registered below in place of DataFusion's.
            .with_information_schema(false)
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(true);
        // Plain Utf8 strings rather than Utf8View: Flight SQL clients (JDBC, older ADBC
        // and pyarrow) and the pg encoders handle them everywhere.
        let opts = config.options_mut();
        opts.sql_parser.map_string_types_to_utf8view = false;
        opts.execution.parquet.schema_force_view_types = false;
        for (key, value) in &options.datafusion {
            let key = if key.starts_with("datafusion.") {
                key.clone()
            } else {
                format!("datafusion.{key}")
            };
            config.options_mut().set(&key, value).map_err(|e| {
                anyhow::anyhow!("invalid [datafusion] setting {key} = {value}: {e}")
            })?;
        }
        // Directory and bucket listings are cached for a second, not for ever: a file
        // added under a table's location is part of the table from the next query.
        let mut runtime =
            RuntimeEnvBuilder::new().with_object_list_cache_ttl(Some(LISTING_CACHE_TTL));
        if let Some(limit) = options.memory_limit {
            // Each spilling operator gets a fair share; the pool names the biggest
            // consumers when a query is refused.
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(5).expect("non-zero"),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
        ctx.add_analyzer_rule(Arc::new(CheckAccess));
        carry_caller_into_spawned_tasks();
        // Listings (information_schema, pg_catalog, GetTables) show each caller only
        // the tables they may read.
        let tables = ctx
            .catalog(DEFAULT_CATALOG)
            .ok_or_else(|| anyhow::anyhow!("the default catalog was not created"))?;
        ctx.register_catalog(
            DEFAULT_CATALOG,
            Arc::new(VisibleCatalog::new(tables, store)),
        );
        let information_schema =
            pg_compat::PgInformationSchema::new(ctx.state().catalog_list().clone());
        ctx.catalog(DEFAULT_CATALOG)
            .ok_or_else(|| anyhow::anyhow!("the default catalog was not created"))?
            .register_schema("information_schema", Arc::new(information_schema))?;
        setup_pg_catalog(&ctx, DEFAULT_CATALOG, EmptyContextProvider)
            .map_err(|e| anyhow::anyhow!("cannot set up pg_catalog: {e}"))?;
        pg_compat::patch_pg_catalog(&ctx, DEFAULT_CATALOG)
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up pg_catalog: {e}"))?;
        pg_compat::register(&ctx);
        Caller::system()
            .scope(pg_compat::register_domain_base_type(&ctx))
            .await
            .map_err(|e| anyhow::anyhow!("cannot read pg_type: {e}"))?;
        let generator: Arc<dyn SqlGenerator> = match &options.llm {
            Some(llm) => Arc::new(LlmGenerator::new(llm.clone())),
            None => Arc::new(OfflineTranslator),
        };
        insightflow_functions::register_all(&ctx, Asker::new(generator));
        insightflow_connectors::register_all(&ctx);
        let monitor = Monitor::open(MonitorOptions {
            audit: AuditOptions::new(data_dir),
            rate_limit: options.rate_limit,
        })
        .with_context(|| format!("cannot open the audit log under {}", data_dir.display()))?;
        register_system_tables(&ctx, &monitor)?;

        let engine = Self {
            ctx: Arc::new(ctx),
            catalog,
            monitor,
        };
        Caller::system()
            .scope(engine.catalog.restore(&engine.ctx))
            .await;
        Ok(engine)
    }

    pub fn ctx(&self) -> &Arc<SessionContext> {
        &self.ctx
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The audit log, sessions, metrics and rate limit.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Splits SQL text into statements, the way DataFusion reads them.
    pub fn parse(sql: &str) -> Result<Vec<DFStatement>> {
        Ok(DFParser::parse_sql_with_dialect(
            &normalize_user_statements(sql),
            &PostgreSqlDialect {},
        )?
        .into_iter()
        .collect())
    }

    /// Runs one statement. Catalog statements are finished when this returns;
    /// queries return a `DataFrame` to stream.
    pub async fn execute(&self, stmt: DFStatement) -> Result<StatementResult> {
        if Catalog::handles(&stmt) {
            return Ok(StatementResult::Done(
                self.catalog.execute(&self.ctx, stmt).await?,
            ));
        }
        let plan = self.ctx.state().statement_to_plan(stmt).await?;
        Ok(StatementResult::Rows(
            self.ctx.execute_logical_plan(plan).await?,
        ))
    }

    /// Runs `f` as the server itself, with every right (start-up, the demo, the
    /// embedded `insightflow sql`).
    pub async fn as_system<F: std::future::Future>(&self, f: F) -> F::Output {
        Caller::system().scope(f).await
    }

    /// The caller for a connected user.
    pub fn caller(&self, user: &str) -> Caller {
        Caller::user(user, self.catalog.store().clone())
    }

    /// Parses and runs every statement of `sql`, in order.
    pub async fn sql(&self, sql: &str) -> Result<Vec<StatementResult>> {
        let mut results = Vec::new();
        for stmt in Self::parse(sql)? {
            results.push(self.execute(stmt).await?);
        }
        Ok(results)
    }

    /// Runs `sql`, which must be exactly one query, and returns its rows.
    pub async fn query(&self, sql: &str) -> Result<DataFrame> {
        let mut results = self.sql(sql).await?;
        match (results.pop(), results.is_empty()) {
            (Some(StatementResult::Rows(df)), true) => Ok(df),
            _ => Err(DataFusionError::Plan(format!(
                "expected exactly one query, got: {sql}"
            ))),
        }
    }
}

/// A stream that can be executed once, as the input of an insert plan.
struct OnceStream(
    parking_lot::Mutex<Option<SendableRecordBatchStream>>,
    SchemaRef,
);

impl std::fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnceStream")
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.1
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.0.lock().take() {
            Some(stream) => stream,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.1.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal("insert input read twice".into()))
                }),
            )),
        }
    }
}

impl Engine {
    /// Writes `rows` into `table` through the table's own insert plan (for a managed
    /// table: one commit when the stream ends, nothing if it fails). Returns the row
    /// count.
    pub async fn insert_stream(
        &self,
        table: TableReference,
        rows: SendableRecordBatchStream,
        op: InsertOp,
    ) -> Result<u64> {
        current_caller()?.check_table(Privilege::Insert, &table)?;
        let provider = self.ctx.table_provider(table).await?;
        let schema = rows.schema();
        let input = StreamingTable::try_new(
            schema.clone(),
            vec![Arc::new(OnceStream(
                parking_lot::Mutex::new(Some(rows)),
                schema,
            ))],
        )?;
        let state = self.ctx.state();
        let scan = TableProvider::scan(&input, &state, None, &[], None).await?;
        let plan = provider.insert_into(&state, scan, op).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        Ok(insightflow_catalog::rows_affected(&batches) as u64)
    }
}

/// `<data_dir>/files`: the default root for local files.
pub fn default_files_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("files")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datafusion_settings_from_the_config_reach_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EngineOptions::new(dir.path());
        options
            .datafusion
            .insert("execution.batch_size".into(), "1234".into());
        let engine = Engine::open(&options).await.unwrap();
        let batch_size: usize = engine
            .ctx()
            .state()
            .config()
            .options()
            .execution
            .batch_size
            .into();
        assert_eq!(batch_size, 1234);

        options
            .datafusion
            .insert("execution.no_such_setting".into(), "1".into());
        let err = Engine::open(&options).await.unwrap_err().to_string();
        assert!(err.contains("execution.no_such_setting"), "{err}");
    }
}
