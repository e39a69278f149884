//! Small syntax rewrites for Postgres constructs DataFusion does not plan, applied to the
//! SQL of pg clients before datafusion-postgres' own compatibility rules.
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
    visit_expressions_mut, visit_relations, AccessExpr, BinaryOperator, CastKind, DataType, Expr,
    FunctionArg, FunctionArgExpr, FunctionArguments, Ident, OrderBy, OrderByKind, Query,
    SelectItem, SetExpr, Statement, TableAliasColumnDef, TableFactor, Value, Visit, VisitMut,
    Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

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

/// Scalar functions clients call in FROM (Grafana: `string_to_array(...) s`).
const SCALAR_FUNCTIONS_IN_FROM: [&str; 2] = ["string_to_array", "current_schemas"];

/// `FROM unnest(a) x` / `generate_series(...) x`: in Postgres `x` names the column as
/// well as the table. `FROM string_to_array(...) s`: a scalar function in FROM is a
/// one-row table, `(SELECT string_to_array(...) AS s) AS s`.
struct UnnestColumnAlias(bool);

impl VisitorMut for UnnestColumnAlias {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } if array_exprs.len() == 1 => alias,
            TableFactor::Table {
                name,
                args: Some(args),
                alias,
                ..
            } => {
                let function = name.0.last().map(|p| p.to_string().to_lowercase());
                match function.as_deref() {
                    Some("unnest" | "generate_series") => alias,
                    // A scalar function in FROM is a one-row table.
                    Some(f) if SCALAR_FUNCTIONS_IN_FROM.contains(&f) => {
                        let Some(alias) = alias.clone() else {
                            return ControlFlow::Continue(());
                        };
                        let call = format!(
                            "{name}({})",
                            args.args
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        let sql = format!(
                            "SELECT * FROM (SELECT {call} AS {}) AS {}",
                            alias.name, alias.name
                        );
                        if let Ok(Statement::Query(q)) = Parser::new(&PostgreSqlDialect {})
                            .try_with_sql(&sql)
                            .and_then(|mut p| p.parse_statement())
                        {
                            if let SetExpr::Select(select) = *q.body {
                                if let Some(from) = select.from.into_iter().next() {
                                    *factor = from.relation;
                                    self.0 = true;
                                }
                            }
                        }
                        return ControlFlow::Continue(());
                    }
                    _ => return ControlFlow::Continue(()),
                }
            }
            _ => return ControlFlow::Continue(()),
        };
        if let Some(alias) = alias.as_mut().filter(|a| a.columns.is_empty()) {
            alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
            self.0 = true;
        }
        ControlFlow::Continue(())
    }
}

/// A bare `user` is Postgres' `current_user` (Grafana's search_path lookup).
fn bare_user(expr: &mut Expr) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    if !matches!(f.args, FunctionArguments::None)
        || !f.name.to_string().eq_ignore_ascii_case("user")
    {
        return false;
    }
    replace_with(expr, parse_expr("current_user"))
}

/// `(expr).field` -> `get_field(expr, 'field')` (DataFusion reads `.field` only after
/// a column name).
fn field_of_expression(expr: &mut Expr) -> bool {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else {
        return false;
    };
    if !matches!(root.as_ref(), Expr::Nested(_) | Expr::Function(_)) {
        return false;
    }
    let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
        return false;
    };
    let inner = match root.as_ref() {
        Expr::Nested(e) => e.as_ref(),
        e => e,
    };
    let field = field.value.replace('\'', "''");
    let field_access = parse_expr(&format!("get_field({inner}, '{field}')"));
    replace_with(expr, field_access)
}

/// `x = ANY($1)` -> `x = ANY(CAST($1 AS TEXT[]))` when the client left `$1` untyped
/// (node-postgres sends arrays as text): Postgres reads it as an array there.
fn any_of_untyped_parameter(expr: &mut Expr, typed: &[bool]) -> bool {
    let Expr::AnyOp { right, .. } = expr else {
        return false;
    };
    let Expr::Value(v) = right.as_ref() else {
        return false;
    };
    let Value::Placeholder(p) = &v.value else {
        return false;
    };
    let index = p.trim_start_matches('$').parse::<usize>().unwrap_or(0);
    if index == 0 || typed.get(index - 1).copied().unwrap_or(false) {
        return false;
    }
    match parse_expr(&format!("CAST({p} AS TEXT[])")) {
        Some(e) => {
            **right = e;
            true
        }
        None => false,
    }
}

/// `'{0}'` compared with something, in a catalog query: the array `[0]` (Postgres
/// casts the literal to the other side's array type).
fn array_literal(expr: &mut Expr) -> bool {
    let Expr::BinaryOp { left, op, right } = expr else {
        return false;
    };
    if !matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
        return false;
    }
    let mut changed = false;
    for side in [left, right] {
        let Expr::Value(v) = side.as_ref() else {
            continue;
        };
        let Some(text) = string_value(&v.value) else {
            continue;
        };
        let Some(items) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
            continue;
        };
        if !items.split(',').all(|i| i.trim().parse::<i64>().is_ok()) {
            continue;
        }
        if let Some(array) = parse_expr(&format!("make_array({items})")) {
            **side = array;
            changed = true;
        }
    }
    changed
}

/// Catalog tables that never hold a row about an InsightFlow object: it has no column
/// defaults, sequences, comments, indexes, constraints, row policies, inheritance,
/// rules, triggers, extended statistics or publications.
const EMPTY_CATALOG_TABLES: [&str; 16] = [
    "pg_attrdef",
    "pg_sequence",
    "pg_description",
    "pg_index",
    "pg_constraint",
    "pg_policy",
    "pg_inherits",
    "pg_rewrite",
    "pg_trigger",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_partitioned_table",
    "pg_foreign_table",
    "pg_event_trigger",
];

/// Catalog columns that are always NULL in InsightFlow.
const NULL_CATALOG_COLUMNS: [(&str, &str); 1] = [("reloptions", "TEXT[]")];

fn is_empty_table(name: &datafusion::sql::sqlparser::ast::ObjectName) -> bool {
    name.0
        .last()
        .is_some_and(|p| EMPTY_CATALOG_TABLES.contains(&p.to_string().to_lowercase().as_str()))
}

/// The names the statement gives to the empty catalog tables it reads (the alias, or
/// the table name when there is none).
fn aliases_of_empty_tables(statement: &Statement) -> HashSet<String> {
    struct Collect(HashSet<String>);
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, alias, .. } = factor {
                if is_empty_table(name) {
                    let last = name.0.last().map(|p| p.to_string()).unwrap_or_default();
                    self.0.insert(match alias {
                        Some(a) => a.name.value.to_lowercase(),
                        None => last.to_lowercase(),
                    });
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut collect = Collect(HashSet::new());
    let _ = statement.visit(&mut collect);
    collect.0
}

/// A sub-query (scalar or `ARRAY(...)`) that can only be empty: it reads an empty
/// catalog table first, or it is correlated with a row of one (so it never runs).
/// It becomes NULL, or `'{}'` for `ARRAY(...)`. DataFusion cannot plan many of these
/// (correlation through `ANY`, lateral `unnest`, non-equality predicates).
fn never_answers(expr: &mut Expr, empty_aliases: &HashSet<String>) -> bool {
    let (query, is_array) = match expr {
        Expr::Subquery(q) => (q.as_ref().clone(), false),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("array") => match &f.args {
            FunctionArguments::Subquery(q) => (q.as_ref().clone(), true),
            _ => return false,
        },
        _ => return false,
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let reads_empty = matches!(
        select.from.first().map(|f| &f.relation),
        Some(TableFactor::Table { name, .. }) if is_empty_table(name)
    );
    let (qualifiers, defined) = qualifiers_and_relations(&query);
    let correlated_with_empty = qualifiers
        .iter()
        .any(|q| empty_aliases.contains(q) && !defined.contains(q));
    if !reads_empty && !correlated_with_empty {
        return false;
    }
    // Parameters of the sub-query stay in the statement, so the client's parameter
    // numbering and types still line up.
    let mut params = Vec::new();
    let mut probe = query.clone();
    let _ = visit_expressions_mut(&mut probe, |e| {
        if let Expr::Value(v) = e {
            if let Value::Placeholder(p) = &v.value {
                params.push(format!("{p} IS NULL"));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let empty = if is_array { "make_array()" } else { "NULL" };
    let replacement = if params.is_empty() {
        parse_expr(empty)
    } else {
        parse_expr(&format!(
            "CASE WHEN {} THEN {empty} ELSE {empty} END",
            params.join(" OR ")
        ))
    };
    replace_with(expr, replacement)
}

/// The table qualifiers `query` uses in column references (`d` of `d.adbin`), and the
/// names its own FROM clauses define (aliases, or table names without one), lower case.
fn qualifiers_and_relations(query: &Query) -> (HashSet<String>, HashSet<String>) {
    #[derive(Default)]
    struct Names {
        qualifiers: HashSet<String>,
        defined: HashSet<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr {
                if parts.len() >= 2 {
                    let qualifier = &parts[parts.len() - 2];
                    self.qualifiers.insert(qualifier.value.to_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    let defined = match alias {
                        Some(a) => a.name.value.clone(),
                        None => name.0.last().map(|p| p.to_string()).unwrap_or_default(),
                    };
                    self.defined.insert(defined.to_lowercase());
                }
                TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. } => {
                    self.defined.insert(a.name.value.to_lowercase());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = query.visit(&mut names);
    (names.qualifiers, names.defined)
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

/// `SELECT a AS x ... ORDER BY <expr with a sub-query>` -> the sort key computed in a
/// derived table: `SELECT x FROM (SELECT a AS x, <expr> AS __order_1 ...) ORDER BY
/// __order_1` (DataFusion plans sub-queries in a select list, not in ORDER BY;
/// Grafana's table picker sorts by search_path membership). Only for a top-level
/// select whose items all have names.
fn sort_by_subquery(statement: &mut Statement) -> bool {
    let Statement::Query(query) = statement else {
        return false;
    };
    let Some(OrderBy {
        kind: OrderByKind::Expressions(order),
        ..
    }) = query.order_by.as_ref()
    else {
        return false;
    };
    let has_subquery = |e: &Expr| {
        let mut found = false;
        let mut probe = e.clone();
        let _ = visit_expressions_mut(&mut probe, |x| {
            found |= matches!(
                x,
                Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. }
            );
            ControlFlow::<()>::Continue(())
        });
        found
    };
    if !order.iter().any(|o| has_subquery(&o.expr)) || query.limit_clause.is_some() {
        return false;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let names: Option<Vec<String>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.to_string()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.to_string()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|i| i.to_string())
            }
            _ => None,
        })
        .collect();
    let Some(names) = names else {
        return false;
    };
    // The sort keys with sub-queries move into the inner select list as __order_k.
    let mut inner = query.as_ref().clone();
    inner.order_by = None;
    let SetExpr::Select(inner_select) = inner.body.as_mut() else {
        return false;
    };
    let mut outer_order = Vec::new();
    for (k, o) in order.iter().enumerate() {
        let mut o = o.clone();
        if has_subquery(&o.expr) {
            let key = Ident::new(format!("__order_{k}"));
            inner_select.projection.push(SelectItem::ExprWithAlias {
                expr: std::mem::replace(&mut o.expr, Expr::Identifier(key.clone())),
                alias: key,
            });
        }
        outer_order.push(o.to_string());
    }
    let sql = format!(
        "SELECT {} FROM ({inner}) AS __sorted ORDER BY {}",
        names.join(", "),
        outer_order.join(", ")
    );
    match parse_query(&sql) {
        Some(q) => {
            **query = q;
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

/// Postgres lets a select list repeat a name (`SELECT NULL, NULL`); DataFusion needs
/// unique names, so a repeated unnamed item gets an alias.
struct UniqueItemNames(bool);

impl VisitorMut for UniqueItemNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        fn visit_set(set: &mut SetExpr, changed: &mut bool) {
            match set {
                SetExpr::Select(select) => {
                    let mut seen = std::collections::HashSet::new();
                    for (i, item) in select.projection.iter_mut().enumerate() {
                        let name = match item {
                            SelectItem::UnnamedExpr(e) => e.to_string(),
                            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                            _ => continue,
                        };
                        if !seen.insert(name.clone()) {
                            if let SelectItem::UnnamedExpr(e) = item {
                                *item = SelectItem::ExprWithAlias {
                                    expr: e.clone(),
                                    alias: Ident::with_quote('"', format!("{name}_{i}")),
                                };
                                *changed = true;
                            }
                        }
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    visit_set(left, changed);
                    visit_set(right, changed);
                }
                _ => {}
            }
        }
        visit_set(&mut query.body, &mut self.0);
        ControlFlow::Continue(())
    }
}

/// The recursive walk of `pg_type.typbasetype` from one type (asyncpg) ->
/// `pg_domain_base_type(oid)`.
fn domain_base_walk(expr: &mut Expr) -> bool {
    let Expr::Subquery(query) = expr else {
        return false;
    };
    let Some(with) = query.with.as_ref().filter(|w| w.recursive) else {
        return false;
    };
    let text = with.to_string();
    if !text.contains("typbasetype") {
        return false;
    }
    // The anchor names the type the walk starts from: `WHERE t2.oid = <outer>.oid`.
    static ANCHOR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(\w+)\.oid = (\w+\.oid)").expect("a valid constant regex")
    });
    let Some(start) = ANCHOR.captures(&text).map(|c| c[2].to_string()) else {
        return false;
    };
    replace_with(expr, parse_expr(&format!("pg_domain_base_type({start})")))
}

/// `x IN (SELECT e FROM ...)` -> `coalesce(array_has((SELECT array_agg(e) FROM ...), x),
/// false)`: DataFusion plans IN sub-queries only in filters, and catalog queries use
/// them inside CASE (Grafana's table picker).
fn in_subquery_as_array(expr: &mut Expr) -> bool {
    let Expr::InSubquery {
        expr: needle,
        subquery,
        negated,
    } = expr
    else {
        return false;
    };
    let mut query = subquery.as_ref().clone();
    let Some(item) = single_plain_item(&query) else {
        return false;
    };
    if aggregates(&item) || query.order_by.is_some() || query.limit_clause.is_some() {
        return false;
    }
    let Some(agg) = parse_expr(&format!("array_agg({item})")) else {
        return false;
    };
    set_single_item(&mut query, agg);
    let not = if *negated { "NOT " } else { "" };
    let lookup = parse_expr(&format!(
        "{not}coalesce(array_has(({query}), {needle}), false)"
    ));
    replace_with(expr, lookup)
}

/// `x.reloptions` -> `CAST(NULL AS TEXT[])`.
fn null_column(expr: &mut Expr) -> bool {
    let Expr::CompoundIdentifier(parts) = expr else {
        return false;
    };
    let Some(column) = parts.last().map(|p| p.value.to_lowercase()) else {
        return false;
    };
    let Some((_, sql_type)) = NULL_CATALOG_COLUMNS.iter().find(|(c, _)| *c == column) else {
        return false;
    };
    replace_with(expr, parse_expr(&format!("CAST(NULL AS {sql_type})")))
}

/// True when the statement reads a `pg_catalog` or `information_schema` table.
fn reads_system_catalog(statement: &Statement) -> bool {
    let mut found = false;
    let _ = visit_relations(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.to_string().to_lowercase())
            .collect();
        found |= parts
            .iter()
            .any(|p| p == "pg_catalog" || p == "information_schema")
            || parts.last().is_some_and(|t| t.starts_with("pg_"));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `ARRAY(SELECT e FROM ...)` -> `(SELECT array_agg(e [ORDER BY ...]) FROM ...)`.
fn array_subquery(expr: &mut Expr) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    if !f.name.to_string().eq_ignore_ascii_case("array") {
        return false;
    }
    let FunctionArguments::Subquery(query) = &f.args else {
        return false;
    };
    let mut query = query.as_ref().clone();
    let Some(item) = single_plain_item(&query) else {
        return false;
    };
    // `ORDER BY 1` named the sub-query's column; inside array_agg it names the item.
    let mut order = query.order_by.take();
    if let Some(OrderBy {
        kind: OrderByKind::Expressions(exprs),
        ..
    }) = order.as_mut()
    {
        for o in exprs {
            if matches!(&o.expr, Expr::Value(v) if v.value == Value::Number("1".into(), false)) {
                o.expr = item.clone();
            }
        }
    }
    let order = order.map(|o| format!(" {o}")).unwrap_or_default();
    let Some(agg) = parse_expr(&format!("array_agg({item}{order})")) else {
        return false;
    };
    set_single_item(&mut query, agg);
    *expr = Expr::Subquery(Box::new(query));
    true
}

/// `pg_get_viewdef(x)` and friends -> a sub-query over the catalog tables keyed by `x`.
fn catalog_lookup(expr: &mut Expr) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    let name = f.name.0.last().map(|p| p.to_string().to_lowercase());
    let FunctionArguments::List(list) = &f.args else {
        return false;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(oid))) = list.args.first() else {
        return false;
    };
    let sql = match name.as_deref() {
        Some("pg_get_viewdef") => format!(
            "(SELECT max(__v.view_definition) \
             FROM information_schema.views AS __v \
             JOIN pg_catalog.pg_class AS __c ON __c.relname = __v.table_name \
             JOIN pg_catalog.pg_namespace AS __n ON __n.oid = __c.relnamespace \
               AND __n.nspname = __v.table_schema \
             WHERE __c.oid = {oid})"
        ),
        Some("pg_get_function_result") => format!(
            "(SELECT max(format_type(__p.prorettype, NULL)) FROM pg_catalog.pg_proc AS __p \
             WHERE __p.oid = {oid})"
        ),
        Some("pg_get_function_arguments" | "pg_get_function_identity_arguments") => format!(
            "(SELECT max(oidvector_types(__p.proargtypes)) FROM pg_catalog.pg_proc AS __p \
             WHERE __p.oid = {oid})"
        ),
        // Set-returning functions, as unnest over an array of the same length.
        Some("generate_subscripts") => {
            let dim = match list.args.get(1) {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(d))) => d.to_string(),
                _ => "1".to_string(),
            };
            format!("unnest(generate_series(1, array_length({oid}, {dim})))")
        }
        Some("_pg_expandarray") => format!("unnest(pg_expandarray_items({oid}))"),
        _ => return false,
    };
    match parse_expr(&sql) {
        Some(lookup) => {
            *expr = lookup;
            true
        }
        None => false,
    }
}

/// `x LIKE p ESCAPE '/'` -> `x LIKE <p with '/' as backslash>`.
fn like_escape(expr: &mut Expr) -> bool {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return false;
    };
    let Some(escape) = escape_char.as_ref().and_then(|v| string_value(&v.value)) else {
        return false;
    };
    if escape == "\\" || escape.chars().count() != 1 {
        return false;
    }
    let escape = escape.replace('\'', "''");
    // Backslashes in the pattern are literal under another escape character.
    let Some(new_pattern) = parse_expr(&format!(
        "replace(replace({pattern}, '\\', '\\\\'), '{escape}', '\\')"
    )) else {
        return false;
    };
    **pattern = new_pattern;
    *escape_char = None;
    true
}

/// `'pg_catalog.array_in'::regproc` -> `'array_in'`.
fn regproc_literal(expr: &mut Expr) -> bool {
    let Expr::Cast {
        kind: CastKind::DoubleColon | CastKind::Cast,
        expr: inner,
        data_type: DataType::Custom(name, _),
        ..
    } = expr
    else {
        return false;
    };
    let type_name = name.0.last().map(|p| p.to_string().to_lowercase());
    if type_name.as_deref() != Some("regproc") {
        return false;
    }
    let Expr::Value(v) = inner.as_ref() else {
        return false;
    };
    let Some(text) = string_value(&v.value) else {
        return false;
    };
    let bare = text.rsplit('.').next().unwrap_or(&text).to_string();
    *expr = Expr::Value(Value::SingleQuotedString(bare).into());
    true
}

/// `(SELECT e FROM ... WHERE ...)` -> `(SELECT max(e) FROM ... WHERE ...)` when `e`
/// does not aggregate and nothing groups or limits the rows.
fn aggregate_scalar_subquery(expr: &mut Expr) -> bool {
    let Expr::Subquery(query) = expr else {
        return false;
    };
    if query.limit_clause.is_some() || query.order_by.is_some() {
        return false;
    }
    let Some(item) = single_plain_item(query) else {
        return false;
    };
    if aggregates(&item) {
        return false;
    }
    let Some(agg) = parse_expr(&format!("max({item})")) else {
        return false;
    };
    set_single_item(query, agg);
    true
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

/// True when `expr` calls an aggregate function (by the names catalog queries use).
fn aggregates(expr: &Expr) -> bool {
    const AGGREGATES: [&str; 10] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
    ];
    let mut found = false;
    let mut probe = expr.clone();
    let _ = visit_expressions_mut(&mut probe, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.0.last().map(|p| p.to_string().to_lowercase());
            found |= name.is_some_and(|n| AGGREGATES.contains(&n.as_str()));
        }
        ControlFlow::<()>::Continue(())
    });
    found
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
