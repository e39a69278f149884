//! Table-provider factories DataFusion lacks, registered in one place so the server
//! and the tests pick them up together. Shipped: `EXCEL` ([`excel`]). Still to come:
//! `POSTGRES`, `MYSQL`, `HTTP` and object-store registration.

pub mod excel;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers every connector on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    ctx.state_ref()
        .write()
        .table_factories_mut()
        .insert("EXCEL".to_string(), Arc::new(excel::ExcelTableFactory));
}
