//! Table-provider factories DataFusion lacks, registered in one place so the server
//! and the tests pick them up together. Shipped: `EXCEL` ([`excel`]), `POSTGRES` and
//! `MYSQL` ([`database`]), `HTTP` ([`http`]). Still to come: object-store registration.

pub mod database;
pub mod excel;
pub mod http;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers every connector on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let factories = state.table_factories_mut();
    factories.insert("EXCEL".to_string(), Arc::new(excel::ExcelTableFactory));
    factories.insert("HTTP".to_string(), Arc::new(http::HttpTableFactory));
    for db in [database::Database::Postgres, database::Database::MySql] {
        factories.insert(
            db.name().to_string(),
            Arc::new(database::DatabaseTableFactory(db)),
        );
    }
}
