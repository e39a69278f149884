//! What Postgres clients need that DataFusion and datafusion-postgres lack or answer
//! differently: functions ([`functions`]), small syntax rewrites ([`rewrite`]),
//! corrected `pg_catalog` tables ([`tables`]) and Postgres' `information_schema`
//! ([`information_schema`]).
//!
//! SQLAlchemy parses `version()`, pgjdbc and psql read `server_version`: both must say
//! PostgreSQL 16 while naming InsightFlow.

mod functions;
mod information_schema;
pub mod rewrite;
mod tables;

pub use functions::register_domain_base_type;
pub use information_schema::{pg_type, PgInformationSchema};
pub use rewrite::rewrite_sql;
pub use tables::patch as patch_pg_catalog;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// What `server_version` reports at start-up and in `SHOW server_version`.
pub const SERVER_VERSION: &str = "16.6";

/// The text of `SELECT version()`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (InsightFlow {}, Apache DataFusion {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

pub fn register(ctx: &SessionContext) {
    let version = version_string();
    let udf = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    );
    ctx.register_udf(udf);

    let to_regtype = create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = cast(&arrays[0], &DataType::Utf8)?;
            let names = as_string_array(&names)?;
            let oids: Int64Array = names.iter().map(|n| n.and_then(builtin_type_oid)).collect();
            let out: ArrayRef = Arc::new(oids);
            Ok(
                if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
                } else {
                    ColumnarValue::Array(out)
                },
            )
        }),
    );
    ctx.register_udf(to_regtype);
    functions::register(ctx);
}

/// The OID of a built-in type by any of its Postgres names (`to_regtype`); `None` for
/// types InsightFlow does not have (psycopg asks for `hstore` and expects NULL).
pub fn builtin_type_oid(name: &str) -> Option<i64> {
    let name = name.trim().trim_start_matches("pg_catalog.").to_lowercase();
    Some(match name.as_str() {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

/// The Postgres name of a built-in type by its OID (`format_type` of argument lists).
pub fn builtin_type_name(oid: i64) -> Option<&'static str> {
    Some(match oid {
        16 => "boolean",
        17 => "bytea",
        18 => "\"char\"",
        19 => "name",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        25 => "text",
        26 => "oid",
        114 => "json",
        700 => "real",
        701 => "double precision",
        1043 => "character varying",
        1082 => "date",
        1083 => "time without time zone",
        1114 => "timestamp without time zone",
        1184 => "timestamp with time zone",
        1186 => "interval",
        1700 => "numeric",
        2275 => "cstring",
        2276 => "any",
        2277 => "anyarray",
        2950 => "uuid",
        3802 => "jsonb",
        _ => return None,
    })
}

/// A statement of a simple-protocol query that the session answers itself.
#[derive(Debug, PartialEq)]
pub enum SessionStatement {
    /// SQL for the engine.
    Sql(String),
    /// `UNLISTEN ...`: InsightFlow has no `LISTEN` channels, so nothing to do.
    Unlisten,
    /// `RESET ALL`: the session's parameters go back to the server's defaults.
    ResetAll,
}

/// A simple-protocol query split where it holds `UNLISTEN` (which DataFusion's parser
/// does not know) or `RESET ALL`: asyncpg's pool reset sends
/// `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`.
/// `None` when the query holds neither.
pub fn split_session_statements(sql: &str) -> Option<Vec<SessionStatement>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("UNLISTEN") && !upper.contains("RESET") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut statements: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        if token == Token::SemiColon {
            statements.push(Vec::new());
        } else {
            statements.last_mut().expect("never empty").push(token);
        }
    }
    let pieces: Vec<SessionStatement> = statements
        .into_iter()
        .filter_map(|s| {
            let words: Vec<String> = s
                .iter()
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .map(|t| t.to_string().to_ascii_uppercase())
                .collect();
            match words
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                [] => None,
                ["UNLISTEN", ..] => Some(SessionStatement::Unlisten),
                ["RESET", "ALL"] => Some(SessionStatement::ResetAll),
                _ => Some(SessionStatement::Sql(
                    s.iter().map(|t| t.to_string()).collect(),
                )),
            }
        })
        .collect();
    pieces
        .iter()
        .any(|p| !matches!(p, SessionStatement::Sql(_)))
        .then_some(pieces)
}

#[cfg(test)]
mod tests {
    use super::{split_session_statements, SessionStatement};

    #[test]
    fn asyncpg_pool_reset_is_split() {
        let reset = "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;";
        let pieces = split_session_statements(reset).unwrap();
        assert_eq!(pieces.len(), 4);
        assert_eq!(
            pieces[0],
            SessionStatement::Sql("SELECT pg_advisory_unlock_all()".into())
        );
        assert_eq!(pieces[2], SessionStatement::Unlisten);
        assert_eq!(pieces[3], SessionStatement::ResetAll);
        assert!(split_session_statements("SELECT 'reset all'").is_none());
    }
}
