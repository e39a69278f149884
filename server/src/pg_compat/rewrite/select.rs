//! Rules over a statement's FROM clause, select list and ORDER BY, for any client.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, Ident, OrderBy, OrderByKind, Query, SelectItem, SetExpr,
    Statement, TableAliasColumnDef, TableFactor, VisitorMut,
};

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::parse_query;

/// Scalar functions clients call in FROM (Grafana: `string_to_array(...) s`).
const SCALAR_FUNCTIONS_IN_FROM: [&str; 2] = ["string_to_array", "current_schemas"];

/// `FROM unnest(a) x` / `generate_series(...) x`: in Postgres `x` names the column as
/// well as the table. `FROM string_to_array(...) s`: a scalar function in FROM is a
/// one-row table, `(SELECT string_to_array(...) AS s) AS s`.
pub(super) struct UnnestColumnAlias(pub(super) bool);

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

/// `SELECT a AS x ... ORDER BY <expr with a sub-query>` -> the sort key computed in a
/// derived table: `SELECT x FROM (SELECT a AS x, <expr> AS __order_1 ...) ORDER BY
/// __order_1` (DataFusion plans sub-queries in a select list, not in ORDER BY;
/// Grafana's table picker sorts by search_path membership). Only for a top-level
/// select whose items all have names.
pub(super) fn sort_by_subquery(statement: &mut Statement) -> bool {
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

/// Postgres lets a select list repeat a name (`SELECT NULL, NULL`); DataFusion needs
/// unique names, so a repeated unnamed item gets an alias.
pub(super) struct UniqueItemNames(pub(super) bool);

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
