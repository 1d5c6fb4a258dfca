//! The registry's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the registry and the artifact store.
///
/// The REST layer maps `NotFound` to `RESOURCE_DOES_NOT_EXIST`, `AlreadyExists` to
/// `RESOURCE_ALREADY_EXISTS` and `InvalidParameter` to `INVALID_PARAMETER_VALUE`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error(
        "checksum mismatch for artifact {artifact}: expected sha256 {expected}, found {actual}"
    )]
    ChecksumMismatch {
        artifact: String,
        expected: String,
        actual: String,
    },
    #[error("registry database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the registry database: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A fault of the registry itself (a writer task that panicked), not of the request.
    #[error("internal registry error: {0}")]
    Internal(String),
    #[error("artifact store i/o error at {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The registry's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Maps a unique-key violation to `AlreadyExists` and a foreign-key violation to `NotFound`
/// of the referenced parent; other database errors pass through.
pub(crate) fn classify(
    err: sqlx::Error,
    duplicate: (&'static str, &str),
    parent: (&'static str, &str),
) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return Error::AlreadyExists {
                what: duplicate.0,
                id: duplicate.1.to_owned(),
            };
        }
        if db.is_foreign_key_violation() {
            return Error::not_found(parent.0, parent.1);
        }
    }
    Error::Database(err)
}
