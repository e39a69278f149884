//! Table-provider factories DataFusion lacks, registered in one place so the server
//! and the tests pick them up together. Shipped: `EXCEL` ([`excel`]), `POSTGRES` and
//! `MYSQL` ([`database`]), `HTTP` ([`http`]); and object stores (`s3://`, `gs://`,
//! `az://`, `http(s)://`) for DataFusion's own file formats ([`object_stores`]).

pub mod database;
pub mod excel;
pub mod http;
pub mod object_stores;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers every connector on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let factories = state.table_factories_mut();
    for format in ["PARQUET", "CSV", "JSON", "NDJSON", "AVRO", "ARROW"] {
        if let Some(inner) = factories.get(format).cloned() {
            let wrapped = object_stores::ObjectStoreTableFactory { inner };
            factories.insert(format.to_string(), Arc::new(wrapped));
        }
    }
    factories.insert("EXCEL".to_string(), Arc::new(excel::ExcelTableFactory));
    factories.insert("HTTP".to_string(), Arc::new(http::HttpTableFactory));
    for db in [database::Database::Postgres, database::Database::MySql] {
        factories.insert(
            db.name().to_string(),
            Arc::new(database::DatabaseTableFactory(db)),
        );
    }
}
