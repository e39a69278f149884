//! Analytic table functions of InsightFlow.
//!
//! Each function takes a table or view name the caller can read, or a query in
//! parentheses, and answers with rows (see `DESIGN.md` for the columns). The work is
//! DataFusion aggregates over the input's plan, so it streams, runs under the memory
//! pool and stops when the query is cancelled. Shipped so far: `profile`. Still to come:
//! `quality`, `anomalies`, `forecast`, `insights`, `ask`.
//!
//! This crate has no sockets and no server code.

mod profile;
mod source;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use profile::ProfileFunc;

/// Registers every InsightFlow function on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    ctx.register_udtf("profile", Arc::new(ProfileFunc));
}
