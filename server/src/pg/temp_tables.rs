//! Temporary tables: `CREATE TEMP TABLE` lives in memory for one connection and is gone
//! when it closes, as in Postgres (BI tools such as Tableau probe for them and stage
//! intermediate results in them).
//!
//! Each session's catalog list is the engine's with an overlay: the session's own
//! `pg_temp` schema (a DataFusion [`MemorySchemaProvider`]), whose tables are also found
//! first under every other schema, so an unqualified name finds the temporary table
//! before a shared one. `CREATE TEMP TABLE t` becomes DataFusion's own in-memory
//! `CREATE TABLE pg_temp.t` (with `AS SELECT`, `INSERT` and `DROP` working as for any
//! memory table); nothing of it reaches the persistent catalog. The grants check does
//! not apply to a session's own temporary tables.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, ObjectType, Statement};

/// The schema that holds a session's temporary tables.
pub(crate) const TEMP_SCHEMA: &str = "pg_temp";

/// A session's temporary tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct TempTables {
    schema: Arc<MemorySchemaProvider>,
}

impl TempTables {
    /// A context for one session: it shares `ctx`'s catalogs (with this session's
    /// temporary tables over them), functions and runtime (memory pool, caches), while
    /// its settings (`SET`, the default schema `search_path` picks) are its own.
    pub(crate) fn session_context(&self, ctx: &SessionContext) -> Arc<SessionContext> {
        let state = ctx.state();
        let catalogs = Arc::new(SessionCatalogs {
            inner: state.catalog_list().clone(),
            temp: self.schema.clone(),
        });
        let state = SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(catalogs)
            .build();
        Arc::new(SessionContext::new_with_state(state))
    }

    /// The statement DataFusion runs instead of `stmt`, when `stmt` creates a temporary
    /// table or drops only temporary tables.
    pub(crate) fn rewrite(&self, stmt: &DFStatement) -> Option<DFStatement> {
        let DFStatement::Statement(statement) = stmt else {
            return None;
        };
        match statement.as_ref() {
            Statement::CreateTable(create) if create.temporary => {
                let mut create = create.clone();
                create.temporary = false;
                create.on_commit = None;
                create.global = None;
                create.name = in_temp_schema(&create.name)?;
                Some(DFStatement::Statement(Box::new(Statement::CreateTable(
                    create,
                ))))
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                let names = names
                    .iter()
                    .map(|name| {
                        let temp = in_temp_schema(name)?;
                        let table = temp.0.last()?.as_ident()?.value.clone();
                        self.schema.table_exist(&table).then_some(temp)
                    })
                    .collect::<Option<Vec<_>>>()?;
                let mut drop = statement.as_ref().clone();
                if let Statement::Drop {
                    names: n,
                    temporary,
                    ..
                } = &mut drop
                {
                    *n = names;
                    *temporary = false;
                }
                Some(DFStatement::Statement(Box::new(drop)))
            }
            _ => None,
        }
    }
}

/// `t` or `pg_temp.t` as `pg_temp.t`; `None` for a name in another schema.
fn in_temp_schema(name: &ObjectName) -> Option<ObjectName> {
    let parts: Vec<&Ident> = name.0.iter().filter_map(ObjectNamePart::as_ident).collect();
    let table = match parts.as_slice() {
        [table] => *table,
        [schema, table] if schema.value == TEMP_SCHEMA => *table,
        _ => return None,
    };
    Some(ObjectName::from(vec![
        Ident::new(TEMP_SCHEMA),
        table.clone(),
    ]))
}

#[derive(Debug)]
struct SessionCatalogs {
    inner: Arc<dyn CatalogProviderList>,
    temp: Arc<MemorySchemaProvider>,
}

impl CatalogProviderList for SessionCatalogs {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }
    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }
    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        Some(Arc::new(SessionCatalog {
            inner,
            temp: self.temp.clone(),
        }))
    }
}

#[derive(Debug)]
struct SessionCatalog {
    inner: Arc<dyn CatalogProvider>,
    temp: Arc<MemorySchemaProvider>,
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == TEMP_SCHEMA {
            return Some(self.temp.clone());
        }
        let inner = self.inner.schema(name)?;
        Some(Arc::new(TempFirst {
            inner,
            temp: self.temp.clone(),
        }))
    }
    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }
}

/// A shared schema under which the session's temporary tables are found first.
#[derive(Debug)]
struct TempFirst {
    inner: Arc<dyn SchemaProvider>,
    temp: Arc<MemorySchemaProvider>,
}

#[async_trait]
impl SchemaProvider for TempFirst {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.temp.table(name).await? {
            Some(table) => Ok(Some(table)),
            None => self.inner.table(name).await,
        }
    }
    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }
    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }
    fn table_exist(&self, name: &str) -> bool {
        self.temp.table_exist(name) || self.inner.table_exist(name)
    }
}
