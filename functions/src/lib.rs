//! Analytic table functions of InsightFlow.
//!
//! Each function takes a table or view name the caller can read, or a query in
//! parentheses, and answers with rows (see `DESIGN.md` for the columns). The work is
//! DataFusion aggregates over the input's plan, so it runs under the session's memory
//! pool and stops when the query is cancelled: `profile`, `quality`, `anomalies`,
//! `forecast` and `insights`. [`ask`] answers questions in plain language with
//! validated SQL (`ask`, `ask_sql`).
//!
//! This crate has no sockets and no server code.

mod anomalies;
pub mod ask;
mod forecast;
mod insights;
mod profile;
mod quality;
mod quartiles;
mod report;
mod series;
mod source;
mod stats;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use anomalies::Anomalies;
pub use forecast::ForecastReport;
pub use insights::Insights;
pub use profile::Profile;
pub use quality::Quality;
pub use report::ReportFunc;

/// Registers every InsightFlow function on `ctx`; `asker` answers `ask` questions.
pub fn register_all(ctx: &SessionContext, asker: ask::Asker) {
    ask::register(ctx, asker);
    ctx.register_udtf("profile", Arc::new(ReportFunc::<Profile>::default()));
    ctx.register_udtf("quality", Arc::new(ReportFunc::<Quality>::default()));
    ctx.register_udtf("anomalies", Arc::new(ReportFunc::<Anomalies>::default()));
    ctx.register_udtf(
        "forecast",
        Arc::new(ReportFunc::<ForecastReport>::default()),
    );
    ctx.register_udtf("insights", Arc::new(ReportFunc::<Insights>::default()));
}
