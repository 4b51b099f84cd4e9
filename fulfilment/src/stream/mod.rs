//! Streaming order changes to services and app clients.
//!
//! - [`hub`]: one follower per process reads the change feed once and fans
//!   each change out to every local subscriber.
//! - [`watch`]: a subscriber: catches up from the database from its cursor,
//!   then follows the hub; falls back to the database when it falls behind.
//! - [`cursor`]: the opaque resume position clients store.

pub mod cursor;
pub mod hub;
pub mod watch;

use std::time::Duration;

pub use hub::{Hub, LISTENER_APPLICATION_NAME};

/// Tuning of streams and the change feed.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Idle streams get a Progress message this often.
    pub heartbeat: Duration,
    /// How often the follower looks for changes committed by other replicas
    /// (changes of this process wake it at once).
    pub poll: Duration,
    /// Changes older than this are pruned; older cursors are expired.
    pub retention: Duration,
    /// Changes buffered for live subscribers; one that falls further behind
    /// goes back to reading the database.
    pub buffer: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_millis(500),
            retention: Duration::from_secs(7 * 24 * 3600),
            buffer: 4096,
        }
    }
}
