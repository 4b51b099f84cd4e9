//! Storage failures, as callers see them: "the database could not do it
//! now" (an outage, worth a retry) apart from "the database refused what it
//! was given" (the caller's input, not worth one).

use std::sync::Arc;

use sea_orm::sqlx::postgres::PgDatabaseError;
use sea_orm::sqlx::sqlite::SqliteError;
use sea_orm::{DbErr, RuntimeErr};

/// A database failure. Its text may contain internals: log it, never send it
/// to a client (the gRPC layer answers with a generic message).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Db(Arc<DbErr>),
    /// The database refused a value in the statement (PostgreSQL SQLSTATE
    /// class 22, "data exception", such as U+0000 in text; SQLite's TOOBIG
    /// and MISMATCH). The same input would fail again.
    #[error("value refused by the database: {0}")]
    ValueRefused(Arc<DbErr>),
    /// A constraint refused the change (class 23, SQLite CONSTRAINT) where
    /// no conflict was expected: every conflict Fulfil expects (a retried
    /// request, a duplicate delivery) is decided by `ON CONFLICT` instead.
    #[error("constraint violated: {0}")]
    ConstraintViolated(Arc<DbErr>),
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

/// What a database error says about its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Outage,
    Value,
    Constraint,
}

/// SQLite primary result codes (the low byte of an extended code).
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_MISMATCH: i64 = 20;

fn cause(err: &DbErr) -> Cause {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx))
    | DbErr::Conn(RuntimeErr::SqlxError(sqlx))) = err
    else {
        return Cause::Outage;
    };
    let sea_orm::sqlx::Error::Database(db) = sqlx.as_ref() else {
        return Cause::Outage;
    };
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        // The SQLSTATE class is its first two characters.
        return match pg.code().get(..2) {
            Some("22") => Cause::Value,
            Some("23") => Cause::Constraint,
            _ => Cause::Outage,
        };
    }
    if db.try_downcast_ref::<SqliteError>().is_some() {
        let primary = db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .map(|code| code & 0xff);
        return match primary {
            Some(SQLITE_TOOBIG | SQLITE_MISMATCH) => Cause::Value,
            Some(SQLITE_CONSTRAINT) => Cause::Constraint,
            _ => Cause::Outage,
        };
    }
    Cause::Outage
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        let cause = cause(&err);
        let err = Arc::new(err);
        match cause {
            Cause::Outage => StorageError::Db(err),
            Cause::Value => StorageError::ValueRefused(err),
            Cause::Constraint => StorageError::ConstraintViolated(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_without_a_database_answer_are_outages() {
        for err in [
            DbErr::Custom("x".into()),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout),
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::PoolTimedOut,
            ))),
        ] {
            assert!(matches!(StorageError::from(err), StorageError::Db(_)));
        }
    }
}
