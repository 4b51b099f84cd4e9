//! SQLite WAL checkpoints off the writer's critical path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its
//! threshold: that commit copies about 1,000 pages back into the database
//! file and fsyncs it before the writer can answer anyone, and the copy
//! lands at random places of an ever larger file. Measured on the writer:
//! commits took 3.4 ms at the start of a run and 6.6 ms 30 s later, with
//! throughput falling in step. So the writer's connection turns the automatic
//! checkpoint off, and this task copies committed frames in the background
//! with PASSIVE checkpoints, which take no lock that the writer needs and run
//! on another connection's thread.
//!
//! SQLite starts the WAL over only when every frame in it has been copied,
//! which a background checkpoint never sees while the writer keeps
//! appending (an earlier attempt without the step below grew the WAL to
//! 5 GB in a minute). So once the WAL passes [`RESTART_FRAMES`] the writer
//! is asked to checkpoint it itself, between two batches; by then nearly
//! every frame has been copied already, so that pause is short, and the
//! next commit starts the WAL from its beginning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::watch;

use super::StorageError;

/// WAL size (in 4 KiB pages: 32 MiB) at which the writer catches up so
/// that the WAL starts over.
pub(crate) const RESTART_FRAMES: i64 = 8_192;

/// Pause between two background checkpoints: a page written by many batches
/// in that time is copied once.
const INTERVAL: Duration = Duration::from_millis(100);

/// Where a checkpoint left the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalState {
    /// Frames in the WAL.
    pub frames: i64,
    /// Frames of them copied into the database file.
    pub copied: i64,
}

/// The writer's side: whether it should restart the WAL between batches.
#[derive(Debug, Clone, Default)]
pub(crate) struct RestartWanted(Arc<AtomicBool>);

impl RestartWanted {
    fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once per request.
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// Runs `PRAGMA wal_checkpoint(MODE)` and reads where it left the WAL.
pub(crate) async fn checkpoint(
    conn: &DatabaseConnection,
    mode: &'static str,
) -> Result<WalState, StorageError> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA wal_checkpoint({mode})"),
        ))
        .await?
        .ok_or_else(|| StorageError::Corrupt("wal_checkpoint returned no row".into()))?;
    // Columns: busy, frames in the WAL, frames copied (-1, -1 outside WAL).
    Ok(WalState {
        frames: row.try_get_by_index::<i64>(1)?,
        copied: row.try_get_by_index::<i64>(2)?,
    })
}

/// Checkpoints in the background after commits, until the writer stops.
pub(crate) fn spawn(
    conn: DatabaseConnection,
    commits: watch::Receiver<u64>,
    restart: RestartWanted,
) {
    tokio::spawn(run(conn, commits, restart));
}

async fn run(conn: DatabaseConnection, mut commits: watch::Receiver<u64>, restart: RestartWanted) {
    // Ends when the writer's commit counter is dropped: the writer stopped.
    while commits.changed().await.is_ok() {
        let started = Instant::now();
        match checkpoint(&conn, "PASSIVE").await {
            Ok(wal) => {
                tracing::debug!(
                    frames = wal.frames,
                    copied = wal.copied,
                    took_us = started.elapsed().as_micros(),
                    "wal checkpointed"
                );
                if wal.frames >= RESTART_FRAMES {
                    restart.request();
                }
            }
            // The next commit tries again; the WAL only grows meanwhile.
            Err(err) => tracing::warn!(error = %err, "background wal checkpoint failed"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DatabaseConfig, connect_writer};

    /// sqlx retires every connection after 30 minutes: a replacement of the
    /// writer's connection must not bring checkpoints back into commits.
    #[tokio::test]
    async fn every_writer_connection_leaves_checkpoints_to_the_background() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = DatabaseConfig {
            url: format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display()),
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        let pool = connect_writer(&config).await.expect("writer pool");
        let pool = pool.get_sqlite_connection_pool();
        // Two connections at once: the second is opened fresh, as a
        // replacement would be.
        let mut first = pool.acquire().await.expect("first connection");
        let mut second = pool.acquire().await.expect("second connection");
        for conn in [&mut first, &mut second] {
            let (pages,): (i64,) = sea_orm::sqlx::query_as("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut **conn)
                .await
                .expect("pragma");
            assert_eq!(pages, 0);
        }
    }
}
