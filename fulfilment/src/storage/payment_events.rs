//! Recording provider events exactly once and applying them to orders.
//!
//! [`RecordEvent`] runs inside the writer's transaction:
//! 1. decide, with reads only: find the order (by `order_ref`, else by a
//!    payment already recorded on an order; locked on PostgreSQL), check
//!    amount and currency, pick the outcome;
//! 2. claim `(source, event_id)` by inserting the complete ledger row with
//!    `INSERT … ON CONFLICT DO NOTHING`: a duplicate, concurrent or late,
//!    finds the claim taken, has changed nothing, and answers DUPLICATE;
//! 3. apply side effects: create the order of an in-app purchase, grant or
//!    expire entitlements;
//! 4. attach events that were waiting for this order, and recompute the
//!    order from the whole set of its events (so arrival order never
//!    matters), writing a new version only if something changed.

use futures::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
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

/// What recording decided before the claim: the ledger row is written once,
/// complete, by the claim itself.
struct Decision {
    outcome: Outcome,
    order_id: Option<String>,
    note: Option<String>,
}

/// Inserts the ledger row unless (source, event_id) exists; false if it did.
async fn claim(
    event: &PaymentEvent,
    decision: &Decision,
    ctx: &Ctx<'_>,
) -> Result<bool, StorageError> {
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
            Column::OrderId,
            Column::Note,
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
            decision.outcome.as_str().into(),
            decision.order_id.clone().into(),
            decision.note.clone().into(),
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
    Ok(ctx
        .txn
        .query_one_raw(backend.build(&insert))
        .await?
        .is_some())
}

async fn record(event: &PaymentEvent, ctx: &mut Ctx<'_>) -> Result<Recorded, StorageError> {
    // Decide with reads only, then claim: a duplicate has then changed
    // nothing, and the claim writes the ledger row complete in one statement.
    let mut order = None;
    let decision = if event.kind.concerns_order() {
        order = find_order(ctx, &event.order_ref, &event.payment_ref).await?;
        match &order {
            Some(row) => {
                let note = mismatch(event.kind, event.amount, event.currency, row);
                Decision {
                    outcome: if note.is_some() {
                        Outcome::Mismatch
                    } else {
                        Outcome::Applied
                    },
                    order_id: Some(row.order_id.clone()),
                    note,
                }
            }
            None => Decision {
                outcome: Outcome::Unmatched,
                order_id: None,
                note: None,
            },
        }
    } else {
        let applies = match event.kind {
            EventKind::Purchase | EventKind::Renewal => true,
            EventKind::Uncancellation | EventKind::ProductChange | EventKind::Expiration => {
                !event.entitlements.is_empty()
            }
            _ => false,
        };
        let order_id = matches!(event.kind, EventKind::Purchase | EventKind::Renewal)
            .then(|| purchase_order_id(event));
        Decision {
            outcome: if applies {
                Outcome::Applied
            } else {
                Outcome::Ignored
            },
            order_id,
            note: None,
        }
    };

    if !claim(event, &decision, ctx).await? {
        return duplicate(event, ctx).await;
    }

    match event.kind {
        EventKind::Purchase | EventKind::Renewal => {
            order = Some(purchase_order(event, ctx).await?);
            entitlements::grant(
                ctx,
                &event.customer_ref,
                &event.product_ref,
                &event.entitlements,
            )
            .await?;
        }
        EventKind::Uncancellation | EventKind::ProductChange => {
            entitlements::grant(
                ctx,
                &event.customer_ref,
                &event.product_ref,
                &event.entitlements,
            )
            .await?;
        }
        EventKind::Expiration => {
            entitlements::expire(
                ctx,
                &event.customer_ref,
                &event.product_ref,
                &event.entitlements,
                event.occur_time.0,
            )
            .await?;
        }
        _ => {}
    }

    let order = match order {
        Some(row) => Some(settle(ctx, row, &event.payment_ref).await?),
        None => None,
    };
    Ok(Recorded {
        outcome: decision.outcome,
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
fn purchase_order_id(event: &PaymentEvent) -> String {
    let transaction = if event.payment_ref.is_empty() {
        &event.event_id
    } else {
        &event.payment_ref
    };
    let digest = Sha256::digest(format!("{}\0{transaction}", event.source).as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("iap_{hex}")
}

async fn purchase_order(
    event: &PaymentEvent,
    ctx: &mut Ctx<'_>,
) -> Result<orders::Model, StorageError> {
    let order_id = purchase_order_id(event);
    if let Some(row) = load_for_update(ctx, &order_id).await? {
        return Ok(row);
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
    if let Some(row) = create_row(&new, OrderId::from_trusted(order_id.clone()), ctx).await? {
        return Ok(row);
    }
    // A concurrent replica created it since the check: use theirs.
    load_for_update(ctx, &order_id)
        .await?
        .ok_or_else(|| StorageError::Conflict(format!("order {order_id} vanished")))
}

/// After an order is created: applies the events that were waiting for it.
pub(crate) async fn adopt_waiting(
    ctx: &mut Ctx<'_>,
    row: orders::Model,
) -> Result<Order, StorageError> {
    settle(ctx, row, "").await
}

/// An event of an order, or waiting for one, as the sum needs it (no payload).
#[derive(Debug, FromQueryResult)]
struct FactRow {
    id: i64,
    event_id: String,
    kind: String,
    payment_ref: String,
    refund_ref: String,
    amount: i64,
    amount_is_cumulative: bool,
    currency: Option<String>,
    occur_time: i64,
    outcome: String,
    note: Option<String>,
}

/// Brings an order up to date after it gained an event for payment
/// `payment_ref` (or came into being): attaches the UNMATCHED events that
/// belong to it — those naming it, and those naming no order whose payment
/// is `payment_ref` or the payment of an event attached here — then
/// recomputes it from all its events. One query in the common case.
async fn settle(
    ctx: &mut Ctx<'_>,
    row: orders::Model,
    payment_ref: &str,
) -> Result<Order, StorageError> {
    let mut seen: Vec<String> = Vec::new();
    let mut seeds: Vec<String> = Some(payment_ref.to_owned())
        .filter(|p| !p.is_empty())
        .into_iter()
        .collect();
    // Bounded: another round needs a payment reference not seen before.
    for _ in 0..8 {
        let rows: Vec<FactRow> = payment_events::Entity::find()
            .select_only()
            .columns([
                Column::Id,
                Column::EventId,
                Column::Kind,
                Column::PaymentRef,
                Column::RefundRef,
                Column::Amount,
                Column::AmountIsCumulative,
                Column::Currency,
                Column::OccurTime,
                Column::Outcome,
                Column::Note,
            ])
            .filter(
                Column::OrderId.eq(row.order_id.as_str()).or(Column::Outcome
                    .eq(Outcome::Unmatched.as_str())
                    .and(
                        Column::OrderRef
                            .eq(row.order_id.as_str())
                            .or(Column::OrderRef
                                .eq("")
                                .and(Column::PaymentRef.is_in(seeds.clone()))),
                    )),
            )
            .order_by_asc(Column::OccurTime)
            .order_by_asc(Column::EventId)
            .into_model()
            .all(ctx.txn)
            .await?;
        seen.append(&mut seeds);
        let waiting: Vec<&FactRow> = rows
            .iter()
            .filter(|r| r.outcome == Outcome::Unmatched.as_str())
            .collect();
        if waiting.is_empty() {
            return recompute(ctx, row, rows).await;
        }
        for event in waiting {
            let kind = EventKind::parse(&event.kind)
                .ok_or_else(|| StorageError::Corrupt(format!("event {}: kind", event.event_id)))?;
            let currency = event.currency.as_deref().and_then(Currency::parse);
            let note = mismatch(kind, event.amount, currency, &row);
            let outcome = if note.is_some() {
                Outcome::Mismatch
            } else {
                Outcome::Applied
            };
            payment_events::Entity::update_many()
                .col_expr(Column::Outcome, Expr::value(outcome.as_str()))
                .col_expr(Column::OrderId, Expr::value(row.order_id.clone()))
                .col_expr(Column::Note, Expr::value(note))
                .filter(Column::Id.eq(event.id))
                .exec(ctx.txn)
                .await?;
            if !event.payment_ref.is_empty()
                && !seen.contains(&event.payment_ref)
                && !seeds.contains(&event.payment_ref)
            {
                seeds.push(event.payment_ref.clone());
            }
        }
        // Loop: re-read so the attached events count with their new outcome.
    }
    Err(StorageError::Conflict(format!(
        "order {}: too many chained events to attach",
        row.order_id
    )))
}

/// Recomputes amounts, flags and state from the order's applied events and
/// its commands; writes a new version only if something changed.
async fn recompute(
    ctx: &mut Ctx<'_>,
    row: orders::Model,
    events: Vec<FactRow>,
) -> Result<Order, StorageError> {
    let mut facts = Vec::with_capacity(events.len());
    let mut attention = None;
    for event in events {
        if event.outcome == Outcome::Mismatch.as_str() {
            // The earliest mismatch by provider time explains the flag.
            attention = attention.or(event.note);
            continue;
        }
        if event.outcome != Outcome::Applied.as_str() {
            continue;
        }
        let kind = EventKind::parse(&event.kind)
            .ok_or_else(|| StorageError::Corrupt(format!("event {}: kind", event.event_id)))?;
        facts.push(Fact {
            event_id: event.event_id,
            kind,
            payment_ref: event.payment_ref,
            refund_ref: event.refund_ref,
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
                settle(ctx, order, &event.payment_ref).await?;
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
    /// How many recorded events wait for their order (UNMATCHED).
    pub async fn unmatched_waiting(&self) -> Result<u64, StorageError> {
        Ok(payment_events::Entity::find()
            .filter(Column::Outcome.eq(Outcome::Unmatched.as_str()))
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
