//! Errors to the wire, in one place.
//!
//! Find the root cause of a DataFusion error, give it a protocol-neutral [`ErrorClass`]
//! carrying a Postgres SQLSTATE, then turn that into a pgwire `ErrorInfo` or a
//! `tonic::Status`. Clients branch on these codes (a driver retries 40001, psql shows
//! 42P01 as "relation does not exist"), so each front end must agree.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use insightflow_catalog::Error as CatalogError;
use insightflow_functions::ask::AskError;
use pgwire::error::{ErrorInfo, PgWireError};

/// A SQLSTATE and the message to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorClass {
    pub sqlstate: &'static str,
    pub message: String,
}

pub mod sqlstate {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const SYNTAX_OR_ACCESS: &str = "42000";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const RATE_LIMITED: &str = "53400";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const CONNECTION_FAILED: &str = "08001";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const IO_ERROR: &str = "58030";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const SYSTEM_ERROR: &str = "58000";
    pub const INTERNAL: &str = "XX000";
}

/// Classifies any DataFusion error by its root cause.
pub fn classify(e: &DataFusionError) -> ErrorClass {
    use sqlstate::*;
    let root = e.find_root();
    // The root cause's own words, without DataFusion's "Error during planning: " style
    // prefixes: that is what a Postgres user expects to read.
    let message = match root {
        DataFusionError::SQL(err, _) => err.to_string(),
        other => other.message().to_string(),
    };
    let text = root.strip_backtrace();
    let lower = text.to_lowercase();
    let code = match root {
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::SchemaError(err, _) => match err.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            _ => SYNTAX_OR_ACCESS,
        },
        DataFusionError::ArrowError(err, _) => match err.as_ref() {
            ArrowError::DivideByZero => DIVISION_BY_ZERO,
            ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT_REPRESENTATION,
            ArrowError::IoError(..) => IO_ERROR,
            ArrowError::MemoryError(_) => OUT_OF_MEMORY,
            _ => DATA_EXCEPTION,
        },
        DataFusionError::Plan(_) => plan_code(&lower),
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => IO_ERROR,
        DataFusionError::ParquetError(_) => IO_ERROR,
        DataFusionError::Execution(_) if lower.contains("divide by zero") => DIVISION_BY_ZERO,
        DataFusionError::Execution(_) if lower.contains("already exists") => DUPLICATE_TABLE,
        DataFusionError::Execution(_) if lower.contains("not found") => UNDEFINED_TABLE,
        DataFusionError::Execution(_) => DATA_EXCEPTION,
        DataFusionError::Configuration(_) => SYNTAX_OR_ACCESS,
        DataFusionError::External(inner) if inner.downcast_ref::<AskError>().is_some() => {
            match inner.downcast_ref::<AskError>() {
                Some(AskError::Refused { .. }) => INSUFFICIENT_PRIVILEGE,
                Some(AskError::Invalid { error, .. }) => classify(error).sqlstate,
                Some(AskError::Model(_)) => SYSTEM_ERROR,
                _ => INVALID_PARAMETER_VALUE,
            }
        }
        DataFusionError::External(inner) => match inner.downcast_ref::<CatalogError>() {
            Some(CatalogError::PathNotAllowed { .. } | CatalogError::PermissionDenied { .. }) => {
                INSUFFICIENT_PRIVILEGE
            }
            Some(CatalogError::NotSupported { .. }) => FEATURE_NOT_SUPPORTED,
            Some(CatalogError::TableNotFound { .. }) => UNDEFINED_TABLE,
            Some(CatalogError::LimitExceeded { .. }) => PROGRAM_LIMIT_EXCEEDED,
            Some(CatalogError::Connection { .. }) => CONNECTION_FAILED,
            Some(CatalogError::UserExists { .. }) => DUPLICATE_OBJECT,
            Some(CatalogError::UserNotFound { .. }) => UNDEFINED_TABLE,
            Some(CatalogError::Io { .. }) => IO_ERROR,
            _ if inner.downcast_ref::<std::io::Error>().is_some() => IO_ERROR,
            _ => INTERNAL,
        },
        _ => INTERNAL,
    };
    ErrorClass {
        sqlstate: code,
        message,
    }
}

fn plan_code(lower: &str) -> &'static str {
    use sqlstate::*;
    if lower.contains("table") && lower.contains("not found") {
        UNDEFINED_TABLE
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        UNDEFINED_COLUMN
    } else if lower.contains("invalid function")
        || lower.contains("function") && lower.contains("not found")
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("already exists") {
        DUPLICATE_TABLE
    } else if lower.contains("cannot coerce")
        || lower.contains("type") && lower.contains("mismatch")
    {
        DATATYPE_MISMATCH
    } else if lower.contains("sql parser error") || lower.contains("expected") {
        SYNTAX_ERROR
    } else {
        SYNTAX_OR_ACCESS
    }
}

/// The error a pgwire client sees.
pub fn to_pg_error(e: &DataFusionError) -> PgWireError {
    let class = classify(e);
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        class.sqlstate.to_string(),
        class.message,
    )))
}

/// Rewrites errors coming out of datafusion-postgres (which wraps DataFusion errors as
/// opaque `ApiError`s, all XX000) into errors with a real SQLSTATE.
pub fn refine_pg_error(error: &mut PgWireError) {
    if let Some(class) = api_error_class(error) {
        *error = PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_string(),
            class.sqlstate.to_string(),
            class.message,
        )));
    }
}

/// The class of a DataFusion or SQL-parser error pgwire carries opaquely.
fn api_error_class(error: &PgWireError) -> Option<ErrorClass> {
    let PgWireError::ApiError(inner) = error else {
        return None;
    };
    if let Some(df) = inner.downcast_ref::<DataFusionError>() {
        Some(classify(df))
    } else {
        inner
            .downcast_ref::<ParserError>()
            .map(|p| classify(&DataFusionError::SQL(Box::new(p.clone()), None)))
    }
}

/// The SQLSTATE and message a client will see for `error`.
pub fn pg_error_class(error: &PgWireError) -> (String, String) {
    if let Some(class) = api_error_class(error) {
        return (class.sqlstate.to_string(), class.message);
    }
    match error {
        PgWireError::UserError(info) => (info.code.clone(), info.message.clone()),
        other => (sqlstate::INTERNAL.to_string(), other.to_string()),
    }
}

/// The SQLSTATE a Flight status carries in its message, or one for its code.
pub fn status_sqlstate(status: &tonic::Status) -> String {
    let message = status.message();
    if let Some(start) = message.rfind("(SQLSTATE ") {
        let code = &message[start + 10..];
        if let Some(code) = code.strip_suffix(')') {
            return code.to_string();
        }
    }
    use tonic::Code;
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => sqlstate::QUERY_CANCELED,
        Code::PermissionDenied => sqlstate::INSUFFICIENT_PRIVILEGE,
        Code::Unauthenticated => sqlstate::INVALID_PASSWORD,
        Code::NotFound => sqlstate::UNDEFINED_TABLE,
        Code::InvalidArgument => sqlstate::SYNTAX_OR_ACCESS,
        Code::Unimplemented => sqlstate::FEATURE_NOT_SUPPORTED,
        Code::ResourceExhausted => sqlstate::OUT_OF_MEMORY,
        Code::AlreadyExists => sqlstate::DUPLICATE_TABLE,
        _ => sqlstate::INTERNAL,
    }
    .to_string()
}

/// The gRPC status a Flight SQL client sees, with the SQLSTATE in the message.
pub fn to_status(e: &DataFusionError) -> tonic::Status {
    let class = classify(e);
    let code = grpc_code(class.sqlstate);
    tonic::Status::new(
        code,
        format!("{} (SQLSTATE {})", class.message, class.sqlstate),
    )
}

pub fn grpc_code(sqlstate: &str) -> tonic::Code {
    use tonic::Code;
    match sqlstate {
        "42P01" | "42703" | "42883" => Code::NotFound,
        "42P07" | "42710" => Code::AlreadyExists,
        "42501" => Code::PermissionDenied,
        "28P01" | "28000" => Code::Unauthenticated,
        "57014" => Code::Cancelled,
        "0A000" => Code::Unimplemented,
        "58000" | "08001" => Code::Unavailable,
        s if s.starts_with("53") || s.starts_with("54") => Code::ResourceExhausted,
        s if s.starts_with("42") || s.starts_with("22") => Code::InvalidArgument,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn state_of(sql: &str) -> &'static str {
        let ctx = SessionContext::new();
        let err = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.expect_err("query should fail"),
            Err(e) => e,
        };
        classify(&err).sqlstate
    }

    #[tokio::test]
    async fn sqlstates_of_common_mistakes() {
        assert_eq!(state_of("SELEC 1").await, "42601");
        assert_eq!(state_of("SELECT * FROM nope").await, "42P01");
        assert_eq!(state_of("SELECT nope FROM (SELECT 1 AS a)").await, "42703");
        assert_eq!(state_of("SELECT nope_fn(1)").await, "42883");
        assert_eq!(state_of("SELECT 1/0").await, "22012");
        assert_eq!(state_of("SELECT CAST('x' AS INT)").await, "22P02");
    }

    #[test]
    fn grpc_codes() {
        assert_eq!(grpc_code("42P01"), tonic::Code::NotFound);
        assert_eq!(grpc_code("42601"), tonic::Code::InvalidArgument);
        assert_eq!(grpc_code("XX000"), tonic::Code::Internal);
    }
}
