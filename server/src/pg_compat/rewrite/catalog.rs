//! Rules that apply only in queries over the system catalogs (`pg_catalog`,
//! `information_schema`), where InsightFlow knows which tables are always empty and
//! that sub-queries look single rows up by oid.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, visit_relations, BinaryOperator, Expr, FunctionArguments, Query,
    SetExpr, Statement, TableFactor, Value, Visit, Visitor,
};

use super::{parse_expr, replace_with, set_single_item, single_plain_item, string_value};

/// `'{0}'` compared with something, in a catalog query: the array `[0]` (Postgres
/// casts the literal to the other side's array type).
pub(super) fn array_literal(expr: &mut Expr) -> bool {
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
pub(super) fn aliases_of_empty_tables(statement: &Statement) -> HashSet<String> {
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
pub(super) fn never_answers(expr: &mut Expr, empty_aliases: &HashSet<String>) -> bool {
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

/// The recursive walk of `pg_type.typbasetype` from one type (asyncpg) ->
/// `pg_domain_base_type(oid)`.
pub(super) fn domain_base_walk(expr: &mut Expr) -> bool {
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
pub(super) fn in_subquery_as_array(expr: &mut Expr) -> bool {
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
pub(super) fn null_column(expr: &mut Expr) -> bool {
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
pub(super) fn reads_system_catalog(statement: &Statement) -> bool {
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

/// `(SELECT e FROM ... WHERE ...)` -> `(SELECT max(e) FROM ... WHERE ...)` when `e`
/// does not aggregate and nothing groups or limits the rows.
pub(super) fn aggregate_scalar_subquery(expr: &mut Expr) -> bool {
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

/// True when `expr` calls an aggregate function (by the names catalog queries use).
pub(super) fn aggregates(expr: &Expr) -> bool {
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
