//! Storage failures, as callers see them: "the database could not do it now".

use std::sync::Arc;

use sea_orm::DbErr;

/// A database failure. Its text may contain internals: log it, never send it
/// to a client (the gRPC layer answers UNAVAILABLE with a generic message).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database returned an error or could not be reached.
    #[error("database error: {0}")]
    Db(Arc<DbErr>),
    /// Stored data could not be decoded (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A row changed between read and write; retrying is safe.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// A statement could not be built (a bug).
    #[error("bad statement: {0}")]
    Statement(String),
    /// The writer task is gone (the process is shutting down).
    #[error("the writer has stopped")]
    WriterStopped,
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        StorageError::Db(Arc::new(err))
    }
}
