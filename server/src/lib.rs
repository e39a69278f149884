//! InsightFlow's server: the binary's CLI and config, the Postgres wire protocol and
//! Arrow Flight SQL front ends, HTTP, start-up, and the one session-context factory
//! ([`engine::Engine`]) that every front end and `insightflow sql` share.
//!
//! Analytic functions live in `insightflow-functions`, connectors in
//! `insightflow-connectors`, the persistent catalog in `insightflow-catalog`.

pub mod app;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod flight;
pub mod http;
pub mod monitor;
pub mod pg;
pub mod pg_compat;
pub mod sql_cli;
