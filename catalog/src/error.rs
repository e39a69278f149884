//! Errors of the catalog crate.

use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write the catalog at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog file {path} is corrupt ({source}); restore it from a backup or move it aside to start empty")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("path '{path}' is outside the allowed roots ({roots}); put the file under one of them or start the server with --allow-path")]
    PathNotAllowed { path: String, roots: String },
    #[error("user \"{name}\" already exists")]
    UserExists { name: String },
    #[error("user \"{name}\" does not exist")]
    UserNotFound { name: String },
    #[error("{message}")]
    PermissionDenied { message: String },
    #[error("{what} is not supported")]
    NotSupported { what: String },
    #[error("table \"{name}\" does not exist")]
    TableNotFound { name: String },
    /// A remote database could not be reached (SQLSTATE 08001).
    #[error("{message}")]
    Connection { message: String },
    /// A role's cap (`ALTER ROLE ... SET max_result_rows / max_file_bytes`).
    #[error("{message}")]
    LimitExceeded { message: String },
    #[error("the recorded definition of {name} is unusable: {reason}")]
    BadDefinition { name: String, reason: String },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
