//! `system.query_log` and `system.sessions`: the monitor's records as SQL tables.
//!
//! Superusers see every row; everyone else sees their own statements and sessions.
//! The rows are built when a query scans the table, from the caller of that query.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use insightflow_catalog::access::current_caller;
use insightflow_catalog::DEFAULT_CATALOG;

use super::Monitor;

pub const SYSTEM_SCHEMA: &str = "system";

/// Registers the `system` schema with both tables. The tables hold the monitor
/// weakly: the monitor is owned by the server, not by the session context.
pub fn register_system_tables(ctx: &SessionContext, monitor: &Arc<Monitor>) -> Result<()> {
    let catalog = ctx.catalog(DEFAULT_CATALOG).ok_or_else(|| {
        DataFusionError::Internal(format!("catalog {DEFAULT_CATALOG} is missing"))
    })?;
    let schema = Arc::new(MemorySchemaProvider::new());
    for kind in [Kind::QueryLog, Kind::Sessions] {
        let table = SystemTable {
            kind,
            monitor: Arc::downgrade(monitor),
        };
        schema.register_table(kind.name().to_string(), Arc::new(table))?;
    }
    catalog.register_schema(SYSTEM_SCHEMA, schema)?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    QueryLog,
    Sessions,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::QueryLog => "query_log",
            Kind::Sessions => "sessions",
        }
    }

    fn schema(self) -> SchemaRef {
        let time = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let fields = match self {
            Kind::QueryLog => vec![
                Field::new("time", time(), false),
                text("query_id", false),
                text("session_id", false),
                text("user_name", false),
                text("client", false),
                text("protocol", false),
                text("statement", false),
                text("status", false),
                text("sqlstate", true),
                text("error", true),
                Field::new("rows", DataType::UInt64, false),
                Field::new("bytes", DataType::UInt64, false),
                Field::new("duration_ms", DataType::Float64, false),
                text("ask_question", true),
                text("ask_sql", true),
                text("ask_model", true),
                Field::new("ask_tries", DataType::UInt64, true),
                text("ask_outcome", true),
            ],
            Kind::Sessions => vec![
                text("session_id", false),
                text("user_name", true),
                text("client", false),
                text("protocol", false),
                Field::new("connected_at", time(), false),
                Field::new("last_statement_at", time(), true),
                Field::new("statements", DataType::UInt64, false),
                text("state", false),
                text("statement", true),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

#[derive(Debug)]
struct SystemTable {
    kind: Kind,
    monitor: Weak<Monitor>,
}

impl SystemTable {
    /// The rows the current caller may see.
    fn batch(&self) -> Result<RecordBatch> {
        let caller = current_caller()?;
        let everyone = caller.is_superuser();
        let visible = |user: Option<&str>| everyone || user == Some(caller.name());
        let monitor = self
            .monitor
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the server is shutting down".into()))?;
        let schema = self.kind.schema();
        let columns: Vec<ArrayRef> = match self.kind {
            Kind::QueryLog => {
                let rows: Vec<_> = monitor
                    .queries()
                    .into_iter()
                    .filter(|r| visible(Some(&r.user)))
                    .collect();
                let text = |f: &dyn Fn(&super::QueryRecord) -> Option<&str>| -> ArrayRef {
                    Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
                };
                let ask = |f: &dyn Fn(&super::AskRecord) -> Option<&str>| -> ArrayRef {
                    Arc::new(
                        rows.iter()
                            .map(|r| r.ask.as_ref().and_then(f))
                            .collect::<StringArray>(),
                    )
                };
                vec![
                    Arc::new(
                        rows.iter()
                            .map(|r| {
                                Some(r.started_at().map(|t| t.timestamp_micros()).unwrap_or(0))
                            })
                            .collect::<TimestampMicrosecondArray>()
                            .with_timezone("UTC"),
                    ),
                    text(&|r| Some(&r.query_id)),
                    text(&|r| Some(&r.session_id)),
                    text(&|r| Some(&r.user)),
                    text(&|r| Some(&r.client)),
                    text(&|r| Some(&r.protocol)),
                    text(&|r| Some(&r.statement)),
                    text(&|r| Some(&r.status)),
                    text(&|r| r.sqlstate.as_deref()),
                    text(&|r| r.error.as_deref()),
                    Arc::new(rows.iter().map(|r| r.rows).collect::<UInt64Array>()),
                    Arc::new(rows.iter().map(|r| r.bytes).collect::<UInt64Array>()),
                    Arc::new(rows.iter().map(|r| r.duration_ms).collect::<Float64Array>()),
                    ask(&|a| Some(&a.question)),
                    ask(&|a| a.sql.as_deref()),
                    ask(&|a| Some(&a.model)),
                    Arc::new(
                        rows.iter()
                            .map(|r| r.ask.as_ref().map(|a| a.tries))
                            .collect::<UInt64Array>(),
                    ),
                    ask(&|a| Some(&a.outcome)),
                ]
            }
            Kind::Sessions => {
                let rows: Vec<_> = monitor
                    .sessions()
                    .into_iter()
                    .filter(|s| visible(s.user.as_deref()))
                    .collect();
                let micros =
                    |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_micros());
                vec![
                    Arc::new(
                        rows.iter()
                            .map(|s| Some(s.session_id.as_str()))
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| s.user.as_deref())
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| Some(s.client.as_str()))
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| Some(s.protocol.as_str()))
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| micros(Some(s.connected_at)))
                            .collect::<TimestampMicrosecondArray>()
                            .with_timezone("UTC"),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| micros(s.last_statement_at))
                            .collect::<TimestampMicrosecondArray>()
                            .with_timezone("UTC"),
                    ),
                    Arc::new(rows.iter().map(|s| s.statements).collect::<UInt64Array>()),
                    Arc::new(
                        rows.iter()
                            .map(|s| {
                                Some(if s.running.is_some() {
                                    "active"
                                } else {
                                    "idle"
                                })
                            })
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        rows.iter()
                            .map(|s| s.running.as_deref())
                            .collect::<StringArray>(),
                    ),
                ]
            }
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch()?;
        MemTable::try_new(batch.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
