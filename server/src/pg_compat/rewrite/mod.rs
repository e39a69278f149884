//! Small syntax rewrites for Postgres constructs DataFusion does not plan, applied to the
//! SQL of pg clients before datafusion-postgres' own compatibility rules. The rules live
//! by where they apply: [`expressions`] and [`select`] for any SQL, [`catalog`] only in
//! queries over the system catalogs.
//!
//! Each rule turns one construct into its exact equivalent, never a whole query into a
//! canned answer:
//! - `ARRAY(SELECT e FROM ...)` becomes `(SELECT array_agg(e) FROM ...)` (psql `\du`,
//!   `\d+`).
//! - `LIKE p ESCAPE 'c'` with an escape character other than backslash becomes a LIKE
//!   whose pattern has `c` turned into backslash (SQLAlchemy's schema listing).
//! - `'name'::regproc` becomes the function's name: InsightFlow's `pg_type.typinput`
//!   and friends hold names, so comparing names is comparing the functions (pgjdbc).
//! - `pg_get_viewdef(oid)`, `pg_get_function_result(oid)` and
//!   `pg_get_function_arguments(oid)` become look-ups of the object by oid in the
//!   catalog tables (`max(...)` of a one-row sub-query), so they answer from the live
//!   catalog (psql `\d+ v`, `\df`).
//! - The set-returning `generate_subscripts(a, d)` and `_pg_expandarray(a)` become
//!   `unnest` over arrays as long as `a` (SQLAlchemy's and pgjdbc's index queries).
//! - `FROM unnest(a) x` and `FROM generate_series(...) x` get the column alias `x(x)`,
//!   as Postgres names it (psql, Grafana); a scalar function in FROM becomes a one-row
//!   derived table (Grafana's search_path lookup).
//! - `x = ANY($1)` with an untyped `$1` reads it as a text array (node-postgres).
//! - `(expr).field` becomes `get_field(expr, 'field')` (pgjdbc).
//! - In catalog queries, an integer array literal `'{0}'` compared with `=` becomes
//!   `make_array(0)` (psql's policy footer).
//! - asyncpg's recursive walk from a domain to its base type becomes
//!   `pg_domain_base_type(oid)`.
//! - In catalog queries, `x IN (SELECT ...)` becomes `array_has` over the sub-query's
//!   `array_agg` (Grafana).
//! - An ORDER BY key holding a sub-query is computed in a derived table (Grafana).
//! - A repeated unnamed select item (`SELECT NULL, NULL`) gets an alias (psql).
//! - In queries over the system catalogs, a scalar sub-query that returns one column
//!   without aggregating gets `max(...)` around that column: DataFusion plans a
//!   correlated scalar sub-query only when it aggregates, and the catalog sub-queries
//!   clients send look rows up by oid, so there is at most one row (pgjdbc, Metabase).

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, Query, SelectItem, SetExpr, Statement, Value, VisitMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

mod catalog;
mod expressions;
mod select;

use catalog::{
    aggregate_scalar_subquery, aliases_of_empty_tables, array_literal, domain_base_walk,
    in_subquery_as_array, never_answers, null_column, reads_system_catalog,
};
use expressions::{
    any_of_untyped_parameter, array_subquery, bare_user, catalog_lookup, field_of_expression,
    like_escape, regproc_literal,
};
use select::{sort_by_subquery, UniqueItemNames, UnnestColumnAlias};

/// `sql` with the rewrites applied, or `sql` itself when none applies (or it does not
/// parse: the error then comes from the real parser). `typed_params[i]` says whether
/// the client gave `$i+1` a type.
pub fn rewrite_sql<'a>(sql: &'a str, typed_params: &[bool]) -> Cow<'a, str> {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    let mut changed = false;
    for statement in &mut statements {
        changed |= rewrite_statement(statement, typed_params);
    }
    if !changed {
        return Cow::Borrowed(sql);
    }
    let text = statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(";\n");
    // sqlparser cannot read back all it prints (`c.x . 0` prints as `c.x.0`, found by
    // the `sql_rewrite` fuzz target): a rewrite never turns SQL that parses into SQL
    // that does not.
    if Parser::parse_sql(&PostgreSqlDialect {}, &text).is_err() {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(text)
}

fn rewrite_statement(statement: &mut Statement, typed_params: &[bool]) -> bool {
    let over_catalog = reads_system_catalog(statement);
    let empty_aliases = if over_catalog {
        aliases_of_empty_tables(statement)
    } else {
        HashSet::new()
    };
    let mut changed = false;
    let _ = visit_expressions_mut(statement, |expr| {
        changed |= (over_catalog
            && (never_answers(expr, &empty_aliases)
                || null_column(expr)
                || domain_base_walk(expr)
                || in_subquery_as_array(expr)))
            || array_subquery(expr)
            || catalog_lookup(expr)
            || like_escape(expr)
            || regproc_literal(expr)
            || field_of_expression(expr)
            || bare_user(expr)
            || any_of_untyped_parameter(expr, typed_params)
            || (over_catalog && (aggregate_scalar_subquery(expr) || array_literal(expr)));
        ControlFlow::<()>::Continue(())
    });
    let mut unnest = UnnestColumnAlias(false);
    let _ = statement.visit(&mut unnest);
    let mut names = UniqueItemNames(false);
    let _ = statement.visit(&mut names);
    let sorted = sort_by_subquery(statement);
    changed || unnest.0 || names.0 || sorted
}

/// Puts `replacement` in place of `expr` when there is one (a rewrite that does not
/// parse leaves the statement as it was, for the real parser to report on).
fn replace_with(expr: &mut Expr, replacement: Option<Expr>) -> bool {
    match replacement {
        Some(e) => {
            *expr = e;
            true
        }
        None => false,
    }
}

fn parse_query(sql: &str) -> Option<Query> {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?.pop()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

fn string_value(value: &Value) -> Option<String> {
    match value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// The one projected expression of a plain `SELECT` (no DISTINCT, GROUP BY, HAVING,
/// set operation or `*`).
fn single_plain_item(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = !matches!(
        &select.group_by,
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty()
    );
    if select.distinct.is_some() || grouped || select.having.is_some() || select.from.is_empty() {
        return None;
    }
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => {
            Some(e.clone())
        }
        _ => None,
    }
}

fn set_single_item(query: &mut Query, expr: Expr) {
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection[0] = match &select.projection[0] {
            SelectItem::ExprWithAlias { alias, .. } => SelectItem::ExprWithAlias {
                expr,
                alias: alias.clone(),
            },
            _ => SelectItem::UnnamedExpr(expr),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_sql;

    #[test]
    fn a_rewrite_sqlparser_cannot_print_back_is_not_applied() {
        // psql's `\d` query, mutated by the fuzzer: `tc.reloptions` is rewritten, and
        // `c.reloftype . 0` prints as `c.reloftype.0`, which does not parse.
        let sql = "SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), \
                   CASE WHEN c.reloftype . 0 THEN '' END \
                   FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)";
        assert!(datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            sql
        )
        .is_ok());
        assert_eq!(rewrite_sql(sql, &[]), sql);
        let without_the_dot = sql.replace("c.reloftype . 0", "c.reloftype = 0");
        assert_ne!(rewrite_sql(&without_the_dot, &[]), without_the_dot);
    }

    #[test]
    fn array_subquery_becomes_array_agg() {
        let sql = "SELECT ARRAY(SELECT b.rolname FROM pg_roles b WHERE b.oid = r.oid ORDER BY 1) FROM pg_roles r";
        assert_eq!(
            rewrite_sql(sql, &[]),
            "SELECT (SELECT array_agg(b.rolname ORDER BY b.rolname) FROM pg_roles b WHERE b.oid = r.oid) FROM pg_roles r"
        );
    }

    #[test]
    fn like_with_another_escape_character() {
        let sql = "SELECT 1 FROM t WHERE a NOT LIKE 'pg/_' || '%' ESCAPE '/'";
        let out = rewrite_sql(sql, &[]);
        assert!(
            out.contains(r"NOT LIKE replace(replace('pg/_' || '%', '\', '\\'), '/', '\')"),
            "{out}"
        );
        assert!(!out.contains("ESCAPE"), "{out}");
    }

    #[test]
    fn regproc_literal_is_the_function_name() {
        let sql = "SELECT typinput = 'pg_catalog.array_in'::regproc FROM pg_type";
        assert_eq!(
            rewrite_sql(sql, &[]),
            "SELECT typinput = 'array_in' FROM pg_type"
        );
    }

    #[test]
    fn catalog_scalar_subqueries_aggregate_and_others_are_left_alone() {
        let sql = "SELECT t.oid FROM pg_type t WHERE (SELECT c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid)";
        assert!(rewrite_sql(sql, &[]).contains("(SELECT max(c.relkind = 'c') FROM pg_class c"));
        let user = "SELECT (SELECT x FROM a WHERE a.k = b.k) FROM b";
        assert_eq!(rewrite_sql(user, &[]), user);
        let already = "SELECT (SELECT count(*) FROM pg_class) AS n";
        assert_eq!(rewrite_sql(already, &[]), already);
    }
}
