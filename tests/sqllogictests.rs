//! The sqllogictest runner: every `tests/slt/*.slt` file runs twice, in-process on the
//! same session-context factory the server uses, and over pgwire against the real
//! server. Errors are shown as `SQLSTATE: message` by both engines, so a file can
//! expect `statement error 42P01` and mean the same thing in both.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use insightflow_server::engine::{Engine, EngineOptions, StatementResult};
use insightflow_server::error::classify;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::SimpleQueryMessage;

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// One value as .slt files write it. Whole floats lose their `.0`, because Arrow prints
/// `6000.0` where Postgres' text encoding prints `6000`.
fn cell(text: Option<&str>) -> String {
    match text {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(s) => match s.strip_suffix(".0") {
            Some(whole) if whole.parse::<i64>().is_ok() => whole.to_string(),
            _ => s.to_string(),
        },
    }
}

/// The engine in this process, as `insightflow sql` uses it.
struct InProcess {
    engine: Engine,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl AsyncDB for InProcess {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let engine = self.engine.clone();
        engine.as_system(self.run_as_system(sql)).await
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "in-process"
    }
}

impl InProcess {
    async fn run_as_system(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let err = |e: datafusion::error::DataFusionError| {
            let c = classify(&e);
            SltError(format!("{}: {}", c.sqlstate, c.message))
        };
        let mut results = self.engine.sql(sql).await.map_err(err)?;
        let last = results
            .pop()
            .ok_or_else(|| SltError("no statement".into()))?;
        let df = match last {
            StatementResult::Done(outcome) => {
                return Ok(DBOutput::StatementComplete(outcome.rows.unwrap_or(0) as u64))
            }
            StatementResult::Rows(df) => df,
        };
        let columns = df.schema().fields().len();
        let batches = df.collect().await.map_err(err)?;
        if columns == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SltError(e.to_string()))?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| {
                            if c.is_null(row) {
                                "NULL".to_string()
                            } else {
                                cell(Some(&f.value(row).to_string()))
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }
}

/// The real server, over pgwire with tokio-postgres's simple query protocol.
struct OverPg {
    client: tokio_postgres::Client,
    _server: common::TestServer,
}

#[async_trait]
impl AsyncDB for OverPg {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => SltError(format!("{}: {}", db.code().code(), db.message())),
                None => SltError(e.to_string()),
            })?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut affected = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    columns = Some(cols.len());
                    rows.clear();
                }
                SimpleQueryMessage::Row(row) => rows.push(
                    (0..row.len())
                        .map(|i| match row.get(i) {
                            Some("t") => "true".to_string(),
                            Some("f") => "false".to_string(),
                            other => cell(other),
                        })
                        .collect(),
                ),
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) if n > 0 => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            _ => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "pgwire"
    }
}

async fn in_process() -> Result<InProcess, SltError> {
    let dir = tempfile::tempdir().map_err(|e| SltError(e.to_string()))?;
    let engine = Engine::open(&EngineOptions::new(dir.path()))
        .await
        .map_err(|e| SltError(e.to_string()))?;
    engine
        .as_system(insightflow_server::demo::install(&engine))
        .await
        .map_err(|e| SltError(e.to_string()))?;
    Ok(InProcess { engine, _dir: dir })
}

async fn over_pg() -> Result<OverPg, SltError> {
    let server = common::TestServer::spawn();
    let client = server.pg_client().await;
    Ok(OverPg {
        client,
        _server: server,
    })
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() {
    // Test lists (cargo nextest --list) see no libtest tests here: this runner is driven
    // by `cargo test --test sqllogictests [FILTER]`.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut passed = 0;
    let mut failed = 0;
    for file in slt_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        for engine in ["in-process", "pgwire"] {
            let result = if engine == "in-process" {
                let mut runner = Runner::new(in_process);
                runner.with_column_validator(|_, _| true);
                runner.run_file_async(&file).await
            } else {
                let mut runner = Runner::new(over_pg);
                runner.with_column_validator(|_, _| true);
                runner.run_file_async(&file).await
            };
            match result {
                Ok(()) => {
                    println!("PASS {name} [{engine}]");
                    passed += 1;
                }
                Err(e) => {
                    println!("FAIL {name} [{engine}]\n{}", e.display(true));
                    failed += 1;
                }
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
