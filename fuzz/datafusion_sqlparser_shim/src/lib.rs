//! `datafusion::sql::sqlparser`, and nothing else (see Cargo.toml).
pub mod sql {
    pub use sqlparser;
}
