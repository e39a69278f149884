//! Embedded DataFusion: the peer that shows what InsightFlow's server adds or loses.
//!
//! It runs the same queries over the same Parquet files in-process, with the DataFusion
//! version InsightFlow is built on and DataFusion's default configuration, and no wire,
//! catalog or access checks in between. `benchmarks/run.py tpch` starts it and compares.
//!
//! ```text
//! df-embedded --data DIR --queries DIR --runs 3 q1 q6
//! ```
//! registers every `*.parquet` file or directory in `DIR` as a table named after it, and
//! prints one JSON line per query: `{"query":"q1","seconds":[...],"rows":4}`. Every run
//! is timed; the harness drops the warm-up run itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

#[derive(Parser)]
struct Args {
    /// Folder of Parquet tables (a file `t.parquet` or a folder `t/` of Parquet files each).
    #[arg(long)]
    data: PathBuf,
    /// Folder of `<query>.sql` files; a file may hold several statements.
    #[arg(long)]
    queries: PathBuf,
    /// Times each query runs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Query names (file stems) to run.
    names: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = SessionContext::new();
    register_tables(&ctx, &args.data).await?;
    for name in &args.names {
        let sql = std::fs::read_to_string(args.queries.join(format!("{name}.sql")))?;
        let mut seconds = Vec::with_capacity(args.runs);
        let mut rows = 0;
        for _ in 0..args.runs {
            let start = Instant::now();
            rows = run_script(&ctx, &sql).await?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        let line = serde_json::json!({"query": name, "seconds": seconds, "rows": rows});
        println!("{line}");
    }
    Ok(())
}

async fn register_tables(ctx: &SessionContext, data: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(data)? {
        let path = entry?.path();
        let is_table = path.is_dir() || path.extension().is_some_and(|e| e == "parquet");
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| is_table)
        else {
            continue;
        };
        let location = path.to_string_lossy();
        ctx.register_parquet(name, location.as_ref(), ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}

/// Runs each statement of `sql` and collects its rows; returns the rows of the last
/// statement that returned any (TPC-H q15 creates and drops a view around its query).
async fn run_script(ctx: &SessionContext, sql: &str) -> anyhow::Result<usize> {
    let mut rows = 0;
    for statement in sql.split(';').filter(|s| has_code(s)) {
        let batches = ctx.sql(statement).await?.collect().await?;
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        if n > 0 {
            rows = n;
        }
    }
    Ok(rows)
}

/// Whether a piece of a script holds more than whitespace and `--` comments.
fn has_code(piece: &str) -> bool {
    piece
        .lines()
        .map(str::trim)
        .any(|line| !line.is_empty() && !line.starts_with("--"))
}
