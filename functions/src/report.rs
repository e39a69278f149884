//! The shape every analytic function shares: a source in, a small report out.
//!
//! A [`Report`] says what its rows look like and how to compute them from a
//! [`Source`]; [`ReportFunc`] turns it into a DataFusion table function. `call` only
//! reads the arguments; the work runs when the table is scanned, as DataFusion
//! queries over the source's plan (under the session's memory pool, cancelled with the
//! query).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::source::Source;

/// One analytic function's logic.
#[async_trait]
pub(crate) trait Report: Debug + Send + Sync + Sized + 'static {
    /// The SQL name, for error messages.
    const NAME: &'static str;
    /// Reads the arguments after the source (none for most reports).
    fn from_args(args: &[Expr]) -> Result<Self>;
    /// The output columns (part of the contract).
    fn schema(&self) -> SchemaRef;
    /// Computes the rows.
    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch>;
}

/// `from_args` of a report that takes only the source.
pub(crate) fn no_more_args<R: Default>(name: &str, args: &[Expr]) -> Result<R> {
    if args.is_empty() {
        Ok(R::default())
    } else {
        plan_err!(
            "{name} expects (table_name), got {} arguments",
            args.len() + 1
        )
    }
}

/// A [`Report`] as a table function: `SELECT * FROM name('table')`.
#[derive(Debug, Default)]
pub struct ReportFunc<R>(PhantomData<R>);

impl<R: Report> TableFunctionImpl for ReportFunc<R> {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() {
            return plan_err!("{} expects (table_name), got 0 arguments", R::NAME);
        }
        let source = Source::from_arg(R::NAME, exprs.first())?;
        let report = R::from_args(&exprs[1..])?;
        Ok(Arc::new(ReportTable { source, report }))
    }
}

#[derive(Debug)]
struct ReportTable<R> {
    source: Source,
    report: R,
}

#[async_trait]
impl<R: Report> TableProvider for ReportTable<R> {
    fn schema(&self) -> SchemaRef {
        self.report.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!("{} needs a SessionState", R::NAME))
            })?;
        let batch = self.report.compute(state, &self.source).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.report.schema(),
            projection.cloned(),
        )?)
    }
}
