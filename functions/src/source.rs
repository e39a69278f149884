//! The input of an analytic function: a table or view name, or `(query)`.

use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::prelude::DataFrame;

/// What a function reads, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `sales`, `finance.revenue`, `"Mixed Case"`
    Table(String),
    /// `(SELECT ...)`
    Query(String),
}

impl Source {
    /// Reads the first argument of `function`: a string literal.
    pub(crate) fn from_arg(function: &str, arg: Option<&Expr>) -> Result<Self> {
        let text = match arg.map(|e| (e, string_literal(e))) {
            Some((_, Some(s))) => s.trim().to_string(),
            Some((other, None)) => {
                return plan_err!("{function} expects a table name or a (query) as a string, like {function}('sales'), got {other}")
            }
            None => return plan_err!("{function} expects a table name or a (query), like {function}('sales')"),
        };
        if text.starts_with('(') && text.ends_with(')') {
            return Ok(Source::Query(text[1..text.len() - 1].to_string()));
        }
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | ' ' | '$'));
        if !valid {
            return plan_err!("{function}: '{text}' is not a table name; pass a name like 'sales' or a query in parentheses like '(SELECT ...)'");
        }
        Ok(Source::Table(text))
    }

    /// The argument that names this source again, as a SQL string literal.
    pub(crate) fn as_literal(&self) -> String {
        let text = match self {
            Source::Table(name) => name.clone(),
            Source::Query(sql) => format!("({sql})"),
        };
        format!("'{}'", text.replace('\'', "''"))
    }

    /// The `FROM` item for SQL over this source.
    pub(crate) fn relation_sql(&self) -> String {
        match self {
            Source::Table(name) => name.clone(),
            Source::Query(sql) => format!("({sql}) AS source"),
        }
    }

    /// Runs `SELECT {select} FROM source {rest}`.
    pub(crate) async fn sql(
        &self,
        state: &SessionState,
        select: &str,
        rest: &str,
    ) -> Result<DataFrame> {
        let sql = format!("SELECT {select} FROM {} {rest}", self.relation_sql());
        let plan = state.create_logical_plan(&sql).await?;
        Ok(DataFrame::new(state.clone(), plan))
    }
}

/// The text of a string literal argument.
pub(crate) fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

/// Double-quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::lit;

    #[test]
    fn names_queries_and_mistakes() {
        assert_eq!(
            Source::from_arg("f", Some(&lit("sales"))).unwrap(),
            Source::Table("sales".into())
        );
        assert_eq!(
            Source::from_arg("f", Some(&lit("(SELECT 1)"))).unwrap(),
            Source::Query("SELECT 1".into())
        );
        assert!(Source::from_arg("f", None).is_err());
        assert!(Source::from_arg("f", Some(&lit(1))).is_err());
        assert!(Source::from_arg("f", Some(&lit("sales; DROP TABLE x"))).is_err());
    }
}
