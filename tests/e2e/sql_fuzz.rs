//! The SQL entry point under mutated input: statements a client could send, cut,
//! spliced and sprinkled with stray tokens, go through everything the server does with
//! SQL text (user-statement rewriting, redaction for the audit log, `?` placeholders,
//! parsing, planning and running). Each must end in a result or an error, never a
//! panic. Seeded, so a failure names the exact input and reproduces.

use std::time::Duration;

use insightflow_server::engine::{Engine, EngineOptions, StatementResult};
use insightflow_server::flight::positional_placeholders;
use insightflow_server::monitor::redact;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CORPUS: &[&str] = &[
    "SELECT region, sum(amount) AS revenue FROM sales GROUP BY region ORDER BY 2 DESC LIMIT 3",
    "WITH t AS (SELECT customer_id, count(*) AS n FROM sales GROUP BY 1) SELECT * FROM t WHERE n > $1",
    "SELECT s.*, c.name FROM sales s JOIN customers c ON s.customer_id = c.customer_id WHERE c.segment IN ('a', 'b')",
    "SELECT date_trunc('month', sale_date) m, avg(amount) OVER (ORDER BY sale_date ROWS 3 PRECEDING) FROM sales",
    "SELECT CAST('2024-01-01' AS DATE) + INTERVAL '1 day', 1/0, 'it''s', E'\\n', $$dollar$$",
    "CREATE USER fuzz_user WITH PASSWORD 'pw' LOGIN",
    "ALTER USER fuzz_user PASSWORD 'other'",
    "GRANT SELECT ON TABLE sales TO fuzz_user",
    "GRANT ALL ON SCHEMA public TO fuzz_user",
    "REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM fuzz_user",
    "DROP USER IF EXISTS fuzz_user",
    "CREATE TABLE fuzz_t (id INT, name VARCHAR)",
    "INSERT INTO fuzz_t VALUES (1, 'a'), (2, NULL)",
    "CREATE VIEW fuzz_v AS SELECT * FROM products WHERE price > 10",
    "CREATE EXTERNAL TABLE fuzz_e STORED AS CSV LOCATION 'demo/sales.csv' OPTIONS ('format.has_header' 'true', 'password' 'x')",
    "COPY (SELECT * FROM products) TO 'fuzz_out.csv' STORED AS CSV",
    "SELECT * FROM profile('products')",
    "SELECT * FROM quality('(SELECT * FROM customers)')",
    "SELECT * FROM ask('total revenue by region')",
    "SELECT ask_sql('top 3 products by revenue')",
    "SELECT * FROM information_schema.columns WHERE table_name = ?",
    "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(sales)$' COLLATE pg_catalog.default",
    "DROP TABLE IF EXISTS fuzz_t; DROP VIEW IF EXISTS fuzz_v",
    "SET statement_timeout = 100; SHOW ALL",
    "SELECT count(*) FROM system.query_log",
];

const STRAY: &[&str] = &[
    "(",
    ")",
    ",",
    "'",
    "\"",
    ";",
    "$1",
    "?",
    "NULL",
    "SELECT",
    "::",
    "USER",
    "PASSWORD",
    "--",
    "/*",
    "\\",
    "\0",
    "é",
    "🦀",
    "[",
    "]",
    "*",
    "ON",
    "TO",
    "GRANT",
    "ROLE",
    "E'",
    "$$",
    " ",
    "9999999999999999999999",
    "-",
    "'\\'",
    "IN ROLE",
    "WITH",
];

/// One random change to `sql`.
fn mutate(rng: &mut StdRng, sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let at = |rng: &mut StdRng| rng.gen_range(0..=chars.len());
    let text = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
    match rng.gen_range(0..5) {
        0 => text(0..at(rng)),
        1 => {
            let i = at(rng);
            let token = STRAY[rng.gen_range(0..STRAY.len())];
            format!("{}{token}{}", text(0..i), text(i..chars.len()))
        }
        2 => {
            let (a, b) = (at(rng), at(rng));
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}", text(0..a), text(b..chars.len()))
        }
        3 => {
            let (a, b) = (at(rng), at(rng));
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}{}", text(0..b), text(a..b), text(b..chars.len()))
        }
        _ => {
            let other = CORPUS[rng.gen_range(0..CORPUS.len())];
            let cut = other.len() / 2;
            let cut = (0..=cut)
                .rev()
                .find(|i| other.is_char_boundary(*i))
                .unwrap_or(0);
            format!("{}{}", text(0..at(rng)), &other[cut..])
        }
    }
}

/// Everything the server does with SQL text, to the last row. True if every
/// statement ran.
async fn run(engine: &Engine, sql: &str) -> bool {
    let _ = redact(sql);
    let sql = positional_placeholders(sql);
    let Ok(statements) = Engine::parse(&sql) else {
        return false;
    };
    for statement in statements {
        let result = tokio::time::timeout(Duration::from_secs(5), async {
            match engine.execute(statement).await {
                Ok(StatementResult::Rows(df)) => df.collect().await.map(|_| ()),
                Ok(StatementResult::Done(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sql_is_answered_or_refused_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&EngineOptions::new(dir.path())).await.unwrap();
    engine
        .as_system(insightflow_server::demo::install(&engine))
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0x1f5a_2026);
    let mut ran = 0;
    for round in 0..600 {
        let mut sql = CORPUS[round % CORPUS.len()].to_string();
        for _ in 0..rng.gen_range(0..4) {
            sql = mutate(&mut rng, &sql);
        }
        let worker = {
            let engine = engine.clone();
            let sql = sql.clone();
            tokio::spawn(async move { engine.as_system(run(&engine, &sql)).await })
        };
        match worker.await {
            Ok(all_ran) => ran += usize::from(all_ran),
            Err(e) => panic!("round {round}: the engine panicked on {sql:?}: {e}"),
        }
    }
    // Not only parse errors: a good share of the inputs ran all the way.
    assert!(ran >= 60, "only {ran} of 600 mutated inputs ran");
    // Still answering after all of it.
    let rows = engine
        .as_system(async {
            engine
                .query("SELECT count(*) FROM sales")
                .await?
                .collect()
                .await
        })
        .await
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);
}
