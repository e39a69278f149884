//! The batch encoder must put on the wire exactly what arrow-pg's row encoder does.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, ListArray, StringArray, StringViewArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Int32Type, Schema};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use pgwire::api::portal::Format;

use super::*;

fn batch() -> RecordBatch {
    let decimals = |precision, scale, values: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(precision, scale)
                .unwrap(),
        )
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "b",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                None,
                Some(false),
            ])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![
                Some(i16::MIN),
                Some(-1),
                None,
                Some(0),
                Some(7),
                Some(i16::MAX),
            ])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                Some(42),
                Some(0),
                None,
                Some(-9),
                Some(i32::MAX),
            ])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                None,
                Some(1),
                Some(-10),
                Some(123_456_789_012),
                Some(i64::MAX),
            ])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(f32::NAN),
                None,
                Some(-0.1),
                Some(f32::INFINITY),
                Some(3e-8),
            ])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(0.1),
                Some(-2.5e300),
                Some(f64::NEG_INFINITY),
                None,
                Some(1.0),
                Some(1e-7),
            ])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some(""),
                None,
                Some("héllo, \"w\"\n"),
                Some("{1,2}"),
                Some("x y"),
            ])),
        ),
        (
            "sv",
            Arc::new(StringViewArray::from(vec![
                Some("a long string view value, over twelve bytes"),
                None,
                Some(""),
                Some("b"),
                Some("NULL"),
                Some("tab\t"),
            ])),
        ),
        (
            "d",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(-719_528),
                Some(19_700),
                None,
                Some(2_932_896),
                Some(-1),
            ])),
        ),
        (
            "dec",
            decimals(
                15,
                2,
                vec![
                    Some(0),
                    Some(5),
                    Some(-5),
                    Some(-123_456),
                    None,
                    Some(999_999_999_999_999),
                ],
            ),
        ),
        (
            "dec0",
            decimals(
                10,
                0,
                vec![
                    Some(0),
                    Some(-7),
                    None,
                    Some(42),
                    Some(9_999_999_999),
                    Some(1),
                ],
            ),
        ),
        (
            "dec28",
            decimals(
                28,
                10,
                vec![
                    Some(1),
                    Some(-10_000_000_000),
                    Some(123_456_789_012_345_678),
                    None,
                    Some(0),
                    Some(-1),
                ],
            ),
        ),
        (
            "dec38",
            decimals(
                38,
                4,
                vec![Some(1), None, Some(-10), Some(0), Some(5), Some(6)],
            ),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(0),
                None,
                Some(1_700_000_000_123_456),
                Some(-1),
                Some(5),
                Some(6),
            ])),
        ),
        (
            "list",
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1), None]),
                None,
                Some(vec![]),
                Some(vec![Some(3)]),
                Some(vec![Some(4)]),
                Some(vec![Some(5)]),
            ])),
        ),
    ];
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (name, array) in columns {
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    // A `pg.oid_alias` column keeps arrow-pg's rules (oid is unsigned in binary).
    fields.push(
        Field::new("oid", DataType::Int32, true).with_metadata(HashMap::from([(
            "pg.oid_alias".to_string(),
            "oid".to_string(),
        )])),
    );
    arrays.push(Arc::new(Int32Array::from(vec![
        Some(1),
        Some(-1),
        None,
        Some(3),
        Some(4),
        Some(5),
    ])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn assert_same_rows(format: Format, options: FormatOptions) {
    assert_same_rows_of(batch(), format, options);
}

fn assert_same_rows_of(batch: RecordBatch, format: Format, options: FormatOptions) {
    let fields = Arc::new(
        arrow_schema_to_pg_fields(&batch.schema(), &format, Some(Arc::new(options))).unwrap(),
    );
    let expected: Vec<DataRow> = encode_recordbatch(fields.clone(), batch.clone())
        .collect::<PgWireResult<_>>()
        .unwrap();
    let actual = encode_batch(&fields, &batch).unwrap();
    assert_eq!(actual.len(), expected.len());
    for (row, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "row {row} differs ({format:?})");
    }
}

#[test]
fn text_rows_match_arrow_pg() {
    assert_same_rows(Format::UnifiedText, FormatOptions::default());
}

#[test]
fn binary_rows_match_arrow_pg() {
    assert_same_rows(Format::UnifiedBinary, FormatOptions::default());
}

#[test]
fn other_date_styles_match_arrow_pg() {
    let mut options = FormatOptions::default();
    options.date_style = "German, DMY".to_string();
    assert_same_rows(Format::UnifiedText, options);
}

#[test]
fn mixed_formats_per_column_match_arrow_pg() {
    let codes = (0..16).map(|i| (i % 2) as i16).collect();
    assert_same_rows(Format::Individual(codes), FormatOptions::default());
}

#[test]
fn decimals_of_every_scale_match_arrow_pg() {
    // Zero groups inside, at the end and after the point; tiny and widest values.
    let mut values: Vec<i128> = vec![
        1,
        -1,
        10_000,
        100_000_000,
        1_000_000_000_000,
        12_340_000,
        5_0000_0001,
    ];
    values.push(9_999_999_999_999_999_999_999_999_999);
    values.push(-9_999_999_999_999_999_999_999_999_999);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for digits in 1..=28u32 {
        for _ in 0..20 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = (u128::from(x) * u128::from(x.rotate_left(17))) % 10u128.pow(digits);
            values.push(if x & 1 == 0 { v as i128 } else { -(v as i128) });
        }
    }
    for scale in 0..=12i8 {
        let array: ArrayRef = Arc::new(
            Decimal128Array::from(values.iter().map(|v| Some(*v)).collect::<Vec<_>>())
                .with_precision_and_scale(28, scale)
                .unwrap(),
        );
        let schema = Arc::new(Schema::new(vec![Field::new(
            "d",
            array.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            assert_same_rows_of(batch.clone(), format, FormatOptions::default());
        }
    }
}

#[test]
fn dates_beyond_chrono_match_arrow_pg() {
    // Both ends of what chrono represents, and the days just past them.
    let (first, last) = (*super::CHRONO_DAYS.start(), *super::CHRONO_DAYS.end());
    let array: ArrayRef = Arc::new(Date32Array::from(vec![
        Some(i32::MIN),
        Some(i32::MAX),
        Some(0),
        Some(first - 1),
        Some(first),
        Some(last),
        Some(last + 1),
    ]));
    let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
    let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
    for format in [Format::UnifiedText, Format::UnifiedBinary] {
        assert_same_rows_of(batch.clone(), format, FormatOptions::default());
    }
}

#[test]
fn decimal_text_prints_every_digit_of_the_scale() {
    let text = |v, s| {
        let mut buf = BytesMut::new();
        decimal_text(&mut buf, v, s);
        String::from_utf8(buf[4..].to_vec()).unwrap()
    };
    assert_eq!(text(5, 2), "0.05");
    assert_eq!(text(-5, 2), "-0.05");
    assert_eq!(text(1700, 2), "17.00");
    assert_eq!(text(-123_456, 3), "-123.456");
    assert_eq!(text(0, 0), "0");
    assert_eq!(text(-42, 0), "-42");
}
