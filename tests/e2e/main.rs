//! End-to-end tests: the real binary, driven by real clients.

#[path = "../common/mod.rs"]
mod common;

mod analytics;
mod ask;
mod compat;
mod connectors;
mod flight;
mod formats;
mod grants;
mod http_api;
mod limits;
mod managed;
mod monitor;
mod persistence;
mod pg_wire;
mod psql;
mod raw_protocol;
mod sessions;
mod sql_fuzz;
mod tls;
