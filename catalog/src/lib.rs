//! The persistent catalog of InsightFlow.
//!
//! DataFusion keeps its catalog in memory. This crate makes the parts a user creates —
//! schemas, external tables, views, managed tables and users — survive a restart or a `kill -9`:
//! every successful DDL statement is recorded in `<data-dir>/catalog.json`, written
//! atomically (temp file, fsync, rename, fsync of the directory), and replayed into a
//! fresh `SessionContext` at start-up.
//!
//! It owns: the catalog file ([`CatalogStore`]), the DDL that changes it
//! ([`Catalog::execute`]), the users and their SCRAM verifiers, and the allowed roots
//! for local files. It does not own the wire protocols, analytic functions or
//! connectors.

pub mod access;
mod catalog;
mod ddl;
mod error;
mod managed;
mod paths;
pub mod secrets;
mod store;
mod users;

pub use access::Caller;
pub use catalog::{rows_affected, Catalog, CatalogOutcome, DEFAULT_CATALOG, DEFAULT_SCHEMA};
pub use error::{Error, Result};
pub use managed::{tables_dir, ManagedTable, COMPACT_AT};
pub use paths::AllowedRoots;
pub use store::{CatalogStore, ExternalTableDef, ManagedTableDef, ObjectDef, ViewDef};
pub use users::{RoleLimits, ScramVerifier, UserDef, SCRAM_ITERATIONS};
