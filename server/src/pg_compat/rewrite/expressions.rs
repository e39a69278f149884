//! Rules over single expressions, for any client's SQL.

use datafusion::sql::sqlparser::ast::{
    AccessExpr, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, OrderBy,
    OrderByKind, Value,
};

use super::{parse_expr, replace_with, set_single_item, single_plain_item, string_value};

/// A bare `user` is Postgres' `current_user` (Grafana's search_path lookup).
pub(super) fn bare_user(expr: &mut Expr) -> bool {
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
pub(super) fn field_of_expression(expr: &mut Expr) -> bool {
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
pub(super) fn any_of_untyped_parameter(expr: &mut Expr, typed: &[bool]) -> bool {
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

/// `ARRAY(SELECT e FROM ...)` -> `(SELECT array_agg(e [ORDER BY ...]) FROM ...)`.
pub(super) fn array_subquery(expr: &mut Expr) -> bool {
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
pub(super) fn catalog_lookup(expr: &mut Expr) -> bool {
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
pub(super) fn like_escape(expr: &mut Expr) -> bool {
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
pub(super) fn regproc_literal(expr: &mut Expr) -> bool {
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
