//! What a generator may know about the catalog: tables, columns, types, and a few
//! values of low-cardinality text columns.
//!
//! Only user schemas are described (never `pg_catalog` or `information_schema`), so
//! neither the model's prompt nor the offline translator ever sees a system table.

use insightflow_catalog::access::{Caller, Privilege};
use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::TableType;
use datafusion::execution::SessionState;
use datafusion::prelude::DataFrame;

use crate::source::quote_ident;

/// Text columns with at most this many distinct values list them as samples.
const MAX_SAMPLES: usize = 20;
/// Samples are read from at most this many rows of a table.
const SAMPLE_ROWS: usize = 100_000;
/// Schemas no question may read.
pub(crate) const SYSTEM_SCHEMAS: [&str; 3] = ["pg_catalog", "information_schema", "system"];

/// The tables a question may use.
#[derive(Debug, Clone, Default)]
pub struct CatalogSummary {
    pub tables: Vec<TableSummary>,
}

#[derive(Debug, Clone)]
pub struct TableSummary {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnSummary>,
}

#[derive(Debug, Clone)]
pub struct ColumnSummary {
    pub name: String,
    pub data_type: DataType,
    /// Every distinct value, for text columns with few of them; empty otherwise.
    pub samples: Vec<String>,
}

impl TableSummary {
    /// The name to use in SQL: unqualified in `public`.
    pub fn sql_name(&self) -> String {
        if self.schema == "public" {
            quote_if_needed(&self.name)
        } else {
            format!(
                "{}.{}",
                quote_if_needed(&self.schema),
                quote_if_needed(&self.name)
            )
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSummary> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// An identifier as SQL, quoted only when it must be.
pub(crate) fn quote_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

impl CatalogSummary {
    /// Reads the default catalog. Tables that cannot be read are left out.
    pub async fn read(state: &SessionState) -> Self {
        let options = state.config_options();
        let Some(catalog) = state
            .catalog_list()
            .catalog(&options.catalog.default_catalog)
        else {
            return Self::default();
        };
        let mut schemas = catalog.schema_names();
        schemas.sort();
        let mut tables = Vec::new();
        // Only what the caller may read goes into a prompt.
        let caller = Caller::current();
        let hidden = |schema: &str, table: &str| {
            caller.as_ref().is_some_and(|c| {
                c.is_catalog_table(schema, table) && !c.may(Privilege::Select, schema, table)
            })
        };
        for schema_name in schemas {
            if SYSTEM_SCHEMAS.contains(&schema_name.as_str()) {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                if hidden(&schema_name, &name) {
                    continue;
                }
                let Ok(Some(provider)) = schema.table(&name).await else {
                    continue;
                };
                if provider.table_type() == TableType::Temporary {
                    continue;
                }
                let mut table = TableSummary {
                    schema: schema_name.clone(),
                    name,
                    columns: provider
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| ColumnSummary {
                            name: f.name().clone(),
                            data_type: f.data_type().clone(),
                            samples: Vec::new(),
                        })
                        .collect(),
                };
                add_samples(state, &mut table).await;
                tables.push(table);
            }
        }
        Self { tables }
    }

    /// The catalog as the model reads it: one line per table.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for table in &self.tables {
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|c| {
                    let mut s = format!("{} {}", quote_if_needed(&c.name), sql_type(&c.data_type));
                    if !c.samples.is_empty() {
                        let values: Vec<String> = c
                            .samples
                            .iter()
                            .map(|v| format!("'{}'", v.replace('\'', "''")))
                            .collect();
                        let _ = write!(s, " (values: {})", values.join(", "));
                    }
                    s
                })
                .collect();
            let _ = writeln!(out, "TABLE {} ({})", table.sql_name(), columns.join(", "));
        }
        out
    }
}

/// Fills `samples` of the text columns with few distinct values.
async fn add_samples(state: &SessionState, table: &mut TableSummary) {
    let relation = table.sql_name();
    for column in &mut table.columns {
        if !matches!(
            column.data_type,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            continue;
        }
        let c = quote_ident(&column.name);
        let sql = format!(
            "SELECT DISTINCT CAST({c} AS VARCHAR) AS v FROM (SELECT {c} FROM {relation} LIMIT {SAMPLE_ROWS}) \
             WHERE {c} IS NOT NULL ORDER BY v LIMIT {}",
            MAX_SAMPLES + 1
        );
        let Ok(values) = distinct_values(state, &sql).await else {
            continue;
        };
        if values.len() <= MAX_SAMPLES {
            column.samples = values;
        }
    }
}

async fn distinct_values(
    state: &SessionState,
    sql: &str,
) -> datafusion::common::Result<Vec<String>> {
    let plan = state.create_logical_plan(sql).await?;
    let mut values = Vec::new();
    for batch in DataFrame::new(state.clone(), plan).collect().await? {
        let column = cast(batch.column(0), &DataType::Utf8)?;
        let column = column.as_string::<i32>();
        values.extend(
            (0..column.len())
                .filter(|&i| column.is_valid(i))
                .map(|i| column.value(i).to_string()),
        );
    }
    Ok(values)
}

/// A Postgres-style type name for the prompt.
fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "SMALLINT",
        DataType::Int32 | DataType::UInt16 => "INTEGER",
        t if t.is_integer() => "BIGINT",
        DataType::Float16 | DataType::Float32 => "REAL",
        DataType::Float64 => "DOUBLE PRECISION",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "NUMERIC",
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR",
        DataType::Boolean => "BOOLEAN",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::Time32(_) | DataType::Time64(_) => "TIME",
        DataType::Interval(_) => "INTERVAL",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA",
        _ => "OTHER",
    }
}
