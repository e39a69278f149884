//! Query results as pg `DataRow`s, a record batch at a time.
//!
//! arrow-pg encodes value by value: for every value it matches the Arrow type, downcasts
//! the array, checks the field's metadata and (for text) formats through `write!`, and
//! every row gets its own buffer. Sending `lineitem` that way cost more server time than
//! PostgreSQL's own server spends. Here each column is resolved once per batch to a typed
//! writer, the common types (integers, floats, booleans, strings, dates, decimals up to
//! 28 digits) are written straight into one buffer for the whole batch, and that buffer
//! is split into rows without copying. Every other column — Postgres-specific types (`oid`, `"char"`),
//! lists, structs, intervals, timestamps — is written by arrow-pg's own encoder, so the
//! bytes on the wire are the same as before; `tests` checks that for every fast type.

use std::ops::RangeInclusive;
use std::sync::LazyLock;

use bytes::BytesMut;
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion_postgres::arrow_pg::encoder::{encode_value, Encoder};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

/// Days from 1970-01-01 (Arrow's `Date32`) to 2000-01-01 (Postgres' binary `date`).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Widest decimal arrow-pg sends (through `rust_decimal`); wider ones keep its error.
const MAX_FAST_DECIMAL_PRECISION: u8 = 28;

/// The rows of `batch`, encoded for `fields` (one per column, from
/// `arrow_schema_to_pg_fields`).
pub(crate) fn encode_batch(
    fields: &[FieldInfo],
    batch: &RecordBatch,
) -> PgWireResult<Vec<DataRow>> {
    let schema = batch.schema();
    let columns: Vec<Column> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .zip(fields)
        .map(|((array, field), pg)| Column::new(array, field, pg))
        .collect();
    let rows = batch.num_rows();
    let mut buf = BytesMut::with_capacity(rows * (columns.len() * 12 + 16));
    let mut ends = Vec::with_capacity(rows);
    for row in 0..rows {
        for column in &columns {
            column.write(&mut buf, row)?;
        }
        ends.push(buf.len());
    }
    let count = columns.len() as i16;
    let mut start = 0;
    Ok(ends
        .into_iter()
        .map(|end| {
            let row = buf.split_to(end - start);
            start = end;
            DataRow::new(row, count)
        })
        .collect())
}

/// One column of a batch, resolved to how its values are written.
struct Column<'a> {
    values: Values<'a>,
    binary: bool,
    pg: &'a FieldInfo,
}

enum Values<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Utf8(&'a StringArray),
    Utf8View(&'a StringViewArray),
    /// `iso`: the session's DateStyle prints `YYYY-MM-DD`.
    Date32 {
        array: &'a Date32Array,
        iso: bool,
    },
    Decimal {
        array: &'a Decimal128Array,
        scale: u32,
    },
    /// Written by arrow-pg.
    Other {
        array: &'a ArrayRef,
        field: &'a Field,
    },
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef, field: &'a Field, pg: &'a FieldInfo) -> Self {
        let binary = pg.format() == FieldFormat::Binary;
        let ty = pg.datatype();
        // `pg.*` metadata marks Postgres-specific columns (`oid`, `"char"`, `vector`):
        // arrow-pg's rules.
        let plain = !field.metadata().keys().any(|key| key.starts_with("pg."));
        let values = match field.data_type() {
            DataType::Boolean if plain && *ty == Type::BOOL => Values::Bool(array.as_boolean()),
            DataType::Int16 if plain && *ty == Type::INT2 => Values::Int16(array.as_primitive()),
            DataType::Int32 if plain && *ty == Type::INT4 => Values::Int32(array.as_primitive()),
            DataType::Int64 if plain && *ty == Type::INT8 => Values::Int64(array.as_primitive()),
            DataType::Float32 if plain && *ty == Type::FLOAT4 => {
                Values::Float32(array.as_primitive())
            }
            DataType::Float64 if plain && *ty == Type::FLOAT8 => {
                Values::Float64(array.as_primitive())
            }
            DataType::Utf8 if plain && is_text(ty) => Values::Utf8(array.as_string()),
            DataType::Utf8View if plain && is_text(ty) => Values::Utf8View(array.as_string_view()),
            DataType::Date32 if plain && *ty == Type::DATE => Values::Date32 {
                array: array.as_primitive(),
                iso: iso_dates(pg.format_options()),
            },
            DataType::Decimal128(precision, scale)
                if plain
                    && *ty == Type::NUMERIC
                    && *precision <= MAX_FAST_DECIMAL_PRECISION
                    && *scale >= 0 =>
            {
                Values::Decimal {
                    array: array.as_primitive(),
                    scale: *scale as u32,
                }
            }
            _ => Values::Other { array, field },
        };
        Self { values, binary, pg }
    }

    fn write(&self, buf: &mut BytesMut, row: usize) -> PgWireResult<()> {
        let binary = self.binary;
        match self.values {
            Values::Bool(a) => match (!a.is_null(row)).then(|| a.value(row)) {
                Some(v) if binary => fixed(buf, &[v as u8]),
                Some(v) => fixed(buf, if v { b"t" } else { b"f" }),
                None => null(buf),
            },
            Values::Int16(a) => int(buf, binary, (!a.is_null(row)).then(|| a.value(row))),
            Values::Int32(a) => int(buf, binary, (!a.is_null(row)).then(|| a.value(row))),
            Values::Int64(a) => int(buf, binary, (!a.is_null(row)).then(|| a.value(row))),
            Values::Float32(a) => match (!a.is_null(row)).then(|| a.value(row)) {
                Some(v) if binary => fixed(buf, &v.to_bits().to_be_bytes()),
                v => self.through_pgwire(buf, &v)?,
            },
            Values::Float64(a) => match (!a.is_null(row)).then(|| a.value(row)) {
                Some(v) if binary => fixed(buf, &v.to_bits().to_be_bytes()),
                v => self.through_pgwire(buf, &v)?,
            },
            Values::Utf8(a) => match (!a.is_null(row)).then(|| a.value(row)) {
                Some(v) => fixed(buf, v.as_bytes()),
                None => null(buf),
            },
            Values::Utf8View(a) => match (!a.is_null(row)).then(|| a.value(row)) {
                Some(v) => fixed(buf, v.as_bytes()),
                None => null(buf),
            },
            Values::Date32 { array, iso } => {
                match (!array.is_null(row)).then(|| array.value(row)) {
                    None => null(buf),
                    // Days chrono cannot represent are NULL to arrow-pg: keep its answer.
                    Some(days) if binary && CHRONO_DAYS.contains(&days) => {
                        fixed(buf, &(days - PG_EPOCH_DAYS).to_be_bytes())
                    }
                    Some(days) => match date(days) {
                        Some(d) if iso && (0..=9999).contains(&d.year()) => iso_date(buf, d),
                        d => self.through_pgwire(buf, &d)?,
                    },
                }
            }
            Values::Decimal { array, scale } => {
                match (!array.is_null(row)).then(|| array.value(row)) {
                    Some(v) if binary => decimal_binary(buf, v, scale),
                    Some(v) => decimal_text(buf, v, scale),
                    None => null(buf),
                }
            }
            Values::Other { array, field } => {
                let mut out = Writer(buf);
                encode_value(&mut out, array, row, field, self.pg)?;
            }
        }
        Ok(())
    }

    /// Writes `value` with pgwire's own text or binary form for this column's type.
    fn through_pgwire<T: ToSql + ToSqlText>(
        &self,
        buf: &mut BytesMut,
        value: &T,
    ) -> PgWireResult<()> {
        Writer(buf).encode_field(value, self.pg)
    }
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME)
}

fn iso_dates(options: &FormatOptions) -> bool {
    options
        .date_style
        .split(',')
        .next()
        .is_some_and(|style| style.trim().eq_ignore_ascii_case("iso"))
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// The `Date32` values chrono can represent: a range check instead of building a date
/// for every value of a binary column.
static CHRONO_DAYS: LazyLock<RangeInclusive<i32>> = LazyLock::new(|| {
    NaiveDate::MIN.num_days_from_ce() - UNIX_EPOCH_FROM_CE
        ..=NaiveDate::MAX.num_days_from_ce() - UNIX_EPOCH_FROM_CE
});

fn date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_FROM_CE)?)
}

// Writes use `extend_from_slice`, which inlines: `BufMut::put_*` calls through
// `put_slice`, which does not (across crates, without LTO), once per value.

fn null(buf: &mut BytesMut) {
    buf.extend_from_slice(&i32::to_be_bytes(-1));
}

fn fixed(buf: &mut BytesMut, bytes: &[u8]) {
    buf.extend_from_slice(&i32::to_be_bytes(bytes.len() as i32));
    buf.extend_from_slice(bytes);
}

/// Integers: big-endian in binary, decimal digits in text.
trait Integer: itoa::Integer {
    fn be_bytes(self, out: &mut BytesMut);
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            fn be_bytes(self, out: &mut BytesMut) {
                fixed(out, &self.to_be_bytes());
            }
        }
    )*};
}
integer!(i16, i32, i64);

fn int<T: Integer>(buf: &mut BytesMut, binary: bool, value: Option<T>) {
    match value {
        None => null(buf),
        Some(v) if binary => v.be_bytes(buf),
        Some(v) => fixed(buf, itoa::Buffer::new().format(v).as_bytes()),
    }
}

/// `YYYY-MM-DD` for a year in 0..=9999.
fn iso_date(buf: &mut BytesMut, d: NaiveDate) {
    let (y, m, day) = (d.year() as u32, d.month(), d.day());
    let digits = [
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (day / 10) as u8,
        b'0' + (day % 10) as u8,
    ];
    fixed(buf, &digits);
}

/// A decimal as Postgres (and `rust_decimal`) print it: every digit of the scale.
fn decimal_text(buf: &mut BytesMut, value: i128, scale: u32) {
    let mut digits = itoa::Buffer::new();
    let text = match u64::try_from(value.unsigned_abs()) {
        Ok(small) => digits.format(small),
        Err(_) => digits.format(value.unsigned_abs()),
    };
    let scale = scale as usize;
    let sign = usize::from(value < 0);
    let int_len = text.len().saturating_sub(scale);
    let len = sign + int_len.max(1) + if scale > 0 { 1 + scale } else { 0 };
    buf.extend_from_slice(&i32::to_be_bytes(len as i32));
    if value < 0 {
        buf.extend_from_slice(b"-");
    }
    if int_len == 0 {
        buf.extend_from_slice(b"0");
    } else {
        buf.extend_from_slice(&text.as_bytes()[..int_len]);
    }
    if scale > 0 {
        buf.extend_from_slice(b".");
        for _ in text.len()..scale {
            buf.extend_from_slice(b"0");
        }
        buf.extend_from_slice(&text.as_bytes()[int_len..]);
    }
}

/// A decimal in Postgres' binary `numeric` form (base-10000 groups), exactly as
/// `rust_decimal` writes it for arrow-pg: zero has no groups and scale 0, and trailing
/// zero groups after the point are left out.
fn decimal_binary(buf: &mut BytesMut, value: i128, scale: u32) {
    if value == 0 {
        buf.extend_from_slice(&i32::to_be_bytes(8));
        buf.extend_from_slice(&[0; 8]);
        return;
    }
    // Align the scale to whole groups; < 10^31 for precision <= 28.
    let mut mantissa = value.unsigned_abs() * 10u128.pow((4 - scale % 4) % 4);
    let mut groups = [0u16; 10];
    let mut count = 0;
    // 64-bit division while the value fits (almost always): 128-bit is a library call.
    while mantissa > u128::from(u64::MAX) {
        groups[count] = (mantissa % 10_000) as u16;
        mantissa /= 10_000;
        count += 1;
    }
    let mut small = mantissa as u64;
    while small > 0 {
        groups[count] = (small % 10_000) as u16;
        small /= 10_000;
        count += 1;
    }
    groups[..count].reverse();
    let weight = count as i16 - scale.div_ceil(4) as i16 - 1;
    if weight >= 0 {
        let integer = (weight + 1) as usize;
        while count > integer && groups[count - 1] == 0 {
            count -= 1;
        }
    }
    buf.extend_from_slice(&i32::to_be_bytes(8 + 2 * count as i32));
    buf.extend_from_slice(&u16::to_be_bytes(count as u16));
    buf.extend_from_slice(&i16::to_be_bytes(weight));
    buf.extend_from_slice(&u16::to_be_bytes(if value < 0 { 0x4000 } else { 0 }));
    buf.extend_from_slice(&u16::to_be_bytes(scale as u16));
    for group in &groups[..count] {
        buf.extend_from_slice(&u16::to_be_bytes(*group));
    }
}

/// arrow-pg's [`Encoder`] over the batch buffer: a value's length, then its bytes in
/// the field's format (what pgwire's `DataRowEncoder` writes).
struct Writer<'b>(&'b mut BytesMut);

impl Encoder for Writer<'_> {
    type Item = ();

    fn encode_field<T>(&mut self, value: &T, pg_field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let buf = &mut *self.0;
        let at = buf.len();
        buf.extend_from_slice(&i32::to_be_bytes(-1));
        let written = if pg_field.format() == FieldFormat::Text {
            value.to_sql_text(pg_field.datatype(), buf, pg_field.format_options())
        } else {
            value.to_sql(pg_field.datatype(), buf)
        }
        .map_err(PgWireError::ApiError)?;
        if let IsNull::No = written {
            let len = (buf.len() - at - 4) as i32;
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn take_row(&mut self) {}
}

#[cfg(test)]
mod tests;
