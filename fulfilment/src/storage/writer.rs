//! Group commit: one writer task per process applies every change.
//!
//! Callers submit a [`Mutation`] and wait. The writer takes whatever is queued
//! (up to `max_batch`), applies all of it in ONE transaction, appends the
//! batch's order changes to the feed, commits once, and only then answers each
//! caller. Under light load a batch is a single mutation, so latency does not
//! suffer; under heavy load one fsync covers many changes.
//!
//! Payment events that arrive together are recorded set-based
//! (`storage::record`): a fixed number of statements for the whole run of
//! them. Other mutations run one after another on the same transaction. Two
//! changes to one order behave exactly as if they had been separate commits.
//! If the batch fails (a database error), it is rolled back and each job is
//! retried alone, so one bad job cannot fail its neighbours.

use std::time::Duration;

use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::bulk::{Rows, Ty, chunks};
use super::checkpoint::{self, RestartWanted};
use super::record::{self, Recorded};
use super::{DatabaseConfig, StorageError};
use crate::order::{Order, OrderError, UnixMicros};
use crate::payment_event::PaymentEvent;

/// Key of the transaction-scoped PostgreSQL advisory lock that serialises
/// feed appends across replicas, so feed rows commit in `seq` order.
pub const FEED_LOCK: i64 = 0x6675_6c66_696c_0002;

/// A change to apply inside the writer's transaction.
///
/// Contract: `apply` returns a domain error (anything but
/// `OrderError::Storage`) only before it has written anything, so the batch
/// can carry on without it. A storage error aborts the batch, which is then
/// retried one mutation at a time.
pub trait Mutation: Send + Sync + 'static {
    /// What the caller gets back after the commit.
    type Output: Send + 'static;

    /// Applies the change. May run more than once (after a rolled-back
    /// batch), so it must not have effects outside the transaction.
    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>)
    -> BoxFuture<'a, Result<Self::Output, OrderError>>;
}

/// What a mutation sees: the batch's transaction, its clock, and the feed.
pub struct Ctx<'t> {
    /// The batch's open transaction.
    pub txn: &'t DatabaseTransaction,
    /// One timestamp for the whole batch.
    pub now: UnixMicros,
    changes: Vec<Order>,
}

impl Ctx<'_> {
    /// Which database the transaction runs on.
    pub fn backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    /// Queues the order's new version for the change feed of this commit.
    pub fn record_change(&mut self, order: Order) {
        self.changes.push(order);
    }
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most mutations in one transaction.
    pub max_batch: usize,
    /// Most mutations waiting; callers beyond it wait for room.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 128,
            queue: 4096,
        }
    }
}

/// Handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Queued>,
    commits: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer on a thread of its own, with its own runtime and
    /// its own database connection. The writer is the one serial path every
    /// change goes through: sharing a runtime with hundreds of request tasks
    /// would queue each of its awaits behind them (measured: batches stalled
    /// between statements under load). It stops when every handle is
    /// dropped, after finishing what was queued.
    ///
    /// On SQLite it also starts the background checkpoints (see
    /// `storage::checkpoint`) on a connection of their own: a checkpoint
    /// can hold its connection for as long as the database file's fsync
    /// takes, and no reader should wait for that.
    pub async fn spawn(
        database: &DatabaseConfig,
        config: WriterConfig,
        backend: DbBackend,
    ) -> Result<Self, StorageError> {
        let (jobs, rx) = mpsc::channel(config.queue.max(1));
        let (committed, commits) = tokio::sync::watch::channel(0u64);
        let (started, start_result) = oneshot::channel::<Result<(), StorageError>>();
        let database = DatabaseConfig {
            max_connections: 1,
            ..database.clone()
        };
        let max_batch = config.max_batch.max(1);
        let sqlite = backend == DbBackend::Sqlite;
        let checkpointer = database.clone();
        let restart = RestartWanted::default();
        let wanted = restart.clone();
        std::thread::Builder::new()
            .name("fulfil-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(StorageError::Statement(format!(
                            "writer runtime: {err}"
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let conn = match super::connect_writer(&database).await {
                        Ok(conn) => conn,
                        Err(err) => {
                            let _ = started.send(Err(err));
                            return;
                        }
                    };
                    let _ = started.send(Ok(()));
                    run(conn, rx, max_batch, committed, wanted).await;
                });
            })
            .map_err(|err| StorageError::Statement(format!("writer thread: {err}")))?;
        start_result
            .await
            .map_err(|_| StorageError::WriterStopped)??;
        if sqlite {
            let own = super::connect(&checkpointer).await?;
            checkpoint::spawn(own, commits.clone(), restart);
        }
        Ok(Writer { jobs, commits })
    }

    /// Counts batches the writer has finished (each may have appended to
    /// the change feed); the feed follower wakes on it instead of polling.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Applies `mutation` and returns its output once it is committed.
    ///
    /// If the caller stops waiting, the mutation still completes or fails as
    /// a whole; it is never half-applied.
    pub async fn submit<M: Mutation>(&self, mutation: M) -> Result<M::Output, OrderError> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(PendingJob {
            mutation,
            result: None,
            reply,
            caller: tracing::Span::current(),
        });
        self.jobs
            .send(Queued::Mutation(job))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        answer.await.map_err(|_| StorageError::WriterStopped)?
    }

    /// Records and applies a payment event; answers once it is committed.
    pub async fn record(&self, event: PaymentEvent) -> Result<Recorded, OrderError> {
        let (reply, answer) = oneshot::channel();
        let job = RecordJob {
            event,
            result: None,
            reply,
            caller: tracing::Span::current(),
        };
        self.jobs
            .send(Queued::Record(Box::new(job)))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        answer.await.map_err(|_| StorageError::WriterStopped)?
    }
}

/// What waits in the writer's queue.
enum Queued {
    /// A payment event: consecutive ones are recorded together.
    Record(Box<RecordJob>),
    /// Any other mutation, applied on its own.
    Mutation(Box<dyn Job>),
}

impl Queued {
    fn caller(&self) -> &tracing::Span {
        match self {
            Queued::Record(job) => &job.caller,
            Queued::Mutation(job) => job.caller(),
        }
    }

    fn finish(self, commit: Result<(), StorageError>) {
        match self {
            Queued::Record(job) => (*job).finish(commit),
            Queued::Mutation(job) => job.finish(commit),
        }
    }
}

struct RecordJob {
    event: PaymentEvent,
    result: Option<Result<Recorded, OrderError>>,
    reply: oneshot::Sender<Result<Recorded, OrderError>>,
    caller: tracing::Span,
}

impl RecordJob {
    fn finish(self, commit: Result<(), StorageError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StorageError::Corrupt("event was not recorded".into()).into()),
            (Err(err), _) => Err(err.into()),
        };
        let _ = self.reply.send(answer);
    }
}

/// A submitted mutation with its reply channel, type-erased for the queue.
trait Job: Send {
    /// The submitter's span: the database work is traced under it, though
    /// it runs on the writer's thread.
    fn caller(&self) -> &tracing::Span;
    fn apply<'a>(&'a mut self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<(), StorageError>>;
    fn finish(self: Box<Self>, commit: Result<(), StorageError>);
}

struct PendingJob<M: Mutation> {
    mutation: M,
    result: Option<Result<M::Output, OrderError>>,
    reply: oneshot::Sender<Result<M::Output, OrderError>>,
    caller: tracing::Span,
}

impl<M: Mutation> Job for PendingJob<M> {
    fn caller(&self) -> &tracing::Span {
        &self.caller
    }

    fn apply<'a>(&'a mut self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match self.mutation.apply(ctx).await {
                Err(OrderError::Storage(err)) => Err(err),
                outcome => {
                    self.result = Some(outcome);
                    Ok(())
                }
            }
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), StorageError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StorageError::Corrupt("mutation did not run".into()).into()),
            (Err(err), _) => Err(err.into()),
        };
        // The caller may have gone away; the outcome is in the database anyway.
        let _ = self.reply.send(answer);
    }
}

async fn run(
    conn: DatabaseConnection,
    mut rx: mpsc::Receiver<Queued>,
    max_batch: usize,
    committed: tokio::sync::watch::Sender<u64>,
    restart: RestartWanted,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        commit_and_answer(&conn, &mut batch, &committed).await;
        // Between batches: nobody is waiting on this pause but the queue.
        if restart.take() {
            restart_wal(&conn).await;
        }
    }
}

async fn commit_and_answer(
    conn: &DatabaseConnection,
    batch: &mut Vec<Queued>,
    committed: &tokio::sync::watch::Sender<u64>,
) {
    // Whatever happens to this batch, followers may look at the feed.
    let _notify = Notify(committed);
    let size = batch.len();
    match commit_batch(conn, batch).await {
        Ok(()) => finish_all(batch, Ok(())),
        Err(err) if size == 1 => {
            let outcome = retry_alone(conn, batch, err).await;
            finish_all(batch, outcome);
        }
        Err(err) => {
            tracing::warn!(error = %err, size, "batch failed; retrying its mutations one by one");
            for job in batch.drain(..) {
                let mut single = vec![job];
                let outcome = match commit_batch(conn, &mut single).await {
                    Ok(()) => Ok(()),
                    Err(err) => retry_alone(conn, &mut single, err).await,
                };
                finish_all(&mut single, outcome);
            }
        }
    }
}

/// Copies what the background checkpoints have not yet copied, so that the
/// next commit starts the WAL from its beginning (SQLite does so once every
/// frame is copied and no reader still uses them). Runs between batches, so
/// nothing is appended meanwhile. PASSIVE, not RESTART: RESTART would wait
/// for every reader to finish, holding up every writer behind it; if a
/// reader keeps the WAL in use, the next request simply tries again.
async fn restart_wal(conn: &DatabaseConnection) {
    let started = std::time::Instant::now();
    match checkpoint::checkpoint(conn, "PASSIVE").await {
        Ok(wal) => tracing::debug!(
            frames = wal.frames,
            copied = wal.copied,
            took_us = started.elapsed().as_micros(),
            "wal caught up for a restart"
        ),
        Err(err) => tracing::warn!(error = %err, "wal checkpoint on the writer failed"),
    }
}

/// Bumps the commit counter when dropped (after the batch is answered).
struct Notify<'a>(&'a tokio::sync::watch::Sender<u64>);

impl Drop for Notify<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Retries a single failed mutation twice with a short pause: most failures
/// here are transient (a deadlock between replicas, a dropped connection).
async fn retry_alone(
    conn: &DatabaseConnection,
    single: &mut [Queued],
    mut err: StorageError,
) -> Result<(), StorageError> {
    for pause_ms in [5, 50] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        match commit_batch(conn, single).await {
            Ok(()) => return Ok(()),
            Err(next) => err = next,
        }
    }
    tracing::error!(error = %err, "write failed after retries");
    Err(err)
}

fn finish_all(batch: &mut Vec<Queued>, outcome: Result<(), StorageError>) {
    for job in batch.drain(..) {
        job.finish(outcome.clone());
    }
}

async fn commit_batch(conn: &DatabaseConnection, batch: &mut [Queued]) -> Result<(), StorageError> {
    // IMMEDIATE takes SQLite's write lock at BEGIN, so the transaction never
    // has to upgrade a read lock (the source of SQLITE_BUSY deadlocks).
    let txn = conn
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    let mut ctx = Ctx {
        txn: &txn,
        now: UnixMicros::now(),
        changes: Vec::new(),
    };
    let started = std::time::Instant::now();
    // One transaction span per caller, from BEGIN to COMMIT, each with the
    // caller's own work inside: a trace shows its share and the wait.
    let db_system = match conn.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        _ => "sqlite",
    };
    let size = batch.len();
    let spans: Vec<tracing::Span> = batch
        .iter()
        .map(|job| {
            tracing::info_span!(
                parent: job.caller(),
                "db.transaction",
                otel.name = "db transaction",
                db.system = db_system,
                batch.size = size,
            )
        })
        .collect();
    let mut start = 0;
    while start < batch.len() {
        let end = match &batch[start] {
            Queued::Record(_) => {
                start
                    + batch[start..]
                        .iter()
                        .take_while(|q| matches!(q, Queued::Record(_)))
                        .count()
            }
            Queued::Mutation(_) => start + 1,
        };
        apply_run(&mut ctx, &mut batch[start..end], &spans[start..end]).await?;
        start = end;
    }
    let applied = started.elapsed();
    let changes = std::mem::take(&mut ctx.changes);
    let now = ctx.now;
    let change_count = changes.len();
    append_feed(&txn, changes, now).await?;
    let appended = started.elapsed();
    txn.commit().await?;
    drop(spans);
    tracing::debug!(
        size = batch.len(),
        changes = change_count,
        apply_us = applied.as_micros(),
        feed_us = (appended - applied).as_micros(),
        commit_us = (started.elapsed() - appended).as_micros(),
        "batch committed"
    );
    Ok(())
}

/// Applies a run of jobs: one mutation, or consecutive payment events
/// recorded together.
async fn apply_run(
    ctx: &mut Ctx<'_>,
    run: &mut [Queued],
    spans: &[tracing::Span],
) -> Result<(), StorageError> {
    let apply_spans: Vec<tracing::Span> = spans
        .iter()
        .map(|span| tracing::info_span!(parent: span, "db.apply", otel.name = "db apply"))
        .collect();
    if let [Queued::Mutation(job)] = run {
        let span = apply_spans
            .first()
            .cloned()
            .unwrap_or_else(tracing::Span::none);
        return job.apply(ctx).instrument(span).await;
    }
    let events: Vec<&PaymentEvent> = run
        .iter()
        .filter_map(|q| match q {
            Queued::Record(job) => Some(&job.event),
            Queued::Mutation(_) => None,
        })
        .collect();
    // Each caller's apply span covers the set-based work done for it.
    let results = record::record_batch(ctx, &events).await?;
    drop(apply_spans);
    for (queued, result) in run.iter_mut().zip(results) {
        if let Queued::Record(job) = queued {
            job.result = Some(result);
        }
    }
    Ok(())
}

async fn append_feed(
    txn: &DatabaseTransaction,
    changes: Vec<Order>,
    now: UnixMicros,
) -> Result<(), StorageError> {
    if changes.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // Held to commit: feed rows of concurrent replicas commit one batch
        // after another, so a reader never sees seq N+1 before N is visible.
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [FEED_LOCK.into()],
        ))
        .await?;
    }
    let backend = txn.get_database_backend();
    let snapshots: Vec<(&Order, Vec<u8>)> = changes
        .iter()
        .map(|order| (order, super::row::feed_snapshot(order)))
        .collect();
    // Statements of bounded size on PostgreSQL (see `bulk::PG_STATEMENT_BYTES`).
    for run in chunks(backend, &snapshots, |(_, s)| s.len() + 128) {
        let mut t = Rows::new(&[
            ("order_id", Ty::Text),
            ("customer_id", Ty::Text),
            ("state", Ty::Text),
            ("version", Ty::BigInt),
            ("order_pb", Ty::Bytes),
        ]);
        for (order, snapshot) in run {
            t.push(vec![
                order.order_id.as_str().to_owned().into(),
                order.customer_id.clone().into(),
                order.state.as_str().to_owned().into(),
                order.version.into(),
                snapshot.clone().into(),
            ]);
        }
        let statement = t.statement(backend, |params| {
            let now = params.bind(now.0.into());
            format!(
                "INSERT INTO order_changes (order_id, customer_id, state, version, snapshot,
                     order_pb, commit_time)
                 SELECT order_id, customer_id, state, version, '', order_pb, {now}
                 FROM t WHERE true"
            )
        });
        txn.execute_raw(statement).await?;
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // Delivered at commit to every replica's feed follower.
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, '')",
            [super::FEED_CHANNEL.into()],
        ))
        .await?;
    }
    Ok(())
}
