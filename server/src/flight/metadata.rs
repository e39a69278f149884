//! Flight SQL metadata: catalogs, schemas, tables, table types and SQL info, read from
//! the live DataFusion catalog. `pg_catalog` and `information_schema` are left out:
//! they are for Postgres clients.

use insightflow_catalog::Caller;
use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
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
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, true);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 1_i32);
    b.append(SqlInfo::SqlIdentifierCase, 2_i32); // lower case, as Postgres
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlMaxColumnNameLength, 63_i64);
    b.append(SqlInfo::SqlMaxTableNameLength, 63_i64);
    // Words InsightFlow's SQL adds to SQL:2003, and the functions it has.
    b.append(
        SqlInfo::SqlKeywords,
        &[
            "EXTERNAL", "STORED", "LOCATION", "OPTIONS", "PARQUET", "AVRO", "EXCEL", "COPY",
        ][..],
    );
    b.append(
        SqlInfo::SqlNumericFunctions,
        &[
            "abs", "ceil", "floor", "round", "trunc", "power", "sqrt", "exp", "ln", "log", "mod",
            "random",
        ][..],
    );
    b.append(
        SqlInfo::SqlStringFunctions,
        &[
            "lower",
            "upper",
            "trim",
            "ltrim",
            "rtrim",
            "substr",
            "concat",
            "length",
            "replace",
            "strpos",
            "split_part",
            "regexp_replace",
        ][..],
    );
    b.append(
        SqlInfo::SqlDatetimeFunctions,
        &[
            "now",
            "current_date",
            "date_trunc",
            "date_part",
            "extract",
            "to_timestamp",
            "to_date",
        ][..],
    );
    b.append(
        SqlInfo::SqlSystemFunctions,
        &[
            "version",
            "current_user",
            "current_schema",
            "current_setting",
        ][..],
    );
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

/// Keys: InsightFlow tables have no primary or foreign keys, so GetPrimaryKeys,
/// GetExportedKeys, GetImportedKeys and GetCrossReference answer with no rows, in the
/// schemas Flight SQL defines (JDBC's `getPrimaryKeys` and Tableau read them).
pub(crate) fn primary_keys_schema() -> Schema {
    use datafusion::arrow::datatypes::{DataType, Field};
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("key_name", DataType::Utf8, true),
    ])
}

pub(crate) fn foreign_keys_schema() -> Schema {
    use datafusion::arrow::datatypes::{DataType, Field};
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

pub(crate) fn no_rows(schema: Schema) -> RecordBatch {
    RecordBatch::new_empty(Arc::new(schema))
}

/// The SQL types InsightFlow stores, for GetXdbcTypeInfo (JDBC's `getTypeInfo`).
pub(crate) static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    use arrow_flight::sql::{Nullable, Searchable, XdbcDataType as T, XdbcDatetimeSubcode as D};
    let ty = |name: &str, data_type: T, size: Option<i32>, quoted: bool| XdbcTypeInfo {
        type_name: name.to_string(),
        data_type,
        column_size: size,
        literal_prefix: quoted.then(|| "'".to_string()),
        literal_suffix: quoted.then(|| "'".to_string()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: quoted,
        searchable: Searchable::Full,
        unsigned_attribute: (!quoted).then_some(false),
        fixed_prec_scale: false,
        auto_increment: (!quoted).then_some(false),
        local_type_name: Some(name.to_string()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: (!quoted).then_some(10),
        interval_precision: None,
    };
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(ty("boolean", T::XdbcBit, Some(1), false));
    b.append(ty("smallint", T::XdbcSmallint, Some(5), false));
    b.append(ty("integer", T::XdbcInteger, Some(10), false));
    b.append(ty("bigint", T::XdbcBigint, Some(19), false));
    b.append(ty("real", T::XdbcFloat, Some(24), false));
    b.append(ty("double precision", T::XdbcDouble, Some(53), false));
    b.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..ty("numeric", T::XdbcDecimal, Some(38), false)
    });
    b.append(ty("text", T::XdbcVarchar, None, true));
    b.append(ty("bytea", T::XdbcVarbinary, None, true));
    b.append(XdbcTypeInfo {
        // 1 is ODBC's SQL_CODE_DATE (the enum names it after INTERVAL YEAR).
        datetime_subcode: Some(D::XdbcSubcodeYear),
        ..ty("date", T::XdbcDate, Some(10), true)
    });
    b.append(XdbcTypeInfo {
        datetime_subcode: Some(D::XdbcSubcodeTime),
        ..ty("time", T::XdbcTime, Some(15), true)
    });
    b.append(XdbcTypeInfo {
        datetime_subcode: Some(D::XdbcSubcodeTimestamp),
        ..ty("timestamp", T::XdbcTimestamp, Some(26), true)
    });
    b.build().expect("static type info is valid")
});
