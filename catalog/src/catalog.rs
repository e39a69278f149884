//! [`Catalog`]: runs the statements that change the catalog and records them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use tracing::{info, warn};

use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType};

use crate::access::{self, Caller, Privilege};
use crate::ddl;
use crate::paths::AllowedRoots;
use crate::store::{CatalogStore, ObjectDef};

/// The one database every client sees (`current_database()`).
pub const DEFAULT_CATALOG: &str = "insightflow";
/// Where unqualified names live.
pub const DEFAULT_SCHEMA: &str = "public";

/// What a catalog statement did, as a Postgres command tag (`CREATE VIEW`, `COPY 42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogOutcome {
    pub tag: &'static str,
    pub rows: Option<usize>,
}

/// The persistent catalog: the store, plus the roots local files must lie under.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Arc<CatalogStore>,
    roots: AllowedRoots,
}

impl Catalog {
    pub fn new(store: Arc<CatalogStore>, roots: AllowedRoots) -> Self {
        Self { store, roots }
    }

    pub fn store(&self) -> &Arc<CatalogStore> {
        &self.store
    }

    pub fn roots(&self) -> &AllowedRoots {
        &self.roots
    }

    /// True for the statements this catalog must run itself (so they persist, or so
    /// their paths are checked): the rest go straight to DataFusion.
    pub fn handles(stmt: &DFStatement) -> bool {
        if access::is_access_statement(stmt) {
            return true;
        }
        match stmt {
            DFStatement::CreateExternalTable(_) | DFStatement::CopyTo(_) => true,
            DFStatement::Statement(s) => matches!(
                s.as_ref(),
                Statement::CreateView(_)
                    | Statement::CreateSchema { .. }
                    | Statement::CreateTable(_)
                    | Statement::Drop { .. }
                    | Statement::Truncate(_)
            ),
            DFStatement::Explain(_) | DFStatement::Reset(_) => false,
        }
    }

    /// Runs one statement for which [`Catalog::handles`] is true and records it.
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        stmt: DFStatement,
    ) -> datafusion::error::Result<CatalogOutcome> {
        let caller = access::current_caller()?;
        if access::is_access_statement(&stmt) {
            return Ok(access::run_access_statement(&self.store, &caller, stmt)?);
        }
        self.check_rights(&caller, &stmt)?;
        Ok(match stmt {
            DFStatement::CreateExternalTable(cmd) => {
                ddl::create_external_table(self, ctx, cmd).await?
            }
            DFStatement::CopyTo(mut copy) => {
                if AllowedRoots::is_local(&copy.target) {
                    copy.target = self.roots.resolve(&copy.target)?;
                }
                let batches = ddl::run(ctx, DFStatement::CopyTo(copy)).await?;
                CatalogOutcome {
                    tag: "COPY",
                    rows: Some(rows_affected(&batches)),
                }
            }
            DFStatement::Statement(s) => match *s {
                s @ Statement::CreateView(_) => ddl::create_view(self, ctx, s).await?,
                s @ Statement::CreateSchema { .. } => ddl::create_schema(self, ctx, s).await?,
                s @ Statement::CreateTable(_) => ddl::create_table(self, ctx, s).await?,
                Statement::Drop {
                    object_type,
                    if_exists,
                    names,
                    cascade,
                    ..
                } => ddl::drop(self, ctx, object_type, if_exists, names, cascade).await?,
                // Answered like Postgres: a tag, not DataFusion's row count.
                s @ Statement::Truncate(_) => {
                    ddl::run(ctx, DFStatement::Statement(Box::new(s))).await?;
                    CatalogOutcome {
                        tag: "TRUNCATE TABLE",
                        rows: None,
                    }
                }
                other => {
                    return Err(DataFusionError::Internal(format!(
                        "catalog cannot run statement: {other}"
                    )))
                }
            },
            other => {
                return Err(DataFusionError::Internal(format!(
                    "catalog cannot run statement: {other}"
                )))
            }
        })
    }

    /// Who may change the catalog: superusers for anything that touches files or
    /// remote systems; schema owners (`GRANT ALL ON SCHEMA`) for tables and views.
    fn check_rights(&self, caller: &Caller, stmt: &DFStatement) -> crate::Result<()> {
        let schema_of =
            |name: &ObjectName| access::schema_and_name(&TableReference::from(name.to_string())).0;
        match stmt {
            DFStatement::CreateExternalTable(_) => caller.require_superuser(
                "create external tables (they read local files and remote systems)",
            ),
            DFStatement::CopyTo(_) => {
                caller.require_superuser("write files with COPY ... TO (local or object store)")
            }
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::CreateView(v) => caller.check_schema_owner(&schema_of(&v.name)),
                Statement::CreateTable(t) => caller.check_schema_owner(&schema_of(&t.name)),
                Statement::CreateSchema { .. } => caller.require_superuser("create schemas"),
                Statement::Drop {
                    object_type: ObjectType::Table | ObjectType::View,
                    names,
                    ..
                } => names.iter().try_for_each(|name| {
                    let table = TableReference::from(name.to_string());
                    let (schema, _) = access::schema_and_name(&table);
                    if caller.check_schema_owner(&schema).is_ok() {
                        return Ok(());
                    }
                    caller.check_table(Privilege::All, &table)
                }),
                Statement::Drop { .. } => caller.require_superuser("drop schemas"),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Creates an empty managed table `schema.name` with `columns` (Flight ingest).
    pub fn create_managed_table(
        &self,
        ctx: &SessionContext,
        schema: &str,
        name: &str,
        columns: datafusion::arrow::datatypes::SchemaRef,
    ) -> datafusion::error::Result<()> {
        ddl::create_managed(self, ctx, schema, name, columns).map(|_| ())
    }

    /// Drops table `schema.name` and, if it is managed, its files.
    pub async fn drop_table(
        &self,
        ctx: &SessionContext,
        schema: &str,
        name: &str,
    ) -> datafusion::error::Result<()> {
        let name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![
            datafusion::sql::sqlparser::ast::Ident::with_quote('"', schema),
            datafusion::sql::sqlparser::ast::Ident::with_quote('"', name),
        ]);
        let object_type = datafusion::sql::sqlparser::ast::ObjectType::Table;
        ddl::drop(self, ctx, object_type, true, vec![name], false)
            .await
            .map(|_| ())
    }

    /// Re-creates every recorded schema, table and view in `ctx` (at start-up).
    /// A definition that no longer works (its file was removed) is kept in the catalog
    /// and logged, so restoring the file brings the table back at the next start.
    pub async fn restore(&self, ctx: &SessionContext) -> Vec<String> {
        let mut problems = Vec::new();
        for schema in self.store.schemas() {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", ddl::quote_ident(&schema));
            if let Err(e) = ctx.sql(&sql).await {
                problems.push(format!("schema {schema}: {e}"));
            }
        }
        let objects = self.store.objects();
        for object in &objects {
            let sql = match object {
                ObjectDef::ExternalTable(t) => match self.store.unsealed(t.clone()) {
                    Ok(t) => ddl::external_table_sql(&t),
                    Err(e) => {
                        let msg = format!("{}.{}: {e}", t.schema, t.name);
                        warn!(object = %msg, "could not open the table's secrets; it stays in the catalog");
                        problems.push(msg);
                        continue;
                    }
                },
                ObjectDef::View(v) => v.sql.clone(),
                ObjectDef::ManagedTable(t) => {
                    if let Err(e) = ddl::register_managed(self, ctx, t) {
                        let msg = format!("{}.{}: {e}", t.schema, t.name);
                        warn!(object = %msg, "could not open managed table; it stays in the catalog");
                        problems.push(msg);
                    }
                    continue;
                }
            };
            let result = async { ctx.sql(&sql).await?.collect().await }.await;
            if let Err(e) = result {
                let msg = format!("{}.{}: {e}", object.schema(), object.name());
                warn!(object = %msg, "could not restore catalog object; it stays in the catalog");
                problems.push(msg);
            }
        }
        info!(
            objects = objects.len(),
            problems = problems.len(),
            "catalog restored"
        );
        problems
    }
}

/// The row count DataFusion reports for DML and `COPY` (a `count` column).
pub fn rows_affected(batches: &[RecordBatch]) -> usize {
    batches
        .first()
        .and_then(|b| b.column_by_name("count"))
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned())
        .filter(|a| !a.is_empty())
        .map_or(0, |a| a.value(0) as usize)
}
