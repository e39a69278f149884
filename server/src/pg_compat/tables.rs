//! `pg_catalog` tables whose shape clients depend on and datafusion-postgres gets wrong.
//!
//! `pg_index.indkey`, `pg_constraint.conkey`, `pg_policy.polroles` and their siblings
//! are arrays in Postgres; SQLAlchemy, pgjdbc and psql `unnest` them, index into them
//! and test `= ANY(...)`. datafusion-postgres serves them as text and fills the tables
//! with Postgres' own system indexes and constraints. InsightFlow has no indexes,
//! constraints or row policies, so these tables are empty, with the array columns
//! typed as arrays. `pg_class` gains the `reloptions` column psql `\d` reads (always
//! NULL: InsightFlow tables take no storage options).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// Tables InsightFlow never has rows in, with the columns that are arrays.
const EMPTY_TABLES: [(&str, &[(&str, DataType)]); 3] = [
    (
        "pg_index",
        &[
            ("indkey", DataType::Int16),
            ("indoption", DataType::Int16),
            ("indcollation", DataType::Int32),
            ("indclass", DataType::Int32),
        ],
    ),
    (
        "pg_constraint",
        &[
            ("conkey", DataType::Int16),
            ("confkey", DataType::Int16),
            ("confdelsetcols", DataType::Int16),
            ("conpfeqop", DataType::Int32),
            ("conppeqop", DataType::Int32),
            ("conffeqop", DataType::Int32),
            ("conexclop", DataType::Int32),
        ],
    ),
    ("pg_policy", &[("polroles", DataType::Int32)]),
];

fn list_of(element: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", element.clone(), true)))
}

/// Replaces the tables above in the `pg_catalog` schema of `catalog`.
pub async fn patch(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let catalog = ctx
        .catalog(catalog)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog}")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("pg_catalog is not set up".into()))?;
    let mut overrides: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    for (name, arrays) in EMPTY_TABLES {
        let Some(table) = inner.table(name).await? else {
            continue;
        };
        let fields: Vec<Field> = table
            .schema()
            .fields()
            .iter()
            .map(|f| match arrays.iter().find(|(n, _)| n == f.name()) {
                Some((_, element)) => Field::new(f.name(), list_of(element), true),
                None => f.as_ref().clone(),
            })
            .collect();
        let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
        overrides.insert(name.to_string(), Arc::new(empty));
    }
    if let Some(pg_class) = inner.table("pg_class").await? {
        let reloptions = Field::new("reloptions", list_of(&DataType::Utf8), true);
        overrides.insert(
            "pg_class".to_string(),
            Arc::new(WithNullColumns::new(pg_class, vec![reloptions])),
        );
    }
    catalog.register_schema("pg_catalog", Arc::new(PatchedSchema { inner, overrides }))?;
    Ok(())
}

/// A table with more columns, always NULL.
#[derive(Debug)]
struct WithNullColumns {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

impl WithNullColumns {
    fn new(inner: Arc<dyn TableProvider>, extra: Vec<Field>) -> Self {
        let mut fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(extra);
        Self {
            inner,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for WithNullColumns {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, None, &[], limit).await?;
        let inner_width = self.inner.schema().fields().len();
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let exprs = projection
            .unwrap_or(&all)
            .iter()
            .map(|&i| {
                let field = self.schema.field(i);
                let expr: Arc<dyn PhysicalExpr> = if i < inner_width {
                    Arc::new(Column::new(field.name(), i))
                } else {
                    Arc::new(Literal::new(ScalarValue::try_from(field.data_type())?))
                };
                Ok(ProjectionExpr::new(expr, field.name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }
}

#[derive(Debug)]
struct PatchedSchema {
    inner: Arc<dyn SchemaProvider>,
    overrides: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for PatchedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.overrides.get(name) {
            Some(table) => Ok(Some(table.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.overrides.contains_key(name) || self.inner.table_exist(name)
    }
}
