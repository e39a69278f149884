//! Analytic table functions and UDFs of InsightFlow (`profile`, `quality`, `anomalies`,
//! `forecast`, `insights`, `ask`). None is shipped yet: this crate holds the one place
//! they are registered, so the server and the tests pick them up together.

use datafusion::prelude::SessionContext;

/// Registers every InsightFlow function on `ctx`.
pub fn register_all(_ctx: &SessionContext) {}
