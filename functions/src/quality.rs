//! `quality(source)`: one row per data-quality finding, each with SQL to act on it.
//!
//! ```sql
//! SELECT check_name, column_name, severity, affected_rows, suggested_sql FROM quality('sales');
//! ```
//!
//! Checks: NULL share (over 50% is `high`), exact duplicate rows (extra copies a dedupe
//! removes), constant columns, numbers or dates stored as text, mixed types in a text
//! column, one category spelled several ways (case, surrounding spaces), negative values
//! in columns that count or price things, dates in the future, and outliers by the IQR
//! method (outside Q1 − 3·IQR … Q3 + 3·IQR, with t-digest quartiles). Every
//! `suggested_sql` runs as-is: a `CREATE OR REPLACE VIEW` holding the fix, or a
//! `SELECT` of the affected rows. Nothing changes until the user runs it.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;

use crate::profile::percent;
use crate::report::{no_more_args, Report};
use crate::source::{quote_ident, Source};
use crate::stats::{self, ColumnStats, Kind, Row, TableStats};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("check_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("severity", DataType::Utf8, false),
        Field::new("affected_rows", DataType::Int64, false),
        Field::new("affected_pct", DataType::Float64, true),
        Field::new("detail", DataType::Utf8, false),
        Field::new("suggested_sql", DataType::Utf8, false),
    ]))
});

/// Words in a column name that mean its values cannot be negative.
const NON_NEGATIVE_WORDS: [&str; 12] = [
    "count", "qty", "quantity", "price", "amount", "revenue", "cost", "units", "age", "total",
    "sales", "stock",
];
/// Text columns with more distinct values than this are not treated as categories.
const MAX_CATEGORIES: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// By share of affected rows: over `high`% is high, over `medium`% medium.
    fn by_share(pct: f64, high: f64, medium: f64) -> Self {
        if pct > high {
            Severity::High
        } else if pct > medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

#[derive(Debug)]
struct Finding {
    check: &'static str,
    column: Option<String>,
    severity: Severity,
    affected: i64,
    detail: String,
    sql: String,
}

/// The `quality` report.
#[derive(Debug, Default)]
pub struct Quality;

#[async_trait]
impl Report for Quality {
    const NAME: &'static str = "quality";

    fn from_args(args: &[Expr]) -> Result<Self> {
        no_more_args(Self::NAME, args)
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        let table = stats::collect(state, source, stats::EXACT_DISTINCT_LIMIT).await?;
        let fixes = Fixes {
            source,
            table: &table,
        };
        let mut findings = Vec::new();
        if table.rows > 0 {
            findings.extend(duplicates(state, &fixes).await?);
            findings.extend(value_checks(state, &fixes).await?);
            for column in &table.columns {
                findings.extend(column_checks(&fixes, column));
                if let Some(f) = spellings(state, &fixes, column).await? {
                    findings.push(f);
                }
            }
        }
        findings.sort_by(|a, b| {
            (a.severity, a.check, &a.column).cmp(&(b.severity, b.check, &b.column))
        });
        let mut out = Builders::default();
        for f in findings {
            out.check.append_value(f.check);
            out.column.append_option(f.column);
            out.severity.append_value(f.severity.as_str());
            out.affected.append_value(f.affected);
            out.pct.append_option(percent(f.affected, table.rows));
            out.detail.append_value(f.detail);
            out.sql.append_value(f.sql);
        }
        out.finish()
    }
}

/// Builds the SQL of suggested fixes over the source.
struct Fixes<'a> {
    source: &'a Source,
    table: &'a TableStats,
}

impl Fixes<'_> {
    /// `CREATE OR REPLACE VIEW <source>_<suffix> AS SELECT ...` with one column rewritten.
    fn view_replacing(&self, suffix: &str, column: &str, expr: &str) -> String {
        let columns: Vec<String> = self
            .table
            .columns
            .iter()
            .map(|c| {
                let q = quote_ident(&c.name);
                if c.name == column {
                    format!("{expr} AS {q}")
                } else {
                    q
                }
            })
            .collect();
        format!(
            "CREATE OR REPLACE VIEW {} AS SELECT {} FROM {}",
            self.view_name(suffix),
            columns.join(", "),
            self.source.relation_sql()
        )
    }

    fn view_name(&self, suffix: &str) -> String {
        match self.source {
            Source::Table(name)
                if name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
            {
                format!("{name}_{suffix}")
            }
            _ => format!("quality_{suffix}"),
        }
    }

    fn select_where(&self, condition: &str) -> String {
        format!(
            "SELECT * FROM {} WHERE {condition}",
            self.source.relation_sql()
        )
    }
}

async fn duplicates(state: &SessionState, fixes: &Fixes<'_>) -> Result<Option<Finding>> {
    let from = fixes.source.relation_sql();
    let sql = format!("SELECT count(*) AS n FROM (SELECT DISTINCT * FROM {from}) AS d");
    let distinct = Row::query(state, &sql).await?.int("n").unwrap_or(0);
    let extra = fixes.table.rows - distinct;
    if extra <= 0 {
        return Ok(None);
    }
    let pct = percent(extra, fixes.table.rows).unwrap_or(0.0);
    Ok(Some(Finding {
        check: "duplicate_rows",
        column: None,
        severity: Severity::by_share(pct, 10.0, 1.0),
        affected: extra,
        detail: format!(
            "{extra} rows are exact copies of another row; removing them leaves {distinct} rows"
        ),
        sql: format!(
            "CREATE OR REPLACE VIEW {} AS SELECT DISTINCT * FROM {from}",
            fixes.view_name("deduplicated")
        ),
    }))
}

/// Checks that need no query beyond the statistics.
fn column_checks(fixes: &Fixes<'_>, c: &ColumnStats) -> Vec<Finding> {
    let rows = fixes.table.rows;
    let q = quote_ident(&c.name);
    let mut out = Vec::new();
    let nulls = rows - c.non_null;
    if nulls > 0 {
        let pct = percent(nulls, rows).unwrap_or(0.0);
        let sql = match (c.kind.is_numeric(), c.p50) {
            (true, Some(median)) => {
                fixes.view_replacing("filled", &c.name, &format!("COALESCE({q}, {median})"))
            }
            _ => fixes.select_where(&format!("{q} IS NULL")),
        };
        out.push(Finding {
            check: "null_share",
            column: Some(c.name.clone()),
            severity: Severity::by_share(pct, 50.0, 20.0),
            affected: nulls,
            detail: format!("{pct}% of {rows} rows have no {} value", c.name),
            sql,
        });
    }
    if rows > 1 && c.distinct == Some(1) && nulls == 0 {
        out.push(Finding {
            check: "constant_column",
            column: Some(c.name.clone()),
            severity: Severity::Low,
            affected: rows,
            detail: format!(
                "every row has the same {} ({}); the column carries no information",
                c.name,
                c.min.clone().unwrap_or_default()
            ),
            sql: format!("SELECT DISTINCT {q} FROM {}", fixes.source.relation_sql()),
        });
    }
    if c.kind == Kind::Text && c.non_null > 0 {
        let (check, target) = match c.inferred_type().as_str() {
            "integer" => ("numbers_stored_as_text", "BIGINT"),
            "float" => ("numbers_stored_as_text", "DOUBLE"),
            "date" => ("dates_stored_as_text", "DATE"),
            "timestamp" => ("dates_stored_as_text", "TIMESTAMP"),
            _ => ("", ""),
        };
        if !check.is_empty() {
            out.push(Finding {
                check,
                column: Some(c.name.clone()),
                severity: Severity::Medium,
                affected: c.non_null,
                detail: format!(
                    "all {} values of text column {} are {}",
                    c.non_null,
                    c.name,
                    target.to_lowercase()
                ),
                sql: fixes.view_replacing(
                    "typed",
                    &c.name,
                    &format!("CAST(trim({q}) AS {target})"),
                ),
            });
        } else if c.parses.float * 2 >= c.non_null {
            let bad = c.non_null - c.parses.float;
            out.push(Finding {
                check: "mixed_types",
                column: Some(c.name.clone()),
                severity: Severity::Medium,
                affected: bad,
                detail: format!(
                    "{} of {} values of {} are numbers; {bad} are not",
                    c.parses.float, c.non_null, c.name
                ),
                sql: fixes.select_where(&format!(
                    "{q} IS NOT NULL AND try_cast(trim({q}) AS DOUBLE) IS NULL"
                )),
            });
        }
    }
    out
}

fn non_negative_by_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    NON_NEGATIVE_WORDS.iter().any(|w| lower.contains(w))
}

pub(crate) fn is_key(c: &ColumnStats, rows: i64) -> bool {
    let lower = c.name.to_lowercase();
    lower == "id" || lower.ends_with("_id") || (c.distinct == Some(rows) && c.kind == Kind::Integer)
}

/// Negative amounts, future dates and outliers, counted in one query.
async fn value_checks(state: &SessionState, fixes: &Fixes<'_>) -> Result<Vec<Finding>> {
    let rows = fixes.table.rows;
    let mut counts = Vec::new();
    let mut pending = Vec::new();
    for (i, c) in fixes.table.columns.iter().enumerate() {
        let q = quote_ident(&c.name);
        if c.kind.is_numeric() && non_negative_by_name(&c.name) {
            counts.push(format!("count(CASE WHEN {q} < 0 THEN 1 END) AS neg_{i}"));
            pending.push((i, "negative"));
        }
        if c.kind == Kind::Temporal
            && !matches!(
                c.data_type,
                DataType::Time32(_)
                    | DataType::Time64(_)
                    | DataType::Duration(_)
                    | DataType::Interval(_)
            )
        {
            counts.push(format!(
                "count(CASE WHEN {q} > now() THEN 1 END) AS fut_{i}"
            ));
            pending.push((i, "future"));
        }
        if c.kind.is_numeric() && !is_key(c, rows) {
            if let (Some(p25), Some(p75)) = (c.p25, c.p75) {
                let iqr = p75 - p25;
                if iqr > 0.0 {
                    let (lo, hi) = (p25 - 3.0 * iqr, p75 + 3.0 * iqr);
                    counts.push(format!(
                        "count(CASE WHEN {q} < {lo} OR {q} > {hi} THEN 1 END) AS out_{i}"
                    ));
                    pending.push((i, "outlier"));
                }
            }
        }
    }
    if counts.is_empty() {
        return Ok(vec![]);
    }
    let row = Row::query(
        state,
        &format!(
            "SELECT {} FROM {}",
            counts.join(", "),
            fixes.source.relation_sql()
        ),
    )
    .await?;
    let mut out = Vec::new();
    for (i, what) in pending {
        let c = &fixes.table.columns[i];
        let q = quote_ident(&c.name);
        let alias = match what {
            "negative" => format!("neg_{i}"),
            "future" => format!("fut_{i}"),
            _ => format!("out_{i}"),
        };
        let n = row.int(&alias).unwrap_or(0);
        if n == 0 {
            continue;
        }
        let pct = percent(n, rows).unwrap_or(0.0);
        out.push(match what {
            "negative" => Finding {
                check: "negative_values",
                column: Some(c.name.clone()),
                severity: Severity::High,
                affected: n,
                detail: format!("{n} rows have a negative {}, which cannot be below zero; the view clamps them to 0 (inspect them with WHERE {q} < 0)", c.name),
                sql: fixes.view_replacing("clamped", &c.name, &format!("GREATEST({q}, 0)")),
            },
            "future" => Finding {
                check: "future_dates",
                column: Some(c.name.clone()),
                severity: Severity::Medium,
                affected: n,
                detail: format!("{n} rows have a {} after now", c.name),
                sql: fixes.select_where(&format!("{q} > now()")),
            },
            _ => {
                let (p25, p75) = (c.p25.unwrap_or(0.0), c.p75.unwrap_or(0.0));
                let iqr = p75 - p25;
                let (lo, hi) = (p25 - 3.0 * iqr, p75 + 3.0 * iqr);
                Finding {
                    check: "outliers",
                    column: Some(c.name.clone()),
                    severity: Severity::by_share(pct, 5.0, 1.0).max(Severity::Medium),
                    affected: n,
                    detail: format!("{n} values of {} lie outside {lo} … {hi} (IQR method: Q1 − 3·IQR … Q3 + 3·IQR)", c.name),
                    sql: format!("{} ORDER BY {q}", fixes.select_where(&format!("{q} < {lo} OR {q} > {hi}"))),
                }
            }
        });
    }
    Ok(out)
}

/// One category written several ways: same value after `lower(trim(...))`.
async fn spellings(
    state: &SessionState,
    fixes: &Fixes<'_>,
    c: &ColumnStats,
) -> Result<Option<Finding>> {
    let categorical = c.kind == Kind::Text
        && c.inferred_type() == "text"
        && c.distinct.is_some_and(|d| d > 1 && d <= MAX_CATEGORIES);
    if !categorical {
        return Ok(None);
    }
    let q = quote_ident(&c.name);
    let sql = format!(
        "SELECT sum(total - top) AS affected, count(*) AS groups, min(example) AS example FROM (
           SELECT k, sum(n) AS total, max(n) AS top, count(*) AS variants,
                  string_agg(concat('''', raw, ''''), ' / ' ORDER BY raw) AS example
           FROM (SELECT lower(trim({q})) AS k, {q} AS raw, count(*) AS n
                 FROM {} WHERE {q} IS NOT NULL GROUP BY 1, 2) AS spelled
           GROUP BY k) AS grouped
         WHERE variants > 1",
        fixes.source.relation_sql()
    );
    let row = Row::query(state, &sql).await?;
    let affected = row.int("affected").unwrap_or(0);
    if affected == 0 {
        return Ok(None);
    }
    let groups = row.int("groups").unwrap_or(0);
    Ok(Some(Finding {
        check: "inconsistent_spelling",
        column: Some(c.name.clone()),
        severity: Severity::Medium,
        affected,
        detail: format!(
            "{groups} values of {} are written several ways (case or surrounding spaces), e.g. {}; {affected} rows differ from the most common spelling",
            c.name,
            row.text("example").unwrap_or_default()
        ),
        sql: fixes.view_replacing("normalized", &c.name, &format!("lower(trim({q}))")),
    }))
}

#[derive(Default)]
struct Builders {
    check: StringBuilder,
    column: StringBuilder,
    severity: StringBuilder,
    affected: Int64Builder,
    pct: Float64Builder,
    detail: StringBuilder,
    sql: StringBuilder,
}

impl Builders {
    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(self.check.finish()),
                Arc::new(self.column.finish()),
                Arc::new(self.severity.finish()),
                Arc::new(self.affected.finish()),
                Arc::new(self.pct.finish()),
                Arc::new(self.detail.finish()),
                Arc::new(self.sql.finish()),
            ],
        )?)
    }
}
