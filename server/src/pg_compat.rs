//! Functions Postgres clients call that DataFusion lacks or answers differently.
//!
//! SQLAlchemy parses `version()`, pgjdbc and psql read `server_version`: both must say
//! PostgreSQL 16 while naming InsightFlow.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// What `server_version` reports at start-up and in `SHOW server_version`.
pub const SERVER_VERSION: &str = "16.6";

/// The text of `SELECT version()`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (InsightFlow {}, Apache DataFusion {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

pub fn register(ctx: &SessionContext) {
    let version = version_string();
    let udf = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(version.clone()))))
        }),
    );
    ctx.register_udf(udf);
}
