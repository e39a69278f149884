//! The DDL that changes the catalog: run it in DataFusion first, then record it.
//!
//! Order matters: a statement DataFusion refuses is never recorded, and a statement
//! is acknowledged to the client only after its record is durable.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CreateExternalTable, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectNamePart, ObjectType, Statement, Value};

use crate::catalog::{Catalog, CatalogOutcome, DEFAULT_CATALOG, DEFAULT_SCHEMA};
use crate::managed::{columns_of, schema_of, tables_dir, ManagedTable};
use crate::paths::AllowedRoots;
use crate::store::{ExternalTableDef, ManagedTableDef, ObjectDef, ViewDef};

/// Plans and runs one statement to completion.
pub(crate) async fn run(ctx: &SessionContext, stmt: DFStatement) -> Result<Vec<RecordBatch>> {
    let plan = ctx.state().statement_to_plan(stmt).await?;
    ctx.execute_logical_plan(plan).await?.collect().await
}

pub(crate) async fn create_external_table(
    catalog: &Catalog,
    ctx: &SessionContext,
    mut cmd: CreateExternalTable,
) -> Result<CatalogOutcome> {
    let (schema, name) = schema_and_name(&cmd.name)?;
    // DataFusion's JSON format is newline-delimited JSON; accept the common name too.
    if cmd.file_type.eq_ignore_ascii_case("NDJSON") {
        cmd.file_type = "JSON".to_string();
    }
    for location in cmd.locations.iter_mut() {
        if AllowedRoots::is_local(location) {
            *location = catalog.roots().resolve(location)?;
        }
    }
    let outcome = CatalogOutcome {
        tag: "CREATE TABLE",
        rows: None,
    };
    let exists = catalog
        .store()
        .read(|c| c.find_object(&schema, &name).is_some());
    if exists && cmd.if_not_exists {
        return Ok(outcome);
    }
    let def = ExternalTableDef {
        schema: schema.clone(),
        name: name.clone(),
        file_type: cmd.file_type.to_uppercase(),
        locations: cmd.locations.clone(),
        columns: cmd.columns.iter().map(|c| c.to_string()).collect(),
        partition_cols: cmd.table_partition_cols.clone(),
        options: cmd
            .options
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect(),
    };
    // Run the canonical form, so what is recorded is exactly what ran.
    cmd.name = qualified_name(&schema, &name);
    let def = catalog.store().sealed(def)?;
    run(ctx, DFStatement::CreateExternalTable(cmd)).await?;
    record(catalog, ctx, &schema, &name, ObjectDef::ExternalTable(def))?;
    Ok(outcome)
}

pub(crate) async fn create_view(
    catalog: &Catalog,
    ctx: &SessionContext,
    stmt: Statement,
) -> Result<CatalogOutcome> {
    let Statement::CreateView(view) = &stmt else {
        return Err(DataFusionError::Internal("expected CREATE VIEW".into()));
    };
    let (schema, name) = schema_and_name(&view.name)?;
    if view.temporary {
        run(ctx, DFStatement::Statement(Box::new(stmt))).await?;
        return Ok(CatalogOutcome {
            tag: "CREATE VIEW",
            rows: None,
        });
    }
    let mut canonical = view.clone();
    canonical.name = qualified_name(&schema, &name);
    let canonical = Statement::CreateView(canonical);
    let sql = canonical.to_string();
    run(ctx, DFStatement::Statement(Box::new(canonical))).await?;
    record(
        catalog,
        ctx,
        &schema,
        &name,
        ObjectDef::View(ViewDef {
            schema: schema.clone(),
            name: name.clone(),
            sql,
        }),
    )?;
    Ok(CatalogOutcome {
        tag: "CREATE VIEW",
        rows: None,
    })
}

pub(crate) async fn create_schema(
    catalog: &Catalog,
    ctx: &SessionContext,
    stmt: Statement,
) -> Result<CatalogOutcome> {
    let Statement::CreateSchema { schema_name, .. } = &stmt else {
        return Err(DataFusionError::Internal("expected CREATE SCHEMA".into()));
    };
    let schema = normalize(&schema_name.to_string());
    let schema = schema.rsplit('.').next().unwrap_or(&schema).to_string();
    run(ctx, DFStatement::Statement(Box::new(stmt))).await?;
    catalog.store().update(|c| {
        if !c.schemas.contains(&schema) {
            c.schemas.push(schema.clone());
        }
        Ok(())
    })?;
    Ok(CatalogOutcome {
        tag: "CREATE SCHEMA",
        rows: None,
    })
}

pub(crate) async fn drop(
    catalog: &Catalog,
    ctx: &SessionContext,
    object_type: ObjectType,
    if_exists: bool,
    names: Vec<ObjectName>,
    cascade: bool,
) -> Result<CatalogOutcome> {
    let tag = match object_type {
        ObjectType::Table => "DROP TABLE",
        ObjectType::View => "DROP VIEW",
        ObjectType::Schema => "DROP SCHEMA",
        other => {
            return Err(DataFusionError::NotImplemented(format!(
                "DROP {other} is not supported"
            )))
        }
    };
    for name in names {
        let keyword = match object_type {
            ObjectType::Table => "TABLE",
            ObjectType::View => "VIEW",
            _ => "SCHEMA",
        };
        if object_type == ObjectType::Schema {
            let schema = normalize(&name.to_string());
            let sql = format!(
                "DROP SCHEMA {}{}{}",
                if if_exists { "IF EXISTS " } else { "" },
                quote_ident(&schema),
                if cascade { " CASCADE" } else { "" }
            );
            ctx.sql(&sql).await?.collect().await?;
            catalog.store().update(|c| {
                c.schemas.retain(|s| s != &schema);
                c.objects.retain(|o| o.schema() != schema);
                Ok(())
            })?;
            continue;
        }
        let (schema, table) = schema_and_name(&name)?;
        let sql = format!(
            "DROP {keyword} {}{}.{}",
            if if_exists { "IF EXISTS " } else { "" },
            quote_ident(&schema),
            quote_ident(&table)
        );
        ctx.sql(&sql).await?.collect().await?;
        let removed = catalog
            .store()
            .update(|c| Ok(c.find_object(&schema, &table).map(|i| c.objects.remove(i))))?;
        if let Some(ObjectDef::ManagedTable(t)) = removed {
            remove_table_dir(catalog, &t.dir);
        }
    }
    Ok(CatalogOutcome { tag, rows: None })
}

/// `CREATE TABLE t (...)` and `CREATE TABLE t AS SELECT ...`: a managed table.
pub(crate) async fn create_table(
    catalog: &Catalog,
    ctx: &SessionContext,
    stmt: Statement,
) -> Result<CatalogOutcome> {
    let Statement::CreateTable(create) = &stmt else {
        return Err(DataFusionError::Internal("expected CREATE TABLE".into()));
    };
    let (schema, name) = schema_and_name(&create.name)?;
    let is_ctas = create.query.is_some();
    if create.temporary {
        // Session-scoped and in memory, as in Postgres: nothing to persist.
        run(ctx, DFStatement::Statement(Box::new(stmt))).await?;
        return Ok(CatalogOutcome {
            tag: "CREATE TABLE",
            rows: None,
        });
    }
    let plan = ctx
        .state()
        .statement_to_plan(DFStatement::Statement(Box::new(stmt.clone())))
        .await?;
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)) = plan else {
        return Err(DataFusionError::Internal(format!(
            "CREATE TABLE planned as {plan}"
        )));
    };
    let reference = TableReference::partial(schema.as_str(), name.as_str());
    if ctx.table_exist(reference.clone())? {
        if cmd.if_not_exists {
            return Ok(CatalogOutcome {
                tag: "CREATE TABLE",
                rows: None,
            });
        }
        if !cmd.or_replace {
            return Err(DataFusionError::Execution(format!(
                "relation \"{name}\" already exists"
            )));
        }
        drop(
            catalog,
            ctx,
            ObjectType::Table,
            true,
            vec![qualified_name(&schema, &name)],
            false,
        )
        .await?;
    }
    let arrow_schema = Arc::new(cmd.input.schema().as_arrow().clone());
    let table = create_managed(catalog, ctx, &schema, &name, arrow_schema)?;
    if !is_ctas {
        return Ok(CatalogOutcome {
            tag: "CREATE TABLE",
            rows: None,
        });
    }
    let filled = async {
        let input = DataFrame::new(ctx.state(), cmd.input.as_ref().clone());
        let stream = input.execute_stream().await?;
        table.write(stream, false, &ctx.task_ctx()).await
    }
    .await;
    match filled {
        Ok(rows) => Ok(CatalogOutcome {
            tag: "SELECT",
            rows: Some(rows as usize),
        }),
        Err(e) => {
            // Like a rolled-back transaction: no half-made table stays behind.
            let _ = drop(
                catalog,
                ctx,
                ObjectType::Table,
                true,
                vec![qualified_name(&schema, &name)],
                false,
            )
            .await;
            Err(e)
        }
    }
}

/// Creates, registers and records an empty managed table.
pub(crate) fn create_managed(
    catalog: &Catalog,
    ctx: &SessionContext,
    schema: &str,
    name: &str,
    arrow_schema: SchemaRef,
) -> Result<ManagedTable> {
    let dir = uuid::Uuid::new_v4().to_string();
    let table = ManagedTable::create(
        tables_dir(catalog.store().data_dir()).join(&dir),
        arrow_schema.clone(),
    )?;
    ctx.register_table(
        TableReference::partial(schema, name),
        Arc::new(table.clone()),
    )?;
    let def = ManagedTableDef {
        schema: schema.to_string(),
        name: name.to_string(),
        dir: dir.clone(),
        columns: columns_of(&arrow_schema),
    };
    if let Err(e) = record(catalog, ctx, schema, name, ObjectDef::ManagedTable(def)) {
        remove_table_dir(catalog, &dir);
        return Err(e);
    }
    Ok(table)
}

/// Registers a recorded managed table in `ctx` (at start-up).
pub(crate) fn register_managed(
    catalog: &Catalog,
    ctx: &SessionContext,
    def: &ManagedTableDef,
) -> Result<()> {
    let schema = schema_of(def)?;
    let table = ManagedTable::open(
        tables_dir(catalog.store().data_dir()).join(&def.dir),
        schema,
    )?;
    ctx.register_table(
        TableReference::partial(def.schema.as_str(), def.name.as_str()),
        Arc::new(table),
    )?;
    Ok(())
}

/// Deletes a dropped table's files; a failure only leaves files behind.
fn remove_table_dir(catalog: &Catalog, dir: &str) {
    let path = tables_dir(catalog.store().data_dir()).join(dir);
    if let Err(e) = std::fs::remove_dir_all(&path) {
        tracing::warn!(dir = %path.display(), error = %e, "could not remove a dropped table's files");
    }
}

/// Records `def`, replacing an older definition of the same name. If the record
/// cannot be written, the object is deregistered again so memory matches disk.
fn record(
    catalog: &Catalog,
    ctx: &SessionContext,
    schema: &str,
    name: &str,
    def: ObjectDef,
) -> Result<()> {
    let result = catalog.store().update(|c| {
        match c.find_object(schema, name) {
            Some(i) => c.objects[i] = def,
            None => c.objects.push(def),
        }
        Ok(())
    });
    if let Err(e) = result {
        let _ = ctx.deregister_table(format!("{}.{}", quote_ident(schema), quote_ident(name)));
        return Err(e.into());
    }
    Ok(())
}

/// The statement that re-creates a recorded external table.
pub(crate) fn external_table_sql(t: &ExternalTableDef) -> String {
    let mut sql = format!(
        "CREATE EXTERNAL TABLE {}.{} ",
        quote_ident(&t.schema),
        quote_ident(&t.name)
    );
    if !t.columns.is_empty() {
        sql.push_str(&format!("({}) ", t.columns.join(", ")));
    }
    sql.push_str(&format!("STORED AS {} ", t.file_type));
    if !t.partition_cols.is_empty() {
        let cols: Vec<String> = t.partition_cols.iter().map(|c| quote_ident(c)).collect();
        sql.push_str(&format!("PARTITIONED BY ({}) ", cols.join(", ")));
    }
    let locations: Vec<String> = t.locations.iter().map(|l| quote_literal(l)).collect();
    if locations.len() == 1 {
        sql.push_str(&format!("LOCATION {}", locations[0]));
    } else {
        sql.push_str(&format!("LOCATION ({})", locations.join(", ")));
    }
    if !t.options.is_empty() {
        let opts: Vec<String> = t
            .options
            .iter()
            .map(|(k, v)| format!("{} {}", quote_literal(k), quote_literal(v)))
            .collect();
        sql.push_str(&format!(" OPTIONS ({})", opts.join(", ")));
    }
    sql
}

/// `(schema, name)` of a possibly qualified name, normalized as DataFusion does.
fn schema_and_name(name: &ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Ok(match id.quote_style {
                Some(_) => id.value.clone(),
                None => id.value.to_lowercase(),
            }),
            other => Err(DataFusionError::Plan(format!(
                "unsupported name part {other}"
            ))),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [table] => Ok((DEFAULT_SCHEMA.to_string(), table.clone())),
        [schema, table] => Ok((schema.clone(), table.clone())),
        [catalog, schema, table] if catalog == DEFAULT_CATALOG => {
            Ok((schema.clone(), table.clone()))
        }
        _ => Err(DataFusionError::Plan(format!(
            "invalid name {name}: use table, schema.table or {DEFAULT_CATALOG}.schema.table"
        ))),
    }
}

fn qualified_name(schema: &str, name: &str) -> ObjectName {
    use datafusion::sql::sqlparser::ast::Ident;
    ObjectName::from(vec![
        Ident::with_quote('"', schema),
        Ident::with_quote('"', name),
    ])
}

fn normalize(ident: &str) -> String {
    match ident.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => ident.to_lowercase(),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
