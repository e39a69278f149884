//! The one gate every generated query passes before it runs.
//!
//! A candidate must be exactly one read-only query (`SELECT` or `WITH`), call no table
//! function but the analytic ones, read no system schema, and plan in DataFusion — which
//! proves every table and column exists. A query without `LIMIT` gets
//! [`super::DEFAULT_LIMIT`]. Grants will be checked here as soon as they exist, through
//! the same plan walk.

use insightflow_catalog::access::Caller;
use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use super::schema::SYSTEM_SCHEMAS;

/// Table functions a generated query may call: they only read what they are given.
const ALLOWED_TABLE_FUNCTIONS: [&str; 8] = [
    "profile",
    "quality",
    "anomalies",
    "forecast",
    "insights",
    "generate_series",
    "range",
    "unnest",
];

/// A query that passed every check, with its plan.
#[derive(Debug)]
pub struct Validated {
    /// The SQL that runs (with the default `LIMIT` when it had none).
    pub sql: String,
    pub plan: LogicalPlan,
}

/// Why a candidate was rejected.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Not a read-only query over readable tables: never runs.
    #[error("{0}")]
    Refused(String),
    /// A query, but it does not plan.
    #[error("{0}")]
    Invalid(DataFusionError),
}

/// Checks `sql` and plans it against `state`.
pub async fn validate(
    state: &SessionState,
    sql: &str,
    default_limit: usize,
) -> Result<Validated, Rejection> {
    let refuse = |why: &str| Err(Rejection::Refused(why.to_string()));
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}).map_err(Rejection::Invalid)?;
    if statements.len() != 1 {
        return refuse("only one statement may run, a single SELECT");
    }
    let Some(DFStatement::Statement(statement)) = statements.pop_front() else {
        return refuse("only a read-only SELECT may run, not DDL, COPY or EXPLAIN");
    };
    let Statement::Query(mut query) = *statement else {
        return refuse("only a read-only SELECT may run, not DDL, DML, COPY or SET");
    };
    if let ControlFlow::Break(why) = query.visit(&mut ReadOnly) {
        return Err(Rejection::Refused(why));
    }
    if query.limit_clause.is_none() && query.fetch.is_none() {
        query.limit_clause = Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset {
            limit: Some(Expr::value(datafusion::sql::sqlparser::ast::Value::Number(
                default_limit.to_string(),
                false,
            ))),
            offset: None,
            limit_by: vec![],
        });
    }
    let sql = query.to_string();
    let plan = state
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(query))))
        .await
        .map_err(Rejection::Invalid)?;
    check_plan(&plan, &state.config_options().catalog.default_schema)?;
    Ok(Validated { sql, plan })
}

/// Refuses writes, system schemas and table functions that read files.
struct ReadOnly;

impl Visitor for ReadOnly {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        let function = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name),
            TableFactor::Function { name, .. } => Some(name),
            _ => None,
        };
        if let Some(name) = function {
            let base = last_part(name);
            if !ALLOWED_TABLE_FUNCTIONS.contains(&base.as_str()) {
                return ControlFlow::Break(format!(
                    "table function {base} may not run from ask; allowed: {}",
                    ALLOWED_TABLE_FUNCTIONS.join(", ")
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        let parts: Vec<String> = relation
            .0
            .iter()
            .map(|p| p.to_string().trim_matches('"').to_lowercase())
            .collect();
        if parts.len() > 1 && SYSTEM_SCHEMAS.contains(&parts[parts.len() - 2].as_str()) {
            return ControlFlow::Break(format!(
                "{relation} is a system table; ask reads user tables only"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(f) = expr {
            let name = last_part(&f.name);
            if name.starts_with("ask") || name == "set_config" || name.starts_with("pg_read") {
                return ControlFlow::Break(format!("function {name} may not run from ask"));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, _: &Statement) -> ControlFlow<String> {
        ControlFlow::Break("only a read-only SELECT may run".into())
    }
}

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| p.to_string().trim_matches('"').to_lowercase())
        .unwrap_or_default()
}

/// What the plan reads: only user tables (the AST check cannot see unqualified names
/// that resolve into a system schema).
fn check_plan(plan: &LogicalPlan, default_schema: &str) -> Result<(), Rejection> {
    let mut refused = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(schema) = scan.table_name.schema() {
                if SYSTEM_SCHEMAS.contains(&schema) {
                    refused = Some(format!(
                        "{} is a system table; ask reads user tables only",
                        scan.table_name
                    ));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        if matches!(
            node,
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_)
        ) {
            refused = Some("only a read-only SELECT may run".to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if let (None, Some(caller)) = (&refused, Caller::current()) {
        if let Err(e) = insightflow_catalog::access::check_plan(&caller, plan, default_schema) {
            refused = Some(e.strip_backtrace());
        }
    }
    match refused {
        Some(why) => Err(Rejection::Refused(why)),
        None => Ok(()),
    }
}
