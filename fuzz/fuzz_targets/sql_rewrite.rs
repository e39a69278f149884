//! The SQL text every pg statement goes through before DataFusion sees it: parsing
//! (sqlparser, Postgres dialect) and InsightFlow's compatibility rewrites
//! (`server/src/pg_compat/rewrite/`, compiled here from the server's own file).
//!
//! Properties: nothing panics, and when a rewrite changes a statement the result still
//! parses (a rewrite may never turn valid SQL into something the engine cannot read).
//! Planning and running are covered by the seeded mutation test `tests/e2e/sql_fuzz.rs`,
//! which drives the whole engine; DataFusion is too large to build under libFuzzer here.
#![no_main]

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use libfuzzer_sys::fuzz_target;

#[path = "../../server/src/pg_compat/rewrite/mod.rs"]
#[allow(dead_code)]
mod rewrite;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(text) else {
        return;
    };
    // Which of $1..$8 the client typed, from the first byte.
    let typed: Vec<bool> = (0..8).map(|i| flags & (1 << i) != 0).collect();
    let rewritten = rewrite::rewrite_sql(sql, &typed);
    if rewritten != sql {
        if let Err(e) = Parser::parse_sql(&PostgreSqlDialect {}, &rewritten) {
            panic!("the rewrite of {sql:?} does not parse: {e}\n{rewritten}");
        }
    }
});
