//! `STORED AS EXCEL`: a sheet of an `.xlsx`, `.xlsm`, `.xlsb`, `.xls` or `.ods` file as
//! a table, read with `calamine`.
//!
//! ```sql
//! CREATE EXTERNAL TABLE budget STORED AS EXCEL LOCATION 'budget.xlsx'
//!   OPTIONS ('sheet' 'Q1', 'range' 'A3:F40', 'has_header' 'true');
//! ```
//!
//! Options: `sheet` (default: the first), `range` (default: the used cells),
//! `has_header` (default true: the first row names the columns). Each column's type is
//! inferred from its cells: all whole numbers → BIGINT, numbers → DOUBLE, booleans →
//! BOOLEAN, dates → DATE (TIMESTAMP when any has a time of day), anything else →
//! VARCHAR; empty and error cells are NULL. The sheet is read once, at CREATE time and
//! at start-up, into memory: workbooks are small next to the tables they sit beside.

use std::sync::Arc;

use async_trait::async_trait;
use calamine::{open_workbook_auto, Data, Range, Reader};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::CreateExternalTable;

const MS_PER_DAY: i64 = 86_400_000;
/// Excel serial day of 1970-01-01 (the 1900 date system).
const UNIX_EPOCH_SERIAL: f64 = 25_569.0;

/// Creates tables `STORED AS EXCEL`.
#[derive(Debug, Default)]
pub struct ExcelTableFactory;

#[async_trait]
impl TableProviderFactory for ExcelTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let path = cmd
            .locations
            .first()
            .ok_or_else(|| DataFusionError::Plan("STORED AS EXCEL needs a LOCATION".into()))?
            .strip_prefix("file://")
            .unwrap_or(&cmd.locations[0])
            .to_string();
        let option = |key: &str| {
            cmd.options
                .iter()
                .find(|(k, _)| k.rsplit('.').next() == Some(key))
                .map(|(_, v)| v.clone())
        };
        let sheet = option("sheet");
        let range = option("range");
        let header = match option("has_header").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return plan_err!("EXCEL option has_header must be true or false, got '{other}'")
            }
        };
        let batch = tokio::task::spawn_blocking(move || {
            read_sheet(&path, sheet.as_deref(), range.as_deref(), header)
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Arc::new(table))
    }
}

/// Reads one sheet (or a range of it) into a batch.
fn read_sheet(
    path: &str,
    sheet: Option<&str>,
    range: Option<&str>,
    header: bool,
) -> Result<RecordBatch> {
    let mut workbook = open_workbook_auto(path)
        .map_err(|e| DataFusionError::Execution(format!("cannot open workbook {path}: {e}")))?;
    let names = workbook.sheet_names();
    let name = match sheet {
        Some(s) => names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(s))
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{path} has no sheet '{s}'; its sheets: {}",
                    names.join(", ")
                ))
            })?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan(format!("{path} has no sheets")))?,
    };
    let mut cells = workbook.worksheet_range(&name).map_err(|e| {
        DataFusionError::Execution(format!("cannot read sheet '{name}' of {path}: {e}"))
    })?;
    if let Some(range) = range {
        let (start, end) = parse_range(range)?;
        cells = cells.range(start, end);
    }
    to_batch(&cells, header)
}

/// `A1:D10` → ((row, col), (row, col)), zero-based.
fn parse_range(text: &str) -> Result<((u32, u32), (u32, u32))> {
    let cell = |s: &str| -> Option<(u32, u32)> {
        let s = s.trim().replace('$', "");
        let letters: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let digits = &s[letters.len()..];
        if letters.is_empty() || digits.is_empty() {
            return None;
        }
        let col = letters
            .to_ascii_uppercase()
            .bytes()
            .try_fold(0u32, |acc, b| {
                acc.checked_mul(26)?.checked_add((b - b'A' + 1) as u32)
            })?;
        let row: u32 = digits.parse().ok()?;
        Some((row.checked_sub(1)?, col.checked_sub(1)?))
    };
    match text
        .split_once(':')
        .and_then(|(a, b)| Some((cell(a)?, cell(b)?)))
    {
        Some((a, b)) if a.0 <= b.0 && a.1 <= b.1 => Ok((a, b)),
        _ => plan_err!("EXCEL option range must look like 'A1:D100', got '{text}'"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Empty,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Text,
}

fn kind_of(cell: &Data) -> Kind {
    match cell {
        Data::Empty | Data::Error(_) => Kind::Empty,
        Data::Int(_) => Kind::Int,
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Kind::Int,
        Data::Float(_) => Kind::Float,
        Data::Bool(_) => Kind::Bool,
        Data::DateTime(d) if d.is_datetime() => {
            if d.as_f64().fract() == 0.0 {
                Kind::Date
            } else {
                Kind::Timestamp
            }
        }
        _ => Kind::Text,
    }
}

/// The narrowest type that holds both.
fn widen(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (x, Empty) | (Empty, x) => x,
        (x, y) if x == y => x,
        (Int, Float) | (Float, Int) => Float,
        (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        _ => Text,
    }
}

fn to_batch(cells: &Range<Data>, header: bool) -> Result<RecordBatch> {
    let rows: Vec<&[Data]> = cells.rows().collect();
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let (names, body) = match (header, rows.split_first()) {
        (true, Some((first, rest))) => {
            let mut seen = std::collections::HashSet::new();
            let names = (0..width)
                .map(|i| {
                    let base = match first.get(i) {
                        Some(Data::Empty) | None => format!("column_{}", i + 1),
                        Some(d) => d.to_string().trim().to_string(),
                    };
                    let mut name = base.clone();
                    let mut n = 2;
                    while !seen.insert(name.clone()) {
                        name = format!("{base}_{n}");
                        n += 1;
                    }
                    name
                })
                .collect::<Vec<_>>();
            (names, rest.to_vec())
        }
        _ => ((1..=width).map(|i| format!("column_{i}")).collect(), rows),
    };
    let empty = Data::Empty;
    let mut fields = Vec::with_capacity(width);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
    for (c, name) in names.iter().enumerate() {
        let cell = |r: &[Data]| r.get(c).unwrap_or(&empty).clone();
        let kind = body
            .iter()
            .fold(Kind::Empty, |k, r| widen(k, kind_of(&cell(r))));
        let (data_type, array): (DataType, ArrayRef) = match kind {
            Kind::Int => {
                let mut b = Int64Builder::new();
                body.iter()
                    .for_each(|r| b.append_option(number(&cell(r)).map(|f| f as i64)));
                (DataType::Int64, Arc::new(b.finish()))
            }
            Kind::Float => {
                let mut b = Float64Builder::new();
                body.iter().for_each(|r| b.append_option(number(&cell(r))));
                (DataType::Float64, Arc::new(b.finish()))
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                body.iter().for_each(|r| {
                    b.append_option(match cell(r) {
                        Data::Bool(v) => Some(v),
                        _ => None,
                    })
                });
                (DataType::Boolean, Arc::new(b.finish()))
            }
            Kind::Date => {
                let mut b = Date32Builder::new();
                body.iter().for_each(|r| {
                    b.append_option(unix_ms(&cell(r)).map(|ms| (ms / MS_PER_DAY) as i32))
                });
                (DataType::Date32, Arc::new(b.finish()))
            }
            Kind::Timestamp => {
                let mut b = TimestampMillisecondBuilder::new();
                body.iter().for_each(|r| b.append_option(unix_ms(&cell(r))));
                (
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                    Arc::new(b.finish()),
                )
            }
            Kind::Text | Kind::Empty => {
                let mut b = StringBuilder::new();
                body.iter().for_each(|r| {
                    let v = cell(r);
                    b.append_option(match v {
                        Data::Empty | Data::Error(_) => None,
                        other => Some(other.to_string()),
                    })
                });
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        fields.push(Field::new(name, data_type, true));
        columns.push(array);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn number(cell: &Data) -> Option<f64> {
    match cell {
        Data::Int(i) => Some(*i as f64),
        Data::Float(f) => Some(*f),
        _ => None,
    }
}

fn unix_ms(cell: &Data) -> Option<i64> {
    match cell {
        Data::DateTime(d) => {
            Some(((d.as_f64() - UNIX_EPOCH_SERIAL) * MS_PER_DAY as f64).round() as i64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_type_widening() {
        assert_eq!(parse_range("A1:D10").unwrap(), ((0, 0), (9, 3)));
        assert_eq!(parse_range("$B$2:AA3").unwrap(), ((1, 1), (2, 26)));
        assert!(parse_range("D10:A1").is_err());
        assert!(parse_range("nonsense").is_err());
        assert_eq!(widen(Kind::Int, Kind::Float), Kind::Float);
        assert_eq!(widen(Kind::Empty, Kind::Bool), Kind::Bool);
        assert_eq!(widen(Kind::Int, Kind::Text), Kind::Text);
        assert_eq!(widen(Kind::Date, Kind::Timestamp), Kind::Timestamp);
    }
}
