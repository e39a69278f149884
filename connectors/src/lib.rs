//! Table-provider factories DataFusion lacks, registered in one place so the server
//! and the tests pick them up together. Shipped: `EXCEL` ([`excel`]), `POSTGRES` and
//! `MYSQL` ([`database`]). Still to come: `HTTP` and object-store registration.

pub mod database;
pub mod excel;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers every connector on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let factories = state.table_factories_mut();
    factories.insert("EXCEL".to_string(), Arc::new(excel::ExcelTableFactory));
    for db in [database::Database::Postgres, database::Database::MySql] {
        factories.insert(
            db.name().to_string(),
            Arc::new(database::DatabaseTableFactory(db)),
        );
    }
}
