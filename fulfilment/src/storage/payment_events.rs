//! The ledger of recorded payment events: listing it, and re-trying the
//! events that wait for their order. Recording is in `storage::record`.

use fulfil_proto::Identifier;
use futures::future::BoxFuture;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::entity::payment_events::{self, Column};
use super::page::{self, Page};
use super::record::{self, ChunkReapplied};
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError};
use crate::order::{Currency, OrderError, OrderId, UnixMicros};
use crate::payment_event::{Outcome, PaymentEvent};

/// Re-tries one chunk of UNMATCHED events (those after ledger position
/// `after`, at most `limit`) against the orders that exist now. Each chunk
/// is one write batch, so ingest is never held up behind a long re-apply.
#[derive(Debug, Clone, Copy)]
pub struct ReapplyChunk {
    /// Ledger position to continue after.
    pub after: i64,
    /// Most events in the chunk.
    pub limit: u64,
}

impl Mutation for ReapplyChunk {
    type Output = ChunkReapplied;

    fn apply<'a>(
        &'a self,
        ctx: &'a mut Ctx<'_>,
    ) -> BoxFuture<'a, Result<ChunkReapplied, OrderError>> {
        Box::pin(async move { Ok(record::reapply_chunk(ctx, self.after, self.limit).await?) })
    }
}

/// Counts after re-applying every waiting event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reapplied {
    /// Events matched now.
    pub applied: u64,
    /// Events still unmatched.
    pub still_unmatched: u64,
}

/// Waiting events per re-apply chunk.
const REAPPLY_CHUNK: u64 = 500;

/// Which recorded events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this order's.
    pub order_id: Option<OrderId>,
    /// Only this source's.
    pub source: Option<Identifier>,
    /// Only with this outcome.
    pub outcome: Option<Outcome>,
}

/// A recorded event with its outcome.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The event as recorded.
    pub event: PaymentEvent,
    /// Its outcome now.
    pub outcome: Outcome,
    /// The order it applies to.
    pub order_id: Option<String>,
    /// Why it was not applied as is.
    pub note: Option<String>,
    /// When it was recorded.
    pub record_time: UnixMicros,
    /// Keyset position.
    pub position: i64,
}

fn to_recorded(
    row: payment_events::Model,
    include_payload: bool,
) -> Result<RecordedEvent, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("event {}: {what}", row.event_id));
    Ok(RecordedEvent {
        outcome: row.outcome,
        order_id: row.order_id.clone(),
        note: row.note.clone(),
        record_time: UnixMicros(row.record_time),
        position: row.id,
        event: PaymentEvent {
            kind: row.kind,
            entitlements: serde_json::from_str(&row.entitlements)
                .map_err(|_| corrupt("entitlements"))?,
            currency: row.currency.as_deref().and_then(Currency::parse),
            occur_time: UnixMicros(row.occur_time),
            payload: if include_payload {
                row.payload
            } else {
                Vec::new()
            },
            source: row.source,
            provider: row.provider,
            event_id: row.event_id,
            event_type: row.event_type,
            order_ref: row.order_ref,
            payment_ref: row.payment_ref,
            refund_ref: row.refund_ref,
            amount: row.amount,
            amount_is_cumulative: row.amount_is_cumulative,
            customer_ref: row.customer_ref,
            product_ref: row.product_ref,
        },
    })
}

impl Database {
    /// Re-tries every UNMATCHED event against the orders that exist now, in
    /// chunks of [`REAPPLY_CHUNK`], each its own write batch.
    pub async fn reapply_unmatched(&self) -> Result<Reapplied, OrderError> {
        let mut total = Reapplied {
            applied: 0,
            still_unmatched: 0,
        };
        let mut after = 0;
        loop {
            let chunk = self
                .writer()
                .submit(ReapplyChunk {
                    after,
                    limit: REAPPLY_CHUNK,
                })
                .await?;
            total.applied += chunk.applied;
            total.still_unmatched += chunk.still_unmatched;
            match chunk.next_after {
                Some(next) => after = next,
                None => return Ok(total),
            }
        }
    }

    /// How many recorded events wait for their order (UNMATCHED).
    pub async fn unmatched_waiting(&self) -> Result<u64, StorageError> {
        Ok(payment_events::Entity::find()
            .filter(Column::Outcome.eq(Outcome::Unmatched))
            .count(self.conn())
            .await?)
    }

    /// Up to `limit` recorded events, newest first, before keyset `after`.
    pub async fn list_payment_events(
        &self,
        filter: &EventFilter,
        after: Option<i64>,
        limit: u64,
        include_payload: bool,
    ) -> Result<Page<RecordedEvent>, StorageError> {
        let mut query = payment_events::Entity::find();
        if let Some(order_id) = &filter.order_id {
            query = query.filter(Column::OrderId.eq(order_id.as_str()));
        }
        if let Some(source) = &filter.source {
            query = query.filter(Column::Source.eq(source.as_str()));
        }
        if let Some(outcome) = filter.outcome {
            query = query.filter(Column::Outcome.eq(outcome));
        }
        page::newest_first(query, Column::Id, |row| row.id, after, limit, self.conn())
            .await?
            .try_map(|row| to_recorded(row, include_payload))
    }
}
