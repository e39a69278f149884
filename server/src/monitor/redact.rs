//! Secrets out of statement text before it is logged or shown in `system.query_log`.
//!
//! What is hidden: the literal after `PASSWORD`, the value of any OPTIONS key that
//! names a secret (`'password' '...'`, `'aws.secret_access_key' '...'`, `token`, ...),
//! and the password inside a URL (`postgres://u:secret@h/db`) or a `password=...`
//! connection-string pair. The rest of the statement stays as written, so the log
//! still says what ran. Text the tokenizer cannot read has every string literal
//! hidden: when in doubt, hide.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use insightflow_catalog::secrets::is_secret_key;
use regex::Regex;
use std::sync::LazyLock;

const HIDDEN: &str = "***";

static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@").unwrap());
static PAIR_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(password|passwd|pwd)\s*=\s*[^\s;]*").unwrap());
/// A string literal, or an unterminated one running to the end.
static ANY_LITERAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"'(?:[^']|'')*(?:'|$)").unwrap());

/// `sql` with its secrets replaced by `***`.
pub fn redact(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return ANY_LITERAL.replace_all(sql, "'***'").into_owned();
    };
    let mut out = String::with_capacity(sql.len());
    // The last significant token, and the one before it.
    let mut last: Option<&Token> = None;
    let mut before_last: Option<&Token> = None;
    for token in &tokens {
        let text = match token {
            Token::SingleQuotedString(value) => {
                if follows_secret_name(last, before_last) {
                    format!("'{HIDDEN}'")
                } else {
                    Token::SingleQuotedString(hide_embedded(value)).to_string()
                }
            }
            other => other.to_string(),
        };
        out.push_str(&text);
        if !matches!(token, Token::Whitespace(_)) {
            before_last = last;
            last = Some(token);
        }
    }
    out
}

/// Whether a literal after these tokens is a secret: `PASSWORD '...'`, `'key' '...'`,
/// `key '...'` or `key = '...'` where the key names a secret.
fn follows_secret_name(last: Option<&Token>, before_last: Option<&Token>) -> bool {
    let name = match (last, before_last) {
        (Some(Token::Eq), Some(name)) => name,
        (Some(name), _) => name,
        _ => return false,
    };
    match name {
        Token::Word(Word {
            keyword: Keyword::PASSWORD,
            ..
        }) => true,
        Token::Word(word) => is_secret_key(&word.value),
        Token::SingleQuotedString(key) => is_secret_key(key),
        _ => false,
    }
}

/// Passwords inside a longer string: URLs and `password=` pairs.
fn hide_embedded(value: &str) -> String {
    let value = URL_PASSWORD.replace_all(value, format!("${{1}}{HIDDEN}@"));
    PAIR_PASSWORD
        .replace_all(&value, format!("${{1}}={HIDDEN}"))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_of_users_are_hidden() {
        assert_eq!(
            redact("CREATE USER bob WITH PASSWORD 'hunter2'"),
            "CREATE USER bob WITH PASSWORD '***'"
        );
        assert_eq!(
            redact("alter role bob password 'it''s secret' login"),
            "alter role bob password '***' login"
        );
    }

    #[test]
    fn secret_options_are_hidden_and_others_kept() {
        let sql = "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t/' \
                   OPTIONS ('aws.access_key_id' 'AKIA', 'aws.secret_access_key' 's3cr3t', \
                   'aws.region' 'us-east-1', token = 'abc')";
        let out = redact(sql);
        assert!(
            !out.contains("s3cr3t") && !out.contains("AKIA") && !out.contains("abc"),
            "{out}"
        );
        assert!(out.contains("'aws.region' 'us-east-1'"), "{out}");
        assert!(out.contains("LOCATION 's3://b/t/'"), "{out}");
    }

    #[test]
    fn passwords_in_connection_strings_are_hidden() {
        let out = redact(
            "CREATE EXTERNAL TABLE p STORED AS POSTGRES LOCATION 'postgres://app:pa55@db:5432/x' \
             OPTIONS ('connection' 'host=db user=app password=pa55 dbname=x')",
        );
        assert!(!out.contains("pa55"), "{out}");
        assert!(out.contains("postgres://app:***@db:5432/x"), "{out}");
        assert!(out.contains("user=app password=*** dbname=x"), "{out}");
    }

    #[test]
    fn ordinary_statements_are_unchanged() {
        let sql = "SELECT region, sum(amount) FROM sales WHERE region = 'North' GROUP BY 1";
        assert_eq!(redact(sql), sql);
    }

    #[test]
    fn unreadable_text_hides_every_literal() {
        assert_eq!(
            redact("CREATE USER x PASSWORD 'abc"),
            "CREATE USER x PASSWORD '***'"
        );
        assert_eq!(redact("SELECT 'a' $$ 'b'"), "SELECT '***' $$ '***'");
    }
}
