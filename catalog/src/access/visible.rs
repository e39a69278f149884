//! Listings show each caller only what they may read.
//!
//! `information_schema`, `pg_catalog` (psql `\dt`, the BI tools' pickers) and Flight's
//! GetTables all list tables through the schema providers' `table_names()`. Wrapping
//! the catalog so that `table_names()` leaves out the catalog tables the current caller
//! holds no right on hides them everywhere at once. Looking a table up by name is not
//! filtered: a query naming it gets the plan check's clear 42501, not "not found".
//!
//! The listing needs the caller while it runs, so front ends poll result streams inside
//! the caller's scope ([`Caller::scope_stream`]). Where no caller is known the catalog's
//! tables are left out (fail closed); system tables are always listed.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::TableType;

use super::Caller;
use crate::store::CatalogStore;

/// The catalog as each caller may see it.
#[derive(Debug)]
pub struct VisibleCatalog {
    inner: Arc<dyn CatalogProvider>,
    store: Arc<CatalogStore>,
}

impl VisibleCatalog {
    pub fn new(inner: Arc<dyn CatalogProvider>, store: Arc<CatalogStore>) -> Self {
        Self { inner, store }
    }
}

impl CatalogProvider for VisibleCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(VisibleSchema {
            name: name.to_string(),
            inner,
            store: self.store.clone(),
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

#[derive(Debug)]
struct VisibleSchema {
    name: String,
    inner: Arc<dyn SchemaProvider>,
    store: Arc<CatalogStore>,
}

impl VisibleSchema {
    fn visible(&self, caller: Option<&Caller>, table: &str) -> bool {
        let is_catalog_table = self
            .store
            .read(|c| c.find_object(&self.name, table).is_some());
        !is_catalog_table || caller.is_some_and(|c| c.may_see(&self.name, table))
    }
}

#[async_trait]
impl SchemaProvider for VisibleSchema {
    fn owner_name(&self) -> Option<&str> {
        self.inner.owner_name()
    }

    fn table_names(&self) -> Vec<String> {
        let caller = Caller::current();
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| self.visible(caller.as_ref(), t))
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.table(name).await
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        self.inner.table_type(name).await
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
        self.inner.table_exist(name)
    }
}
