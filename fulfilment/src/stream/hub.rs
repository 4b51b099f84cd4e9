//! One feed follower per process, fanning changes out to subscribers.
//!
//! The follower reads each committed change once from the database, in feed
//! order, and broadcasts it. It wakes when this process's writer commits,
//! on PostgreSQL when any replica commits (LISTEN/NOTIFY), and every `poll`
//! in case a notification was lost. The
//! database stays the source of truth: a subscriber that misses broadcasts
//! (it was too slow) reads them back from the database.
//!
//! Watchers of one order get their own small channel, keyed by order id, so
//! a change wakes only its order's watchers and the watchers of the whole
//! feed: with thousands of `WatchOrder` streams, one broadcast to everyone
//! would wake every stream for every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, watch};

use super::StreamConfig;
use crate::order::UnixMicros;
use crate::storage::{Database, FEED_CHANNEL, FeedEntry, PruneFeed, StorageError};

/// Changes read per database round trip.
pub const PAGE: u64 = 500;

/// Changes buffered per watched order; a watcher further behind reads the
/// rest from the database.
const ORDER_BUFFER: usize = 8;

type Channel = broadcast::Sender<Arc<FeedEntry>>;

/// The live channel of each order that has watchers.
#[derive(Debug, Default)]
struct OrderChannels(Mutex<HashMap<String, Channel>>);

impl OrderChannels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        // The map stays consistent whatever a panicking holder did.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the process's feed follower. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    db: Database,
    changes: Channel,
    orders: Arc<OrderChannels>,
    stopping: watch::Sender<bool>,
    config: StreamConfig,
}

impl Hub {
    /// Starts the follower and the pruner on the current runtime.
    pub async fn start(db: Database, config: StreamConfig) -> Result<Self, StorageError> {
        let head = db.feed_head().await?;
        let (changes, _) = broadcast::channel(config.buffer.max(16));
        let (stopping, _) = watch::channel(false);
        let hub = Hub {
            db,
            changes,
            orders: Arc::default(),
            stopping,
            config,
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(follow(hub.clone(), head, wake.clone()));
        tokio::spawn(listen(hub.clone(), wake));
        tokio::spawn(prune(hub.clone()));
        Ok(hub)
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The configuration.
    pub fn config(&self) -> StreamConfig {
        self.config
    }

    /// Live changes from now on: of one order, or of every order.
    pub fn subscribe(&self, order_id: Option<&str>) -> Live {
        let Some(order_id) = order_id else {
            return Live {
                receiver: self.changes.subscribe(),
                order: None,
            };
        };
        let receiver = self
            .orders
            .lock()
            .entry(order_id.to_owned())
            .or_insert_with(|| broadcast::channel(ORDER_BUFFER).0)
            .subscribe();
        Live {
            receiver,
            order: Some((self.orders.clone(), order_id.to_owned())),
        }
    }

    /// Sends a committed change to its order's watchers and to everyone
    /// watching the whole feed. No receivers is fine: nobody is watching.
    fn publish(&self, entry: FeedEntry) {
        let entry = Arc::new(entry);
        if let Some(channel) = self.orders.lock().get(entry.order.order_id.as_str()) {
            let _ = channel.send(entry.clone());
        }
        let _ = self.changes.send(entry);
    }

    /// Completes when the server starts shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Ends every stream (with UNAVAILABLE) and stops following.
    pub fn shut_down(&self) {
        self.stopping.send_replace(true);
    }
}

/// The `application_name` of each process's LISTEN connection, as
/// `pg_stat_activity` shows it.
pub const LISTENER_APPLICATION_NAME: &str = "fulfil-feed-listener";

/// Longest pause between attempts to listen again.
const RELISTEN_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// On PostgreSQL, wakes the follower on every replica's feed commit
/// (LISTEN/NOTIFY). The database stays the source of truth: notifications
/// sent while the listener is not connected are lost, so every time it
/// (re)starts listening it wakes the follower, whose catch-up read covers
/// the gap. A lost connection thus costs a reconnect, not a poll interval.
///
/// The listener has a connection of its own, named
/// [`LISTENER_APPLICATION_NAME`], so it holds none of the readers' and
/// operators can tell it apart.
async fn listen(hub: Hub, wake: Arc<tokio::sync::Notify>) {
    use sea_orm::sqlx::postgres::PgPoolOptions;
    if hub.db.backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let readers = hub.db.conn().get_postgres_connection_pool();
    let options = readers
        .connect_options()
        .as_ref()
        .clone()
        .application_name(LISTENER_APPLICATION_NAME);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(readers.options().get_acquire_timeout())
        .connect_lazy_with(options);
    let mut stopping = hub.stopping();
    let first_pause = std::time::Duration::from_millis(100);
    let mut pause = first_pause;
    loop {
        tokio::select! {
            (listened, lost) = notifications(&pool, &wake) => {
                if listened {
                    pause = first_pause;
                }
                tracing::warn!(error = %lost, retry_in = ?pause, "feed notifications interrupted; listening again");
            }
            () = super::watch::stopped(&mut stopping) => return,
        }
        // Read what can be read while not listening.
        wake.notify_one();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = super::watch::stopped(&mut stopping) => return,
        }
        pause = (pause * 2).min(RELISTEN_MAX_PAUSE);
    }
}

/// Listens on `pool`'s connection and wakes the follower on each
/// notification, and after each (re)start of listening; returns whether
/// it got to listen, and why it stopped.
async fn notifications(
    pool: &sea_orm::sqlx::postgres::PgPool,
    wake: &tokio::sync::Notify,
) -> (bool, sea_orm::sqlx::Error) {
    let mut listener = match sea_orm::sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(err) => return (false, err),
    };
    if let Err(err) = listener.listen(FEED_CHANNEL).await {
        return (false, err);
    }
    tracing::debug!("listening for feed notifications");
    // Changes committed before LISTEN took effect sent no notification here.
    wake.notify_one();
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => wake.notify_one(),
            // The connection was lost and is back, listening again (sqlx
            // reconnects eagerly): catch up on what was sent meanwhile.
            Ok(None) => {
                tracing::info!("feed notifications reconnected");
                wake.notify_one();
            }
            Err(err) => return (true, err),
        }
    }
}

async fn follow(hub: Hub, mut last: i64, wake: Arc<tokio::sync::Notify>) {
    let mut commits = hub.db.writer().commits();
    let mut stopping = hub.stopping();
    let mut poll = tokio::time::interval(hub.config.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = commits.changed() => {}
            () = wake.notified() => {}
            _ = poll.tick() => {}
            () = super::watch::stopped(&mut stopping) => return,
        }
        loop {
            let entries = match hub.db.feed_after(last, PAGE, None).await {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the change feed; retrying");
                    break;
                }
            };
            let full = entries.len() as u64 == PAGE;
            for entry in entries {
                last = entry.seq;
                hub.publish(entry);
            }
            if !full {
                break;
            }
        }
    }
}

/// A subscription to live changes. Dropping the last one of an order
/// removes that order's channel.
#[derive(Debug)]
pub struct Live {
    receiver: broadcast::Receiver<Arc<FeedEntry>>,
    order: Option<(Arc<OrderChannels>, String)>,
}

impl Live {
    /// The next change, or how many were missed.
    pub async fn recv(&mut self) -> Result<Arc<FeedEntry>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some((channels, order_id)) = &self.order {
            let mut channels = channels.lock();
            // Subscribing takes the same lock, so a count of one (this
            // receiver, about to go) cannot grow meanwhile.
            if channels
                .get(order_id)
                .is_some_and(|channel| channel.receiver_count() <= 1)
            {
                channels.remove(order_id);
            }
        }
    }
}

async fn prune(hub: Hub) {
    let mut stopping = hub.stopping();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = super::watch::stopped(&mut stopping) => return,
        }
        let retention = i64::try_from(hub.config.retention.as_micros()).unwrap_or(i64::MAX);
        let cutoff = UnixMicros(UnixMicros::now().0.saturating_sub(retention));
        match hub.db.writer().submit(PruneFeed { cutoff }).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "change feed pruned"),
            Err(err) => tracing::warn!(error = %err, "cannot prune the change feed"),
        }
    }
}
