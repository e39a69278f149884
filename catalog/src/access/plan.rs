//! [`CheckAccess`]: the analyzer rule that checks every plan's tables against the
//! caller's grants before anything runs.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::optimizer::AnalyzerRule;

use super::{current_caller, schema_and_name, Caller, Privilege};

/// Refuses a plan that reads (`SELECT`) or writes (`INSERT`, and `ALL` for other
/// changes) a catalog table the caller was not granted. Sub-queries, CTEs and expanded
/// views are part of the plan; table functions plan what they read through this same
/// rule. Names that are not tables of the catalog (`pg_catalog`, `information_schema`,
/// table functions, CTE work tables) are not checked here.
#[derive(Debug, Default)]
pub struct CheckAccess;

impl AnalyzerRule for CheckAccess {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let caller = current_caller()?;
        check_plan(&caller, &plan, &config.catalog.default_schema)?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "insightflow_check_access"
    }
}

/// Checks every table `plan` touches. A name without a schema is the table it was
/// resolved to: the one in `default_schema`, the session's (`SET search_path`).
pub fn check_plan(caller: &Caller, plan: &LogicalPlan, default_schema: &str) -> Result<()> {
    let Some(store) = caller.store() else {
        return Ok(());
    };
    let check = |privilege: Privilege, table: &TableReference| -> Result<()> {
        let table = match table {
            TableReference::Bare { table } => {
                TableReference::partial(default_schema, table.as_ref())
            }
            other => other.clone(),
        };
        let table = &table;
        let (schema, name) = schema_and_name(table);
        let is_catalog_table = store.read(|c| c.find_object(&schema, &name).is_some());
        if is_catalog_table {
            caller
                .check_table(privilege, table)
                .map_err(DataFusionError::from)?;
        }
        Ok(())
    };
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => check(Privilege::Select, &scan.table_name)?,
            LogicalPlan::Dml(dml) => {
                let wanted = match dml.op {
                    WriteOp::Insert(_) => Privilege::Insert,
                    _ => Privilege::All,
                };
                check(wanted, &dml.table_name)?;
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}
