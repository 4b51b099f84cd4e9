//! One subscriber's stream: catch up from the database, then follow the
//! hub; resume from the database whenever the hub's buffer has moved on.
//!
//! Exactly once: the position only moves forward (`seq` strictly
//! increases), every change after it is read either from the database or
//! from the hub, and anything at or before it is skipped. Memory per
//! subscriber is a broadcast receiver and a small outgoing queue; a slow
//! client makes its own task wait, never the writer or other subscribers.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use super::Hub;
use super::hub::PAGE;
use crate::order::OrderState;
use crate::storage::{FeedEntry, StorageError};

/// A stream's outgoing queue. Items are boxed: a queue allocates its slots
/// up front, and with whole messages inline they cost ~11 KiB per idle
/// stream (measured with `fulfil watch-load`).
pub type Outbox<M> = mpsc::Sender<Result<Box<M>, Box<Status>>>;

/// Which changes a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// One order only (WatchOrder).
    pub order_id: Option<String>,
    /// One customer only.
    pub customer_id: Option<String>,
    /// Orders left in one of these states (all when empty).
    pub states: Vec<OrderState>,
}

impl Selector {
    fn matches(&self, entry: &FeedEntry) -> bool {
        self.order_id
            .as_deref()
            .is_none_or(|id| id == entry.order.order_id.as_str())
            && self
                .customer_id
                .as_deref()
                .is_none_or(|c| c == entry.order.customer_id)
            && (self.states.is_empty() || self.states.contains(&entry.order.state))
    }
}

/// What a stream carries.
#[derive(Debug, Clone)]
pub enum Event {
    /// A matching change.
    Change(Arc<FeedEntry>),
    /// Everything up to this position has been delivered.
    Progress(i64),
}

/// Why a stream ends.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The cursor points before the retained history.
    #[error(
        "the cursor is older than the retained change history; list the orders again and watch from now"
    )]
    CursorExpired,
    /// The server is shutting down.
    #[error("the server is shutting down; reconnect and resume from your last cursor")]
    ShuttingDown,
    /// Reading ahead in the feed failed unexpectedly (logged).
    #[error("reading the change feed failed; reconnect and resume from your last cursor")]
    ReadFailed,
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Streams `selector`'s changes after `cursor` into `out`, mapping each
/// event with `message`, until the client goes away or the server stops.
pub async fn run<M: Send + 'static>(
    hub: Hub,
    selector: Selector,
    mut cursor: i64,
    out: Outbox<M>,
    mut message: impl FnMut(Event) -> M + Send + 'static,
) where
    Status: From<StreamError>,
{
    let mut stopping = hub.stopping();
    let mut heartbeat = tokio::time::interval(hub.config().heartbeat);
    heartbeat.reset();
    // Subscribe before reading the database, so nothing committed in
    // between is missed; duplicates are skipped by position.
    let mut live = hub.subscribe(selector.order_id.as_deref());
    if let Err(err) = catch_up(&hub, &selector, &mut cursor, &out, &mut message).await {
        let _ = out.send(Err(Box::new(err.into()))).await;
        return;
    }
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => {
                let _ = out.send(Err(Box::new(StreamError::ShuttingDown.into()))).await;
                return;
            }
            () = out.closed() => return,
            _ = heartbeat.tick() => {
                if out.send(Ok(Box::new(message(Event::Progress(cursor))))).await.is_err() {
                    return;
                }
            }
            received = live.recv() => match received {
                Ok(entry) => {
                    if entry.seq <= cursor {
                        continue;
                    }
                    cursor = entry.seq;
                    if selector.matches(&entry) {
                        if out.send(Ok(Box::new(message(Event::Change(entry))))).await.is_err() {
                            return;
                        }
                        heartbeat.reset();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "subscriber fell behind; reading the feed from the database");
                    live = hub.subscribe(selector.order_id.as_deref());
                    if let Err(err) = catch_up(&hub, &selector, &mut cursor, &out, &mut message).await {
                        let _ = out.send(Err(Box::new(err.into()))).await;
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = out.send(Err(Box::new(StreamError::ShuttingDown.into()))).await;
                    return;
                }
            }
        }
    }
}

/// Reads changes after `cursor` from the database until none are left.
///
/// The next page is read while the current one is being sent, so a long
/// replay keeps both the database and the connection busy.
async fn catch_up<M>(
    hub: &Hub,
    selector: &Selector,
    cursor: &mut i64,
    out: &Outbox<M>,
    message: &mut impl FnMut(Event) -> M,
) -> Result<(), StreamError> {
    let mut page = read_page(hub, selector, *cursor).await?;
    loop {
        let full = page.len() as u64 == PAGE;
        // Read ahead from the end of this page (not from `cursor`, which
        // moves as the page is sent).
        let next = match page.last() {
            Some(last) if full => {
                let (hub, selector, after) = (hub.clone(), selector.clone(), last.seq);
                Some(tokio::spawn(async move {
                    read_page(&hub, &selector, after).await
                }))
            }
            _ => None,
        };
        // Aborts the read-ahead if this task stops early (client gone).
        let next = next.map(AbortOnDrop);
        for entry in page {
            *cursor = entry.seq;
            if selector.matches(&entry)
                && out
                    .send(Ok(Box::new(message(Event::Change(Arc::new(entry))))))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        let Some(mut next) = next else {
            return Ok(());
        };
        page = match (&mut next.0).await {
            Ok(read) => read?,
            Err(join) => {
                tracing::error!(error = %join, "reading the change feed ahead failed");
                return Err(StreamError::ReadFailed);
            }
        };
    }
}

/// One page of the feed after `after`, checked against the pruning horizon.
async fn read_page(
    hub: &Hub,
    selector: &Selector,
    after: i64,
) -> Result<Vec<FeedEntry>, StreamError> {
    let entries = hub
        .db()
        .feed_after(after, PAGE, selector.order_id.as_deref())
        .await?;
    // Pruning may have removed rows after the cursor before we read.
    if hub.db().feed_horizon().await? > after {
        return Err(StreamError::CursorExpired);
    }
    Ok(entries)
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes when the server starts shutting down (the watch guard is not
/// held across awaits, so the task stays `Send`).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
