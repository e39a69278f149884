//! `information_schema` as Postgres defines it: Postgres type names in `columns`
//! (`bigint`, `text`, `timestamp with time zone`: what Grafana, Metabase and Superset
//! match on), `tables` and `views` with Postgres' columns, and the constraint views,
//! empty because InsightFlow tables have no constraints.
//!
//! It replaces DataFusion's `information_schema` (whose `data_type` is the Arrow type)
//! and keeps DataFusion's other views (`df_settings`, `routines`, `parameters`,
//! `schemata`), so `SHOW TABLES`, `SHOW COLUMNS` and `SHOW ALL` still work. Rows are
//! built when the query runs, inside the caller's scope: listings show only the
//! tables the caller may see.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::TableType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

/// The `information_schema` schema.
#[derive(Debug)]
pub struct PgInformationSchema {
    catalogs: Arc<dyn CatalogProviderList>,
    datafusion: InformationSchemaProvider,
}

impl PgInformationSchema {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            datafusion: InformationSchemaProvider::new(catalogs.clone()),
            catalogs,
        }
    }
}

const OWN_VIEWS: [&str; 6] = [
    "tables",
    "columns",
    "views",
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
];
const DATAFUSION_VIEWS: [&str; 4] = ["schemata", "df_settings", "routines", "parameters"];

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        OWN_VIEWS
            .iter()
            .chain(DATAFUSION_VIEWS.iter())
            .map(|s| s.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        if DATAFUSION_VIEWS.contains(&name.as_str()) {
            return self.datafusion.table(&name).await;
        }
        let view = match name.as_str() {
            "tables" => View::Tables,
            "columns" => View::Columns,
            "views" => View::Views,
            "table_constraints" => return empty(TABLE_CONSTRAINTS),
            "key_column_usage" => return empty(KEY_COLUMN_USAGE),
            "referential_constraints" => return empty(REFERENTIAL_CONSTRAINTS),
            _ => return Ok(None),
        };
        let partition = Arc::new(Listing {
            view,
            schema: view.schema(),
            catalogs: self.catalogs.clone(),
        });
        Ok(Some(Arc::new(StreamingTable::try_new(
            view.schema(),
            vec![partition],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

const TABLE_CONSTRAINTS: &[&str] = &[
    "constraint_catalog",
    "constraint_schema",
    "constraint_name",
    "table_catalog",
    "table_schema",
    "table_name",
    "constraint_type",
    "is_deferrable",
    "initially_deferred",
    "enforced",
    "nulls_distinct",
];
const KEY_COLUMN_USAGE: &[&str] = &[
    "constraint_catalog",
    "constraint_schema",
    "constraint_name",
    "table_catalog",
    "table_schema",
    "table_name",
    "column_name",
    "ordinal_position",
    "position_in_unique_constraint",
];
const REFERENTIAL_CONSTRAINTS: &[&str] = &[
    "constraint_catalog",
    "constraint_schema",
    "constraint_name",
    "unique_constraint_catalog",
    "unique_constraint_schema",
    "unique_constraint_name",
    "match_option",
    "update_rule",
    "delete_rule",
];

fn empty(columns: &[&str]) -> Result<Option<Arc<dyn TableProvider>>> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let t = if c.ends_with("position") || c.starts_with("position") {
                DataType::Int32
            } else {
                DataType::Utf8
            };
            Field::new(*c, t, true)
        })
        .collect();
    Ok(Some(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?)))
}

#[derive(Debug, Clone, Copy)]
enum View {
    Tables,
    Columns,
    Views,
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

impl View {
    fn schema(self) -> SchemaRef {
        let fields = match self {
            View::Tables => vec![
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("table_type"),
                text("self_referencing_column_name"),
                text("reference_generation"),
                text("user_defined_type_catalog"),
                text("user_defined_type_schema"),
                text("user_defined_type_name"),
                text("is_insertable_into"),
                text("is_typed"),
                text("commit_action"),
            ],
            View::Columns => vec![
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("column_name"),
                int("ordinal_position"),
                text("column_default"),
                text("is_nullable"),
                text("data_type"),
                int("character_maximum_length"),
                int("character_octet_length"),
                int("numeric_precision"),
                int("numeric_precision_radix"),
                int("numeric_scale"),
                int("datetime_precision"),
                text("interval_type"),
                text("collation_name"),
                text("domain_name"),
                text("udt_catalog"),
                text("udt_schema"),
                text("udt_name"),
                text("is_identity"),
                text("is_generated"),
                text("is_updatable"),
            ],
            View::Views => vec![
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("view_definition"),
                text("check_option"),
                text("is_updatable"),
                text("is_insertable_into"),
                text("is_trigger_updatable"),
                text("is_trigger_deletable"),
                text("is_trigger_insertable_into"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

#[derive(Debug)]
struct Listing {
    view: View,
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl PartitionStream for Listing {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let view = self.view;
        let schema = self.schema.clone();
        let catalogs = self.catalogs.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(async move { list(view, schema, catalogs).await }),
        ))
    }
}

/// One row per table (or column, or view) the caller may see.
async fn list(
    view: View,
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
) -> Result<RecordBatch> {
    let width = schema.fields().len();
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(tables) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in tables.table_names() {
                let Some(table) = tables.table(&table_name).await? else {
                    continue;
                };
                let key =
                    [&catalog_name, &schema_name, &table_name].map(|s| Cell::Text(s.to_string()));
                let is_view = table.table_type() == TableType::View;
                match view {
                    View::Tables => {
                        let (kind, insertable) = match table.table_type() {
                            TableType::View => ("VIEW", "NO"),
                            TableType::Temporary => ("LOCAL TEMPORARY", "YES"),
                            TableType::Base => ("BASE TABLE", "YES"),
                        };
                        let mut row = key.to_vec();
                        row.push(Cell::text(kind));
                        row.resize(9, Cell::Null);
                        row.extend([Cell::text(insertable), Cell::text("NO"), Cell::Null]);
                        rows.push(row);
                    }
                    View::Views if is_view => {
                        let definition = table.get_table_definition().map(view_query);
                        let mut row = key.to_vec();
                        row.push(definition.map_or(Cell::Null, Cell::Text));
                        row.extend(["NONE", "NO", "NO", "NO", "NO", "NO"].map(Cell::text));
                        rows.push(row);
                    }
                    View::Views => {}
                    View::Columns => {
                        for (i, field) in table.schema().fields().iter().enumerate() {
                            let t = pg_type(field.data_type());
                            let mut row = key.to_vec();
                            row.extend([
                                Cell::Text(field.name().clone()),
                                Cell::Int(i as i32 + 1),
                                Cell::Null,
                                Cell::text(if field.is_nullable() { "YES" } else { "NO" }),
                                Cell::Text(t.data_type.to_string()),
                                Cell::Null,
                                Cell::Null,
                                t.precision.map_or(Cell::Null, Cell::Int),
                                t.precision.map_or(Cell::Null, |_| Cell::Int(t.radix)),
                                t.scale.map_or(Cell::Null, Cell::Int),
                                t.datetime_precision.map_or(Cell::Null, Cell::Int),
                                Cell::Null,
                                Cell::Null,
                                Cell::Null,
                                Cell::Text(catalog_name.clone()),
                                Cell::text("pg_catalog"),
                                Cell::Text(t.udt_name.to_string()),
                                Cell::text("NO"),
                                Cell::text("NEVER"),
                                Cell::text(if is_view { "NO" } else { "YES" }),
                            ]);
                            rows.push(row);
                        }
                    }
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = (0..width)
        .map(|c| -> ArrayRef {
            match schema.field(c).data_type() {
                DataType::Int32 => {
                    Arc::new(Int32Array::from_iter(rows.iter().map(|r| match &r[c] {
                        Cell::Int(v) => Some(*v),
                        _ => None,
                    })))
                }
                _ => Arc::new(StringArray::from_iter(rows.iter().map(|r| match &r[c] {
                    Cell::Text(v) => Some(v.clone()),
                    _ => None,
                }))),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[derive(Clone)]
enum Cell {
    Text(String),
    Int(i32),
    Null,
}

impl Cell {
    fn text(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

/// `CREATE VIEW x AS SELECT ...` -> `SELECT ...` (Postgres' `view_definition`).
fn view_query(definition: &str) -> String {
    let upper = definition.to_ascii_uppercase();
    match (upper.starts_with("CREATE"), upper.find(" AS ")) {
        (true, Some(at)) => definition[at + 4..].trim().to_string(),
        _ => definition.to_string(),
    }
}

/// How Postgres names and measures an Arrow type.
pub struct PgType {
    pub data_type: &'static str,
    pub udt_name: &'static str,
    precision: Option<i32>,
    radix: i32,
    scale: Option<i32>,
    datetime_precision: Option<i32>,
}

pub fn pg_type(t: &DataType) -> PgType {
    let plain = |data_type, udt_name| PgType {
        data_type,
        udt_name,
        precision: None,
        radix: 2,
        scale: None,
        datetime_precision: None,
    };
    let number = |data_type, udt_name, bits| PgType {
        precision: Some(bits),
        scale: Some(0),
        ..plain(data_type, udt_name)
    };
    let time = |data_type, udt_name, unit: &TimeUnit| PgType {
        datetime_precision: Some(match unit {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 3,
            TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
        }),
        ..plain(data_type, udt_name)
    };
    match t {
        DataType::Boolean => plain("boolean", "bool"),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => number("smallint", "int2", 16),
        DataType::Int32 | DataType::UInt16 => number("integer", "int4", 32),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => number("bigint", "int8", 64),
        DataType::Float16 | DataType::Float32 => PgType {
            precision: Some(24),
            ..plain("real", "float4")
        },
        DataType::Float64 => PgType {
            precision: Some(53),
            ..plain("double precision", "float8")
        },
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => PgType {
            precision: Some(*p as i32),
            radix: 10,
            scale: Some(*s as i32),
            ..plain("numeric", "numeric")
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => plain("text", "text"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => plain("bytea", "bytea"),
        DataType::Date32 | DataType::Date64 => PgType {
            datetime_precision: Some(0),
            ..plain("date", "date")
        },
        DataType::Timestamp(unit, None) => time("timestamp without time zone", "timestamp", unit),
        DataType::Timestamp(unit, Some(_)) => time("timestamp with time zone", "timestamptz", unit),
        DataType::Time32(unit) | DataType::Time64(unit) => {
            time("time without time zone", "time", unit)
        }
        DataType::Interval(_) | DataType::Duration(_) => PgType {
            datetime_precision: Some(6),
            ..plain("interval", "interval")
        },
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            plain("ARRAY", "_text")
        }
        DataType::Struct(_) | DataType::Map(..) => plain("json", "json"),
        DataType::Null => plain("text", "text"),
        _ => plain("USER-DEFINED", "text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_names_for_arrow_types() {
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        assert_eq!(pg_type(&ts).data_type, "timestamp with time zone");
        assert_eq!(pg_type(&DataType::Int64).udt_name, "int8");
        assert_eq!(pg_type(&DataType::Utf8View).data_type, "text");
        assert_eq!(pg_type(&DataType::Decimal128(10, 2)).scale, Some(2));
        assert_eq!(
            view_query("CREATE VIEW \"public\".\"v\" AS SELECT 1"),
            "SELECT 1"
        );
    }
}
