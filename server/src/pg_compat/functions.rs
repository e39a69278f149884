//! Postgres catalog functions clients call that neither DataFusion nor
//! datafusion-postgres provide, with InsightFlow's real answers:
//!
//! - `col_description`, `obj_description`, `shobj_description`: NULL — InsightFlow has
//!   no comments on objects.
//! - `pg_get_indexdef`, `pg_get_ruledef`, `pg_get_serial_sequence`,
//!   `pg_advisory_unlock_all`: NULL — there are no indexes, rewrite rules, sequences or
//!   advisory locks.
//! - `pg_function_is_visible`, `pg_collation_is_visible`, `pg_type_is_visible`: true —
//!   every function, collation and type lives in `pg_catalog` or `public`,
//!   both on the search path.
//! - `pg_relation_is_publishable`: false, for an oid or its text — there are no
//!   publications.
//! - `session_user` (what `current_user` and `user` become): the connected user.
//! - `current_schema()`: the schema unqualified names resolve in, the session's
//!   (`SET search_path`).
//! - `current_setting(name [, missing_ok])`: the session's DataFusion settings by their
//!   full name, and the Postgres parameters InsightFlow reports; an unknown name is
//!   SQLSTATE 42704 unless `missing_ok`.
//! - `set_config(name, value, is_local)`: returns `value`, as Postgres does. The value is
//!   not kept: the parameters clients set this way (asyncpg's `jit`) have no meaning here;
//!   `SET` is how a session changes what InsightFlow does.
//! - `json_build_object(k1, v1, ...)`: a JSON object as text (SQLAlchemy's column
//!   reflection builds identity options with it).
//! - `pg_expandarray_items(array)`: the `(x, n)` pairs behind
//!   `information_schema._pg_expandarray` (see `rewrite`; pgjdbc's key metadata).
//! - `pg_domain_base_type(oid)`: the type a domain is finally based on, following
//!   `pg_type.typbasetype` (asyncpg's type introspection walks it with a correlated
//!   recursive CTE, which DataFusion cannot plan; see `rewrite`). Domains cannot be
//!   created in InsightFlow, so the map is read once from `pg_type` at start.
//! - `oidvector_types(text)`: the type names of a space-separated oid list
//!   (`pg_proc.proargtypes`), behind `pg_get_function_arguments` (see `rewrite`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use insightflow_catalog::DEFAULT_SCHEMA;

use super::{builtin_type_name, SERVER_VERSION};

pub fn register(ctx: &SessionContext) {
    for (name, arities) in [
        ("col_description", &[2][..]),
        ("obj_description", &[1, 2]),
        ("shobj_description", &[2]),
        ("pg_get_indexdef", &[1, 3]),
        ("pg_get_ruledef", &[1, 2]),
        ("pg_get_serial_sequence", &[2]),
        // A pool's reset (asyncpg): there are no advisory locks to release.
        ("pg_advisory_unlock_all", &[0]),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant::null_text(name, arities)));
    }
    for name in [
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "pg_type_is_visible",
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(
            name,
            &[1],
            ScalarValue::Boolean(Some(true)),
        )));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(
        "pg_relation_is_publishable",
        &[1],
        ScalarValue::Boolean(Some(false)),
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(SessionUser::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSchema::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(SetConfig::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(OidvectorTypes::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArrayItems::new()));
}

fn any_of(arities: &[usize], volatility: Volatility) -> Signature {
    if arities == [0] {
        return Signature::nullary(volatility);
    }
    Signature::one_of(
        arities.iter().map(|n| TypeSignature::Any(*n)).collect(),
        volatility,
    )
}

/// A function whose answer does not depend on its arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    signature: Signature,
    value: ScalarValue,
}

impl Constant {
    fn new(name: &'static str, arities: &[usize], value: ScalarValue) -> Self {
        Self {
            name,
            signature: any_of(arities, Volatility::Stable),
            value,
        }
    }

    fn null_text(name: &'static str, arities: &[usize]) -> Self {
        Self::new(name, arities, ScalarValue::Utf8(None))
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// The value of a Postgres parameter InsightFlow reports, by its lower-case name.
fn pg_parameter(name: &str) -> Option<&'static str> {
    Some(match name {
        "search_path" => "\"$user\", public",
        "server_version" => SERVER_VERSION,
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "jit" | "default_transaction_read_only" | "transaction_read_only" => "off",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "max_identifier_length" => "63",
        "statement_timeout" | "lock_timeout" => "0",
        "lc_collate" | "lc_ctype" => "C",
        "application_name" => "",
        _ => return None,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = as_string_array(&arrays[0])?;
        let missing_ok = arrays
            .get(1)
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>().cloned());
        let settings = args.config_options.entries();
        let mut out = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            let Some(name) = names.is_valid(i).then(|| names.value(i).to_lowercase()) else {
                out.push(None);
                continue;
            };
            let schema = &args.config_options.catalog.default_schema;
            let value = match name.as_str() {
                "search_path" if schema != DEFAULT_SCHEMA => Some(schema.clone()),
                _ => pg_parameter(&name).map(str::to_string),
            };
            let value = value.or_else(|| {
                if name == "timezone" {
                    return Some(
                        args.config_options
                            .execution
                            .time_zone
                            .clone()
                            .unwrap_or_else(|| "UTC".into()),
                    );
                }
                settings
                    .iter()
                    .find(|e| e.key == name)
                    .map(|e| e.value.clone().unwrap_or_default())
            });
            match value {
                Some(v) => out.push(Some(v)),
                None if missing_ok
                    .as_ref()
                    .is_some_and(|m| m.is_valid(i) && m.value(i)) =>
                {
                    out.push(None)
                }
                None => {
                    return Err(DataFusionError::Plan(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )))
                }
            }
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        scalar_if_all_scalar(&args.args, array, rows)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SetConfig {
    signature: Signature,
}

impl SetConfig {
    fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = args.args[1].cast_to(&DataType::Utf8, None)?;
        Ok(value)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OidvectorTypes {
    signature: Signature,
}

impl OidvectorTypes {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OidvectorTypes {
    fn name(&self) -> &str {
        "oidvector_types"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = as_string_array(&arrays[0])?;
        let names: StringArray = oids
            .iter()
            .map(|v| {
                v.map(|list| {
                    list.split_whitespace()
                        .map(|oid| {
                            oid.parse::<i64>()
                                .ok()
                                .and_then(builtin_type_name)
                                .unwrap_or("unknown")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            })
            .collect();
        scalar_if_all_scalar(&args.args, Arc::new(names), rows)
    }
}

fn scalar_if_all_scalar(
    args: &[ColumnarValue],
    array: ArrayRef,
    _rows: usize,
) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Plan(
                "json_build_object takes an even number of arguments: key, value, ...".into(),
            ));
        }
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows.max(1).min(arrays.first().map_or(1, |a| a.len())) {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.insert(scalar_text(&key).unwrap_or_default(), scalar_json(&value));
            }
            out.push(Some(serde_json::Value::Object(object).to_string()));
        }
        scalar_if_all_scalar(&args.args, Arc::new(StringArray::from(out)), rows)
    }
}

fn scalar_text(v: &ScalarValue) -> Option<String> {
    (!v.is_null()).then(|| match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    })
}

fn scalar_json(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value;
    if v.is_null() {
        return Value::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        v if v.data_type().is_numeric() => v
            .to_string()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(v.to_string())),
        v => Value::String(scalar_text(v).unwrap_or_default()),
    }
}

/// `pg_expandarray_items([a, b])` = `[{x: a, n: 1}, {x: b, n: 2}]`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArrayItems {
    signature: Signature,
}

impl ExpandArrayItems {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn expand_item_type(element: &DataType) -> DataType {
    DataType::Struct(
        vec![
            datafusion::arrow::datatypes::Field::new("x", element.clone(), true),
            datafusion::arrow::datatypes::Field::new("n", DataType::Int32, false),
        ]
        .into(),
    )
}

impl ScalarUDFImpl for ExpandArrayItems {
    fn name(&self) -> &str {
        "pg_expandarray_items"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let DataType::List(element) = &args[0] else {
            return Err(DataFusionError::Plan(format!(
                "_pg_expandarray takes an array, not {}",
                args[0]
            )));
        };
        Ok(DataType::new_list(
            expand_item_type(element.data_type()),
            true,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Int32Array, ListArray, StructArray};
        use datafusion::arrow::buffer::OffsetBuffer;
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let list = arrays[0]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| DataFusionError::Plan("_pg_expandarray takes an array".into()))?;
        let offsets = list.value_offsets();
        let positions: Int32Array = (0..list.len())
            .flat_map(|i| 1..=(offsets[i + 1] - offsets[i]))
            .collect();
        let values = list.values().slice(
            offsets[0] as usize,
            (offsets[list.len()] - offsets[0]) as usize,
        );
        let DataType::Struct(fields) = expand_item_type(values.data_type()) else {
            unreachable!("expand_item_type is a struct")
        };
        let items = StructArray::try_new(fields, vec![values, Arc::new(positions)], None)?;
        let rebased: Vec<i32> = offsets.iter().map(|o| o - offsets[0]).collect();
        let out = ListArray::try_new(
            Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
                items.data_type().clone(),
                true,
            )),
            OffsetBuffer::new(rebased.into()),
            Arc::new(items),
            list.nulls().cloned(),
        )?;
        scalar_if_all_scalar(&args.args, Arc::new(out), rows)
    }
}

/// Registers `pg_domain_base_type` with the domains `pg_type` holds.
pub async fn register_domain_base_type(ctx: &SessionContext) -> Result<()> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int32Type;
    let batches = ctx
        .sql("SELECT oid, typbasetype FROM pg_catalog.pg_type WHERE typtype = 'd'")
        .await?
        .collect()
        .await?;
    let mut bases = std::collections::HashMap::new();
    for batch in &batches {
        let oids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int32)?;
        let base = datafusion::arrow::compute::cast(batch.column(1), &DataType::Int32)?;
        for (oid, base) in oids
            .as_primitive::<Int32Type>()
            .iter()
            .zip(base.as_primitive::<Int32Type>().iter())
        {
            if let (Some(oid), Some(base)) = (oid, base) {
                bases.insert(oid, base);
            }
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(DomainBaseType {
        signature: Signature::any(1, Volatility::Immutable),
        bases: bases.into_iter().collect(),
    }));
    Ok(())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DomainBaseType {
    signature: Signature,
    bases: std::collections::BTreeMap<i32, i32>,
}

impl ScalarUDFImpl for DomainBaseType {
    fn name(&self) -> &str {
        "pg_domain_base_type"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Int32Array};
        use datafusion::arrow::datatypes::Int32Type;
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
        let out: Int32Array = oids
            .as_primitive::<Int32Type>()
            .iter()
            .map(|oid| {
                let mut current = oid?;
                let mut base = None;
                // Bounded: a chain of domains is short, and a cycle cannot loop.
                for _ in 0..32 {
                    match self.bases.get(&current) {
                        Some(&next) if next != 0 => {
                            base = Some(next);
                            current = next;
                        }
                        _ => break,
                    }
                }
                base
            })
            .collect();
        scalar_if_all_scalar(&args.args, Arc::new(out), rows)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionUser {
    signature: Signature,
}

impl SessionUser {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for SessionUser {
    fn name(&self) -> &str {
        "session_user"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let user = insightflow_catalog::Caller::current().map(|c| c.name().to_string());
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(user)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSchema {
    signature: Signature,
}

impl CurrentSchema {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for CurrentSchema {
    fn name(&self) -> &str {
        "current_schema"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let schema = args.config_options.catalog.default_schema.clone();
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(schema))))
    }
}
