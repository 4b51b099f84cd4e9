//! Reading and pruning the change feed (`order_changes`).
//!
//! Feed rows are appended by the writer in the same transaction as the
//! order change, and commit in `seq` order: one writer per process, and on
//! PostgreSQL a transaction-scoped advisory lock around the append across
//! replicas. So a reader that has seen `seq = N` has seen every committed
//! change before N, and resuming "after N" never skips one.

use futures::future::BoxFuture;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use super::entity::order_changes::{self, Column};
use super::row::snapshot_to_order;
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError};
use crate::order::{Order, OrderError, UnixMicros};

/// PostgreSQL NOTIFY channel signalled by every commit that appends to the
/// feed (delivered at commit, to every listening replica).
pub const FEED_CHANNEL: &str = "fulfil_feed";

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Feed position.
    pub seq: i64,
    /// The order after the change.
    pub order: Order,
    /// When it was committed.
    pub commit_time: UnixMicros,
}

fn to_entry(row: order_changes::Model) -> Result<FeedEntry, StorageError> {
    Ok(FeedEntry {
        seq: row.seq,
        order: snapshot_to_order(row.order_pb.as_deref(), &row.snapshot)?,
        commit_time: UnixMicros(row.commit_time),
    })
}

impl Database {
    /// Up to `limit` changes after `after`, in feed order; only one order's
    /// when `order_id` is given.
    pub async fn feed_after(
        &self,
        after: i64,
        limit: u64,
        order_id: Option<&str>,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        let mut query = order_changes::Entity::find().filter(Column::Seq.gt(after));
        if let Some(order_id) = order_id {
            query = query.filter(Column::OrderId.eq(order_id));
        }
        let rows = query
            .order_by_asc(Column::Seq)
            .limit(limit)
            .all(self.conn())
            .await?;
        rows.into_iter().map(to_entry).collect()
    }

    /// The position of the latest committed change (or of the pruning
    /// horizon when the feed is empty).
    pub async fn feed_head(&self) -> Result<i64, StorageError> {
        let latest: Option<i64> = order_changes::Entity::find()
            .select_only()
            .column_as(Column::Seq.max(), "max")
            .into_tuple::<Option<i64>>()
            .one(self.conn())
            .await?
            .flatten();
        Ok(latest.unwrap_or(0).max(self.feed_horizon().await?))
    }

    /// Every change at or before this position has been pruned.
    pub async fn feed_horizon(&self) -> Result<i64, StorageError> {
        let row = self
            .conn()
            .query_one_raw(Statement::from_string(
                self.backend(),
                "SELECT pruned_through FROM feed_horizon WHERE id = 1",
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64>("", "pruned_through")?,
            None => 0,
        })
    }
}

/// Deletes changes committed before `cutoff` and moves the horizon.
#[derive(Debug, Clone, Copy)]
pub struct PruneFeed {
    /// Changes committed before this are deleted.
    pub cutoff: UnixMicros,
}

impl Mutation for PruneFeed {
    type Output = u64;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<u64, OrderError>> {
        Box::pin(async move { Ok(prune(ctx, self.cutoff).await?) })
    }
}

async fn prune(ctx: &Ctx<'_>, cutoff: UnixMicros) -> Result<u64, StorageError> {
    let through: Option<i64> = order_changes::Entity::find()
        .select_only()
        .column_as(Column::Seq.max(), "max")
        .filter(Column::CommitTime.lt(cutoff.0))
        .into_tuple::<Option<i64>>()
        .one(ctx.txn)
        .await?
        .flatten();
    let Some(through) = through else { return Ok(0) };
    let deleted = order_changes::Entity::delete_many()
        .filter(Column::Seq.lte(through))
        .exec(ctx.txn)
        .await?
        .rows_affected;
    let sql = match ctx.backend() {
        DbBackend::Postgres => {
            "UPDATE feed_horizon SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 1"
        }
        _ => "UPDATE feed_horizon SET pruned_through = MAX(pruned_through, ?) WHERE id = 1",
    };
    ctx.txn
        .execute_raw(Statement::from_sql_and_values(
            ctx.backend(),
            sql,
            [through.into()],
        ))
        .await?;
    Ok(deleted)
}
