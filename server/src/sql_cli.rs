//! `insightflow sql`: run SQL against a data dir without a server.

use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::config::{SqlArgs, DEFAULT_DATA_DIR};
use crate::engine::{Engine, EngineOptions, StatementResult};

pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let sql = match (&args.file, &args.sql) {
        (Some(path), _) => std::fs::read_to_string(path)?,
        (None, Some(sql)) => sql.clone(),
        (None, None) => anyhow::bail!("give SQL as an argument or a file with -f"),
    };
    let mut options = EngineOptions::new(args.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()));
    options.allow_paths = args.allow_path;
    let engine = Engine::open(&options).await?;
    engine.as_system(run_all(&engine, &sql)).await
}

/// The embedded CLI has every right: whoever can run it can read the data dir.
async fn run_all(engine: &Engine, sql: &str) -> anyhow::Result<()> {
    for stmt in Engine::parse(sql)? {
        match engine.execute(stmt).await? {
            StatementResult::Rows(df) => {
                let batches = df.collect().await?;
                println!("{}", pretty_format_batches(&batches)?);
            }
            StatementResult::Done(outcome) => match outcome.rows {
                Some(n) => println!("{} {n}", outcome.tag),
                None => println!("{}", outcome.tag),
            },
        }
    }
    Ok(())
}
