//! Flight SQL metadata: catalogs, schemas, tables, table types and SQL info, read from
//! the live DataFusion catalog. `pg_catalog` and `information_schema` are left out:
//! they are for Postgres clients.

use insightflow_catalog::Caller;
use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;

const HIDDEN_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];
pub(crate) const TABLE_TYPES: [&str; 3] = ["TABLE", "VIEW", "LOCAL TEMPORARY"];

pub(crate) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "InsightFlow");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, true);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 1_i32);
    b.build().expect("static SQL info is valid")
});

fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

fn visible_schemas(ctx: &SessionContext, catalog: &str) -> Vec<String> {
    ctx.catalog(catalog)
        .map(|c| {
            let mut names: Vec<String> = c
                .schema_names()
                .into_iter()
                .filter(|s| !HIDDEN_SCHEMAS.contains(&s.as_str()))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default()
}

fn status(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

pub(crate) fn catalogs(
    ctx: &SessionContext,
    query: CommandGetCatalogs,
) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for name in ctx.catalog_names() {
        builder.append(name);
    }
    builder.build().map_err(status)
}

pub(crate) fn schemas(
    ctx: &SessionContext,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for catalog in ctx.catalog_names() {
        for schema in visible_schemas(ctx, &catalog) {
            builder.append(&catalog, schema);
        }
    }
    builder.build().map_err(status)
}

/// The tables `caller` may see (catalog tables they hold a grant on, and the system
/// schemas).
pub(crate) async fn tables(
    ctx: &SessionContext,
    caller: &Caller,
    query: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let include_schema = query.include_schema;
    let mut builder = query.into_builder();
    let empty = Arc::new(Schema::empty());
    for catalog in ctx.catalog_names() {
        let Some(cat) = ctx.catalog(&catalog) else {
            continue;
        };
        for schema_name in visible_schemas(ctx, &catalog) {
            let Some(schema) = cat.schema(&schema_name) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                let in_catalog = caller.is_catalog_table(&schema_name, &name);
                if in_catalog && !caller.may_see(&schema_name, &name) {
                    continue;
                }
                let Ok(Some(table)) = schema.table(&name).await else {
                    continue;
                };
                let table_schema = if include_schema {
                    table.schema()
                } else {
                    empty.clone()
                };
                builder
                    .append(
                        &catalog,
                        &schema_name,
                        &name,
                        table_type_name(table.table_type()),
                        &table_schema,
                    )
                    .map_err(status)?;
            }
        }
    }
    builder.build().map_err(status)
}

pub(crate) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for t in TABLE_TYPES {
        builder.append(t);
    }
    builder.build().map_err(status)
}
