//! Persistence of orders on SQLite (the embedded default) or PostgreSQL.
//!
//! Reads go straight to the connection pool. Every write goes through one
//! [`Writer`] task per process, which batches concurrent writes into one
//! transaction (group commit) and answers each caller only after the commit.

mod bulk;
mod checkout;
mod checkpoint;
mod entitlements;
pub mod entity;
mod error;
mod feed;
mod held;
mod ledger;
mod migration;
mod orders;
mod page;
mod payment_events;
mod record;
mod row;
mod summary_codec;
mod writer;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

pub use checkout::{
    Attempt, ClaimAttempt, Claimed, EndAttempt, RecordProviderPayment, SaveProviderCustomer,
};
pub use error::StorageError;
pub use feed::{FEED_CHANNEL, FeedEntry, PruneFeed};
pub use migration::Migrator;
pub use orders::{ChangeState, Command, CreateOrder, ListFilter};
pub use page::Page;
pub use payment_events::{EventFilter, Reapplied, ReapplyChunk, RecordedEvent};
pub use record::{ChunkReapplied, Recorded};
pub use writer::{Ctx, FEED_LOCK, Mutation, Writer, WriterConfig};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub url: String,
    /// Pool size (readers plus the writer).
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout: Duration,
}

/// An open database: a pool plus the process's single writer.
#[derive(Clone)]
pub struct Database {
    conn: DatabaseConnection,
    writer: Writer,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.conn.get_database_backend())
            .finish_non_exhaustive()
    }
}

/// Opens a pool. SQLite runs in WAL mode with full fsync on commit (an event
/// acknowledged to a provider must survive a power cut) and a busy timeout,
/// so readers never block the writer and vice versa.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, StorageError> {
    open(config, false).await
}

/// Opens the writer's connection. On SQLite its commits never checkpoint
/// (see `checkpoint`). That is a connect option, not a statement run once,
/// so a connection that the pool replaces (sqlx retires connections after
/// 30 minutes) gets it too.
pub(crate) async fn connect_writer(
    config: &DatabaseConfig,
) -> Result<DatabaseConnection, StorageError> {
    open(config, true).await
}

async fn open(config: &DatabaseConfig, writer: bool) -> Result<DatabaseConnection, StorageError> {
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .min_connections(1)
        .acquire_timeout(config.acquire_timeout)
        .connect_timeout(config.acquire_timeout)
        .sqlx_logging(false)
        // Plan every statement for its own parameters and the table as it is
        // now. A cached generic plan is made once, while the tables are
        // small, and a sequential scan chosen then stays for good as they
        // grow (measured: the ledger lookup went from under 1 ms to 6.6 ms
        // within a minute of a fresh start). Planning costs tens of µs.
        .map_sqlx_postgres_opts(|opts| opts.options([("plan_cache_mode", "force_custom_plan")]))
        .map_sqlx_sqlite_opts(move |opts| {
            let mut opts = opts
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                .create_if_missing(true)
                // Statement journals (multi-row writes that may have to undo
                // themselves) in memory rather than in temporary files.
                .pragma("temp_store", "memory")
                // Batches of different sizes make different statements; keep
                // them prepared (measured: about 15 % less time per statement
                // on the writer than with the default of 100).
                .statement_cache_capacity(512);
            if writer {
                opts = opts.pragma("wal_autocheckpoint", "0");
            }
            opts
        });
    Ok(sea_orm::Database::connect(options).await?)
}

/// Applies every pending migration. On PostgreSQL a session advisory lock
/// makes replicas that start together take turns instead of racing.
pub async fn migrate(conn: &DatabaseConnection) -> Result<(), StorageError> {
    const MIGRATION_LOCK: i64 = 0x6675_6c66_696c_0001;
    if conn.get_database_backend() == DbBackend::Postgres {
        // PostgreSQL DDL is transactional: the whole migration runs in one
        // transaction that holds the lock until it commits.
        let txn = conn.begin().await?;
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK.into()],
        ))
        .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await?;
    } else {
        Migrator::up(conn, None).await?;
    }
    // Fresh statistics for whatever the tables hold now (an upgraded
    // database); the hot path does not depend on them (see `ledger`).
    conn.execute_unprepared("ANALYZE").await?;
    Ok(())
}

impl Database {
    /// Wraps a migrated pool (for reads) and starts the writer, which
    /// opens its own connection with the same configuration.
    pub async fn start(
        conn: DatabaseConnection,
        config: &DatabaseConfig,
        writer: WriterConfig,
    ) -> Result<Self, StorageError> {
        let writer = Writer::spawn(config, writer, conn.get_database_backend()).await?;
        Ok(Database { conn, writer })
    }

    /// The pool, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The writer, for changes.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Checks that the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StorageError> {
        Ok(self.conn.ping().await?)
    }

    /// Connections of the read pool: (open, idle).
    pub fn pool_connections(&self) -> (u32, u32) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            _ => {
                let pool = self.conn.get_sqlite_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }
}
