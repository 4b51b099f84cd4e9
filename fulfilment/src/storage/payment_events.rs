//! Recording provider events exactly once and applying them to orders.
//!
//! [`RecordEvent`] runs inside the writer's transaction:
//! 1. claim `(source, event_id)` in the ledger (`INSERT … ON CONFLICT DO
//!    NOTHING`): a duplicate, concurrent or late, finds the claim taken and
//!    changes nothing;
//! 2. find the order (by `order_ref`, else by a payment already recorded on
//!    an order), or create it for an in-app purchase;
//! 3. check amount and currency, record the outcome;
//! 4. attach events that were waiting for this order, and recompute the
//!    order from the whole set of its events (so arrival order never
//!    matters), bumping `version` only if something changed.

use futures::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};

use super::entity::orders;
use super::entity::payment_events::{self, Column};
use super::orders::{create_row, load_for_update};
use super::row::to_order;
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError, entitlements};
use crate::order::{
    Currency, LineItem, NewOrder, Order, OrderError, OrderId, UnixMicros, derive_state,
};
use crate::payment_event::facts::{Fact, summarize};
use crate::payment_event::{EventKind, Grant, Outcome, PaymentEvent};

/// The result of recording one event.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What this delivery did (`duplicate` says whether it was a repeat).
    pub outcome: Outcome,
    /// True when the event was already recorded; `outcome` is then the
    /// first delivery's.
    pub duplicate: bool,
    /// The order after the event, when it has one.
    pub order: Option<Order>,
}

/// Records one event and applies it; see the module docs.
#[derive(Debug, Clone)]
pub struct RecordEvent(pub PaymentEvent);

impl Mutation for RecordEvent {
    type Output = Recorded;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Recorded, OrderError>> {
        Box::pin(async move { Ok(record(&self.0, ctx).await?) })
    }
}

/// Re-tries every UNMATCHED event against the orders that exist now.
#[derive(Debug, Clone, Copy)]
pub struct ReapplyUnmatched;

/// Counts after [`ReapplyUnmatched`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reapplied {
    /// Events matched now.
    pub applied: u64,
    /// Events still unmatched.
    pub still_unmatched: u64,
}

impl Mutation for ReapplyUnmatched {
    type Output = Reapplied;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Reapplied, OrderError>> {
        Box::pin(async move { Ok(reapply(ctx).await?) })
    }
}

fn grants_json(grants: &[Grant]) -> Result<String, StorageError> {
    serde_json::to_string(grants).map_err(|e| StorageError::Statement(format!("entitlements: {e}")))
}

/// Inserts the ledger row unless (source, event_id) exists; the id if new.
async fn claim(event: &PaymentEvent, ctx: &Ctx<'_>) -> Result<Option<i64>, StorageError> {
    let mut insert = Query::insert();
    insert
        .into_table(payment_events::Entity)
        .columns([
            Column::Source,
            Column::EventId,
            Column::Provider,
            Column::Kind,
            Column::EventType,
            Column::OrderRef,
            Column::PaymentRef,
            Column::RefundRef,
            Column::Amount,
            Column::AmountIsCumulative,
            Column::Currency,
            Column::OccurTime,
            Column::CustomerRef,
            Column::ProductRef,
            Column::Entitlements,
            Column::Payload,
            Column::Outcome,
            Column::RecordTime,
        ])
        .values([
            event.source.clone().into(),
            event.event_id.clone().into(),
            event.provider.clone().into(),
            event.kind.as_str().into(),
            event.event_type.clone().into(),
            event.order_ref.clone().into(),
            event.payment_ref.clone().into(),
            event.refund_ref.clone().into(),
            event.amount.into(),
            event.amount_is_cumulative.into(),
            event.currency.map(|c| c.as_str().to_owned()).into(),
            event.occur_time.0.into(),
            event.customer_ref.clone().into(),
            event.product_ref.clone().into(),
            grants_json(&event.entitlements)?.into(),
            event.payload.clone().into(),
            Outcome::Unmatched.as_str().into(),
            ctx.now.0.into(),
        ])
        .map_err(|e| StorageError::Statement(e.to_string()))?
        .on_conflict(
            OnConflict::columns([Column::Source, Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .returning_col(Column::Id);
    let backend = ctx.backend();
    match ctx.txn.query_one_raw(backend.build(&insert)).await? {
        Some(row) => Ok(Some(row.try_get("", "id")?)),
        None => Ok(None),
    }
}

async fn record(event: &PaymentEvent, ctx: &mut Ctx<'_>) -> Result<Recorded, StorageError> {
    let Some(id) = claim(event, ctx).await? else {
        return duplicate(event, ctx).await;
    };

    let (outcome, order_id, note) = if event.kind.concerns_order() {
        match find_order(ctx, &event.order_ref, &event.payment_ref).await? {
            Some(row) => {
                let note = mismatch(event.kind, event.amount, event.currency, &row);
                let outcome = if note.is_some() {
                    Outcome::Mismatch
                } else {
                    Outcome::Applied
                };
                (outcome, Some(row.order_id), note)
            }
            None => (Outcome::Unmatched, None, None),
        }
    } else {
        match event.kind {
            EventKind::Purchase | EventKind::Renewal => {
                let order_id = purchase_order(event, ctx).await?;
                entitlements::grant(
                    ctx,
                    &event.customer_ref,
                    &event.product_ref,
                    &event.entitlements,
                )
                .await?;
                (Outcome::Applied, Some(order_id), None)
            }
            EventKind::Uncancellation | EventKind::ProductChange
                if !event.entitlements.is_empty() =>
            {
                entitlements::grant(
                    ctx,
                    &event.customer_ref,
                    &event.product_ref,
                    &event.entitlements,
                )
                .await?;
                (Outcome::Applied, None, None)
            }
            EventKind::Expiration if !event.entitlements.is_empty() => {
                entitlements::expire(
                    ctx,
                    &event.customer_ref,
                    &event.product_ref,
                    &event.entitlements,
                    event.occur_time.0,
                )
                .await?;
                (Outcome::Applied, None, None)
            }
            _ => (Outcome::Ignored, None, None),
        }
    };

    payment_events::Entity::update_many()
        .col_expr(Column::Outcome, Expr::value(outcome.as_str()))
        .col_expr(Column::OrderId, Expr::value(order_id.clone()))
        .col_expr(Column::Note, Expr::value(note))
        .filter(Column::Id.eq(id))
        .exec(ctx.txn)
        .await?;

    let order = match order_id {
        Some(order_id) => Some(settle(ctx, &order_id).await?),
        None => None,
    };
    Ok(Recorded {
        outcome,
        duplicate: false,
        order,
    })
}

/// The first delivery's outcome and the order as it is now.
async fn duplicate(event: &PaymentEvent, ctx: &Ctx<'_>) -> Result<Recorded, StorageError> {
    let first = payment_events::Entity::find()
        .filter(Column::Source.eq(event.source.as_str()))
        .filter(Column::EventId.eq(event.event_id.as_str()))
        .one(ctx.txn)
        .await?
        .ok_or_else(|| StorageError::Conflict(format!("event {} vanished", event.event_id)))?;
    let outcome = Outcome::parse(&first.outcome)
        .ok_or_else(|| StorageError::Corrupt(format!("event {}: outcome", first.event_id)))?;
    let order = match &first.order_id {
        Some(order_id) => {
            let row = orders::Entity::find()
                .filter(orders::Column::OrderId.eq(order_id.as_str()))
                .one(ctx.txn)
                .await?;
            row.as_ref().map(to_order).transpose()?
        }
        None => None,
    };
    Ok(Recorded {
        outcome,
        duplicate: true,
        order,
    })
}

/// The order an event belongs to: the one it names, or, when it names none
/// (refunds and disputes carry only the payment), the order a payment with
/// the same reference was applied to.
async fn find_order(
    ctx: &Ctx<'_>,
    order_ref: &str,
    payment_ref: &str,
) -> Result<Option<orders::Model>, StorageError> {
    if !order_ref.is_empty() {
        return load_for_update(ctx, order_ref).await;
    }
    if payment_ref.is_empty() {
        return Ok(None);
    }
    let known: Option<Option<String>> = payment_events::Entity::find()
        .select_only()
        .column(Column::OrderId)
        .filter(Column::PaymentRef.eq(payment_ref))
        .filter(Column::OrderId.is_not_null())
        .limit(1)
        .into_tuple()
        .one(ctx.txn)
        .await?;
    match known.flatten() {
        Some(order_id) => load_for_update(ctx, &order_id).await,
        None => Ok(None),
    }
}

/// Why a money event does not fit its order, if it does not. A payment must
/// match the total exactly (a short or long payment needs a human); any
/// money event must be in the order's currency.
fn mismatch(
    kind: EventKind,
    amount: i64,
    currency: Option<Currency>,
    order: &orders::Model,
) -> Option<String> {
    let money = matches!(kind, EventKind::PaymentSucceeded | EventKind::Refunded);
    if !money {
        return None;
    }
    if let Some(currency) = currency.filter(|c| c.as_str() != order.currency) {
        return Some(format!(
            "CURRENCY_MISMATCH: event in {currency}, order in {}",
            order.currency
        ));
    }
    if kind == EventKind::PaymentSucceeded && amount != order.amount_total {
        return Some(format!(
            "AMOUNT_MISMATCH: paid {amount} {}, order total {} {}",
            order.currency, order.amount_total, order.currency
        ));
    }
    None
}

/// The order an in-app purchase pays for, created on first sight: in-app
/// purchases have no order beforehand. Its id derives from the transaction,
/// so a purchase reported twice (or by two event ids) maps to one order.
async fn purchase_order(event: &PaymentEvent, ctx: &mut Ctx<'_>) -> Result<String, StorageError> {
    let transaction = if event.payment_ref.is_empty() {
        &event.event_id
    } else {
        &event.payment_ref
    };
    let digest = Sha256::digest(format!("{}\0{transaction}", event.source).as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let order_id = format!("iap_{hex}");
    if load_for_update(ctx, &order_id).await?.is_some() {
        return Ok(order_id);
    }
    let currency = event.currency.ok_or_else(|| {
        StorageError::Statement("purchase without currency passed validation".into())
    })?;
    let new = NewOrder {
        order_id: Some(OrderId::from_trusted(order_id.clone())),
        customer_id: event.customer_ref.clone(),
        line_items: vec![LineItem {
            sku: if event.product_ref.is_empty() {
                "in-app-purchase".into()
            } else {
                event.product_ref.clone()
            },
            quantity: 1,
            unit_amount: event.amount,
        }],
        currency,
        amount_total: event.amount,
        metadata: [
            ("source".to_owned(), event.source.clone()),
            ("provider".to_owned(), event.provider.clone()),
        ]
        .into(),
        request_id: None,
        request_hash: String::new(),
    };
    // A concurrent replica may have created it since the check: fine, the
    // insert then does nothing and both use the same order.
    create_row(&new, OrderId::from_trusted(order_id.clone()), ctx).await?;
    Ok(order_id)
}

/// After an order is created: applies the events that were waiting for it.
pub(crate) async fn adopt_waiting(
    ctx: &mut Ctx<'_>,
    row: orders::Model,
) -> Result<Order, StorageError> {
    if attach_unmatched(ctx, &row).await? == 0 {
        return to_order(&row);
    }
    recompute(ctx, row).await
}

/// Attaches waiting events to the order, then recomputes it from all its
/// events. Called whenever an order gains an event.
pub(crate) async fn settle(ctx: &mut Ctx<'_>, order_id: &str) -> Result<Order, StorageError> {
    let row = load_for_update(ctx, order_id)
        .await?
        .ok_or_else(|| StorageError::Conflict(format!("order {order_id} vanished")))?;
    attach_unmatched(ctx, &row).await?;
    recompute(ctx, row).await
}

/// Marks UNMATCHED events that belong to `order` as applied (or mismatched):
/// those naming it, and those naming no order whose payment is one of its
/// payments. Repeats, since each attached payment can bring its refunds.
async fn attach_unmatched(ctx: &Ctx<'_>, order: &orders::Model) -> Result<u64, StorageError> {
    let mut attached = 0;
    // Bounded: each round needs a new payment reference to find anything.
    for _ in 0..8 {
        let payments: Vec<String> = payment_events::Entity::find()
            .select_only()
            .column(Column::PaymentRef)
            .distinct()
            .filter(Column::OrderId.eq(order.order_id.as_str()))
            .filter(Column::PaymentRef.ne(""))
            .into_tuple()
            .all(ctx.txn)
            .await?;
        let waiting = payment_events::Entity::find()
            .filter(Column::Outcome.eq(Outcome::Unmatched.as_str()))
            .filter(
                Column::OrderRef
                    .eq(order.order_id.as_str())
                    .or(Column::OrderRef
                        .eq("")
                        .and(Column::PaymentRef.is_in(payments))),
            )
            .all(ctx.txn)
            .await?;
        if waiting.is_empty() {
            break;
        }
        for event in waiting {
            let kind = EventKind::parse(&event.kind)
                .ok_or_else(|| StorageError::Corrupt(format!("event {}: kind", event.event_id)))?;
            let currency = event.currency.as_deref().and_then(Currency::parse);
            let note = mismatch(kind, event.amount, currency, order);
            let outcome = if note.is_some() {
                Outcome::Mismatch
            } else {
                Outcome::Applied
            };
            payment_events::Entity::update_many()
                .col_expr(Column::Outcome, Expr::value(outcome.as_str()))
                .col_expr(Column::OrderId, Expr::value(order.order_id.clone()))
                .col_expr(Column::Note, Expr::value(note))
                .filter(Column::Id.eq(event.id))
                .exec(ctx.txn)
                .await?;
            attached += 1;
        }
    }
    Ok(attached)
}

/// Recomputes amounts, flags and state from the order's applied events and
/// its commands; writes a new version only if something changed.
async fn recompute(ctx: &mut Ctx<'_>, row: orders::Model) -> Result<Order, StorageError> {
    let events = payment_events::Entity::find()
        .filter(Column::OrderId.eq(row.order_id.as_str()))
        .filter(Column::Outcome.is_in([Outcome::Applied.as_str(), Outcome::Mismatch.as_str()]))
        .order_by_asc(Column::OccurTime)
        .order_by_asc(Column::EventId)
        .all(ctx.txn)
        .await?;
    let mut facts = Vec::with_capacity(events.len());
    let mut attention = None;
    for event in &events {
        if event.outcome == Outcome::Mismatch.as_str() {
            // The earliest mismatch by provider time explains the flag.
            attention = attention.or_else(|| event.note.clone());
            continue;
        }
        facts.push(Fact {
            event_id: event.event_id.clone(),
            kind: EventKind::parse(&event.kind)
                .ok_or_else(|| StorageError::Corrupt(format!("event {}: kind", event.event_id)))?,
            payment_ref: event.payment_ref.clone(),
            refund_ref: event.refund_ref.clone(),
            amount: event.amount,
            amount_is_cumulative: event.amount_is_cumulative,
            occur_time: event.occur_time,
        });
    }
    let payments = summarize(&facts);
    let state = derive_state(
        row.amount_total,
        &payments,
        row.cancel_time.is_some(),
        row.fulfil_time.is_some(),
    );

    let unchanged = row.state == state.as_str()
        && row.amount_paid == payments.amount_paid
        && row.amount_refunded == payments.amount_refunded
        && row.disputed == payments.disputed
        && row.attention_reason == attention;
    if unchanged {
        return to_order(&row);
    }
    let updated = orders::Model {
        state: state.as_str().to_owned(),
        amount_paid: payments.amount_paid,
        amount_refunded: payments.amount_refunded,
        disputed: payments.disputed,
        attention_reason: attention,
        version: row.version + 1,
        update_time: ctx.now.0,
        ..row.clone()
    };
    let result = orders::Entity::update_many()
        .col_expr(orders::Column::State, Expr::value(updated.state.clone()))
        .col_expr(orders::Column::AmountPaid, Expr::value(updated.amount_paid))
        .col_expr(
            orders::Column::AmountRefunded,
            Expr::value(updated.amount_refunded),
        )
        .col_expr(orders::Column::Disputed, Expr::value(updated.disputed))
        .col_expr(
            orders::Column::AttentionReason,
            Expr::value(updated.attention_reason.clone()),
        )
        .col_expr(orders::Column::Version, Expr::value(updated.version))
        .col_expr(orders::Column::UpdateTime, Expr::value(updated.update_time))
        .filter(orders::Column::Id.eq(row.id))
        .filter(orders::Column::Version.eq(row.version))
        .exec(ctx.txn)
        .await?;
    if result.rows_affected != 1 {
        return Err(StorageError::Conflict(row.order_id));
    }
    ctx.record_change(&updated);
    to_order(&updated)
}

async fn reapply(ctx: &mut Ctx<'_>) -> Result<Reapplied, StorageError> {
    let waiting = payment_events::Entity::find()
        .filter(Column::Outcome.eq(Outcome::Unmatched.as_str()))
        .order_by_asc(Column::Id)
        .limit(10_000)
        .all(ctx.txn)
        .await?;
    let mut applied = 0;
    let mut still_unmatched = 0;
    for event in waiting {
        // An earlier iteration may have attached it already.
        let current = payment_events::Entity::find_by_id(event.id)
            .one(ctx.txn)
            .await?;
        if current.is_none_or(|e| e.outcome != Outcome::Unmatched.as_str()) {
            applied += 1;
            continue;
        }
        match find_order(ctx, &event.order_ref, &event.payment_ref).await? {
            Some(order) => {
                settle(ctx, &order.order_id).await?;
                applied += 1;
            }
            None => still_unmatched += 1,
        }
    }
    Ok(Reapplied {
        applied,
        still_unmatched,
    })
}

/// Which recorded events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this order's.
    pub order_id: Option<String>,
    /// Only this source's.
    pub source: Option<String>,
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
        outcome: Outcome::parse(&row.outcome).ok_or_else(|| corrupt("outcome"))?,
        order_id: row.order_id.clone(),
        note: row.note.clone(),
        record_time: UnixMicros(row.record_time),
        position: row.id,
        event: PaymentEvent {
            kind: EventKind::parse(&row.kind).ok_or_else(|| corrupt("kind"))?,
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
    /// Up to `limit` recorded events, newest first, before keyset `after`.
    pub async fn list_payment_events(
        &self,
        filter: &EventFilter,
        after: Option<i64>,
        limit: u64,
        include_payload: bool,
    ) -> Result<(Vec<RecordedEvent>, Option<i64>), StorageError> {
        let mut query = payment_events::Entity::find();
        if let Some(order_id) = &filter.order_id {
            query = query.filter(Column::OrderId.eq(order_id.as_str()));
        }
        if let Some(source) = &filter.source {
            query = query.filter(Column::Source.eq(source.as_str()));
        }
        if let Some(outcome) = filter.outcome {
            query = query.filter(Column::Outcome.eq(outcome.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(Column::Id.lt(after));
        }
        let mut rows = query
            .order_by_desc(Column::Id)
            .limit(limit + 1)
            .all(self.conn())
            .await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        let events = rows
            .into_iter()
            .map(|row| to_recorded(row, include_payload))
            .collect::<Result<_, _>>()?;
        Ok((events, next))
    }
}
