//! The ledger (`payment_events`) on the write path: set-based statements,
//! each one index lookup per key, whatever the batch's size.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, FromQueryResult};

use super::StorageError;
use super::bulk::{Params, Rows, Ty, chunks, opt_text};
use super::writer::Ctx;
use crate::order::{Currency, UnixMicros};
use crate::payment_event::summary::Fact;
use crate::payment_event::{EventKind, Grant, Outcome, PaymentEvent};

/// The first delivery of an event recorded before this batch.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct Recorded {
    pub source: String,
    pub event_id: String,
    pub outcome: Outcome,
    pub order_id: Option<String>,
}

/// Which of these (source, event id) pairs are in the ledger already.
/// Both columns are matched with `= ANY` on the unique index (a join with
/// the batch's rows can be planned as a sequential scan while the table has
/// no statistics); the few extra pairs that crossing sources and ids can
/// match are dropped here.
pub(crate) async fn recorded(
    ctx: &Ctx<'_>,
    keys: &[(&str, &str)],
) -> Result<Vec<Recorded>, StorageError> {
    let wanted: std::collections::HashSet<(&str, &str)> = keys.iter().copied().collect();
    let mut sources: Vec<String> = keys.iter().map(|(s, _)| (*s).to_owned()).collect();
    sources.sort_unstable();
    sources.dedup();
    let event_ids: Vec<String> = keys.iter().map(|(_, e)| (*e).to_owned()).collect();
    let mut params = Params::new(ctx.backend());
    let by_source = params.any_text("source", &sources);
    let by_id = params.any_text("event_id", &event_ids);
    let rows = ctx
        .txn
        .query_all_raw(params.statement(format!(
            "SELECT source, event_id, outcome, order_id FROM payment_events
             WHERE {by_source} AND {by_id}"
        )))
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let row = Recorded::from_query_result(&row, "")?;
        if wanted.contains(&(row.source.as_str(), row.event_id.as_str())) {
            found.push(row);
        }
    }
    Ok(found)
}

/// The order each of these payments was applied to, where one was.
pub(crate) async fn orders_of_payments(
    ctx: &Ctx<'_>,
    payment_refs: &[String],
) -> Result<HashMap<String, String>, StorageError> {
    if payment_refs.is_empty() {
        return Ok(HashMap::new());
    }
    let mut params = Params::new(ctx.backend());
    let filter = params.any_text("payment_ref", payment_refs);
    let rows = ctx
        .txn
        .query_all_raw(params.statement(format!(
            "SELECT payment_ref, order_id FROM payment_events
             WHERE {filter} AND order_id IS NOT NULL"
        )))
        .await?;
    let mut found = HashMap::new();
    for row in rows {
        let payment: String = row.try_get("", "payment_ref")?;
        let order: String = row.try_get("", "order_id")?;
        found.entry(payment).or_insert(order);
    }
    // Payments Fulfil started itself (checkout) are known before any event
    // arrives: an event naming only the PaymentIntent still finds its order.
    let unknown: Vec<String> = payment_refs
        .iter()
        .filter(|p| !found.contains_key(*p))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let mut params = Params::new(ctx.backend());
        let filter = params.any_text("provider_payment_id", &unknown);
        let rows = ctx
            .txn
            .query_all_raw(params.statement(format!(
                "SELECT provider_payment_id, order_id FROM checkout_attempts WHERE {filter}"
            )))
            .await?;
        for row in rows {
            let payment: String = row.try_get("", "provider_payment_id")?;
            let order: String = row.try_get("", "order_id")?;
            found.entry(payment).or_insert(order);
        }
    }
    Ok(found)
}

/// An UNMATCHED event: what deciding and merging it needs.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct WaitingRow {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub kind: EventKind,
    pub order_ref: String,
    pub payment_ref: String,
    pub refund_ref: String,
    pub amount: i64,
    pub amount_is_cumulative: bool,
    pub currency: Option<String>,
    pub occur_time: i64,
}

impl WaitingRow {
    /// The event's fact.
    pub fn fact(&self) -> Fact {
        Fact {
            event_id: self.event_id.clone(),
            kind: self.kind,
            payment_ref: self.payment_ref.clone(),
            refund_ref: self.refund_ref.clone(),
            amount: self.amount,
            amount_is_cumulative: self.amount_is_cumulative,
            occur_time: self.occur_time,
        }
    }

    /// The event's currency.
    pub fn currency(&self) -> Option<Currency> {
        self.currency.as_deref().and_then(Currency::parse)
    }
}

const WAITING_COLUMNS: &str = "id, source, event_id, kind, order_ref, payment_ref, refund_ref, \
     amount, amount_is_cumulative, currency, occur_time";

/// UNMATCHED events that name one of these orders, or that name no order
/// and concern one of these payments. Both branches are equality lookups in
/// a partial index of the waiting events alone (the literal 'UNMATCHED' is
/// what lets the planner use it).
pub(crate) async fn waiting(
    ctx: &Ctx<'_>,
    order_ids: &[String],
    payment_refs: &[String],
) -> Result<Vec<WaitingRow>, StorageError> {
    let mut params = Params::new(ctx.backend());
    let mut branches = Vec::new();
    if !order_ids.is_empty() {
        let filter = params.any_text("order_ref", order_ids);
        branches.push(format!(
            "SELECT {WAITING_COLUMNS} FROM payment_events WHERE outcome = 'UNMATCHED' AND {filter}"
        ));
    }
    if !payment_refs.is_empty() {
        let filter = params.any_text("payment_ref", payment_refs);
        branches.push(format!(
            "SELECT {WAITING_COLUMNS} FROM payment_events
             WHERE outcome = 'UNMATCHED' AND order_ref = '' AND {filter}"
        ));
    }
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let rows = ctx
        .txn
        .query_all_raw(params.statement(branches.join(" UNION ALL ")))
        .await?;
    rows.iter()
        .map(|row| Ok(WaitingRow::from_query_result(row, "")?))
        .collect()
}

/// The next chunk of UNMATCHED events after ledger position `after`.
pub(crate) async fn waiting_after(
    ctx: &Ctx<'_>,
    after: i64,
    limit: u64,
) -> Result<Vec<WaitingRow>, StorageError> {
    let mut params = Params::new(ctx.backend());
    let after = params.bind(after.into());
    let limit = params.bind(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let rows = ctx
        .txn
        .query_all_raw(params.statement(format!(
            "SELECT {WAITING_COLUMNS} FROM payment_events
             WHERE outcome = 'UNMATCHED' AND id > {after} ORDER BY id LIMIT {limit}"
        )))
        .await?;
    rows.iter()
        .map(|row| Ok(WaitingRow::from_query_result(row, "")?))
        .collect()
}

/// An order's events as its summary counts them.
#[derive(Debug, Default)]
pub(crate) struct OrderFacts {
    /// APPLIED events.
    pub applied: Vec<Fact>,
    /// MISMATCH events with their note.
    pub mismatched: Vec<(Fact, String)>,
}

#[derive(Debug, FromQueryResult)]
struct FactRow {
    order_id: String,
    event_id: String,
    kind: EventKind,
    payment_ref: String,
    refund_ref: String,
    amount: i64,
    amount_is_cumulative: bool,
    occur_time: i64,
    outcome: Outcome,
    note: Option<String>,
}

/// Every APPLIED and MISMATCH event of these orders, to rebuild their
/// summaries (orders written before summaries were kept).
pub(crate) async fn facts_of_orders(
    ctx: &Ctx<'_>,
    order_ids: &[String],
) -> Result<HashMap<String, OrderFacts>, StorageError> {
    let mut params = Params::new(ctx.backend());
    let filter = params.any_text("order_id", order_ids);
    let rows = ctx
        .txn
        .query_all_raw(params.statement(format!(
            "SELECT order_id, event_id, kind, payment_ref, refund_ref, amount,
                 amount_is_cumulative, occur_time, outcome, note
             FROM payment_events WHERE {filter} AND outcome IN ('APPLIED', 'MISMATCH')"
        )))
        .await?;
    let mut facts: HashMap<String, OrderFacts> = HashMap::new();
    for row in rows {
        let row = FactRow::from_query_result(&row, "")?;
        let fact = Fact {
            event_id: row.event_id,
            kind: row.kind,
            payment_ref: row.payment_ref,
            refund_ref: row.refund_ref,
            amount: row.amount,
            amount_is_cumulative: row.amount_is_cumulative,
            occur_time: row.occur_time,
        };
        let entry = facts.entry(row.order_id).or_default();
        match (row.outcome, row.note) {
            (Outcome::Mismatch, Some(note)) => entry.mismatched.push((fact, note)),
            _ => entry.applied.push(fact),
        }
    }
    Ok(facts)
}

/// A new ledger row, complete with what recording decided.
#[derive(Debug, Clone)]
pub(crate) struct Claim<'e> {
    pub event: &'e PaymentEvent,
    pub outcome: Outcome,
    pub order_id: Option<String>,
    pub note: Option<String>,
}

fn grants_json(grants: &[Grant]) -> Result<String, StorageError> {
    serde_json::to_string(grants).map_err(|e| StorageError::Statement(format!("entitlements: {e}")))
}

const CLAIM_COLUMNS: [(&str, Ty); 19] = [
    ("source", Ty::Text),
    ("event_id", Ty::Text),
    ("provider", Ty::Text),
    ("kind", Ty::Text),
    ("event_type", Ty::Text),
    ("order_ref", Ty::Text),
    ("payment_ref", Ty::Text),
    ("refund_ref", Ty::Text),
    ("amount", Ty::BigInt),
    ("amount_is_cumulative", Ty::Bool),
    ("currency", Ty::Text),
    ("occur_time", Ty::BigInt),
    ("customer_ref", Ty::Text),
    ("product_ref", Ty::Text),
    ("entitlements", Ty::Text),
    ("payload", Ty::Bytes),
    ("outcome", Ty::Text),
    ("order_id", Ty::Text),
    ("note", Ty::Text),
];

/// Inserts the new ledger rows, each complete, with `ON CONFLICT DO
/// NOTHING` on (source, event_id). The batch checked which events were
/// recorded before it; a row that is taken anyway was claimed by a replica
/// since, and the batch fails as a conflict (and is retried) rather than
/// apply an event twice.
pub(crate) async fn claim(
    ctx: &Ctx<'_>,
    claims: &[Claim<'_>],
    now: UnixMicros,
) -> Result<(), StorageError> {
    let backend = ctx.backend();
    for run in chunks(backend, claims, |c| c.event.payload.len() + 256) {
        let mut t = Rows::new(&CLAIM_COLUMNS);
        for claim in run {
            let e = claim.event;
            t.push(vec![
                e.source.clone().into(),
                e.event_id.clone().into(),
                e.provider.clone().into(),
                e.kind.as_str().to_owned().into(),
                e.event_type.clone().into(),
                e.order_ref.clone().into(),
                e.payment_ref.clone().into(),
                e.refund_ref.clone().into(),
                e.amount.into(),
                e.amount_is_cumulative.into(),
                opt_text(e.currency.map(|c| c.as_str())),
                e.occur_time.0.into(),
                e.customer_ref.clone().into(),
                e.product_ref.clone().into(),
                grants_json(&e.entitlements)?.into(),
                e.payload.clone().into(),
                claim.outcome.as_str().to_owned().into(),
                opt_text(claim.order_id.as_deref()),
                opt_text(claim.note.as_deref()),
            ]);
        }
        let expected = run.len();
        let statement = t.statement(backend, |params| {
            let now = params.bind(now.0.into());
            format!(
                "INSERT INTO payment_events (source, event_id, provider, kind, event_type,
                     order_ref, payment_ref, refund_ref, amount, amount_is_cumulative, currency,
                     occur_time, customer_ref, product_ref, entitlements, payload, outcome,
                     order_id, note, record_time)
                 SELECT source, event_id, provider, kind, event_type, order_ref, payment_ref,
                     refund_ref, amount, amount_is_cumulative, NULLIF(currency, ''), occur_time,
                     customer_ref, product_ref, entitlements, payload, outcome,
                     NULLIF(order_id, ''), NULLIF(note, ''), {now}
                 FROM t WHERE true
                 ON CONFLICT (source, event_id) DO NOTHING"
            )
        });
        let inserted = ctx.txn.execute_raw(statement).await?.rows_affected();
        if inserted != expected as u64 {
            return Err(StorageError::Conflict(
                "payment event recorded concurrently".into(),
            ));
        }
    }
    Ok(())
}

/// A waiting event now matched to its order.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    pub id: i64,
    pub outcome: Outcome,
    pub order_id: String,
    pub note: Option<String>,
}

/// Records the new outcome of waiting events, in one statement. An event
/// no longer UNMATCHED was settled by a replica since: conflict, retry.
pub(crate) async fn settle(ctx: &Ctx<'_>, settled: &[Settled]) -> Result<(), StorageError> {
    if settled.is_empty() {
        return Ok(());
    }
    let mut t = Rows::new(&[
        ("id", Ty::BigInt),
        ("outcome", Ty::Text),
        ("order_id", Ty::Text),
        ("note", Ty::Text),
    ]);
    for s in settled {
        t.push(vec![
            s.id.into(),
            s.outcome.as_str().to_owned().into(),
            s.order_id.clone().into(),
            opt_text(s.note.as_deref()),
        ]);
    }
    let ids: Vec<i64> = settled.iter().map(|s| s.id).collect();
    // `= ANY` on the key steers the plan to the primary key whatever the
    // statistics say (see `recorded`).
    let statement = t.statement(ctx.backend(), |params| {
        let by_id = params.any_bigint("payment_events.id", &ids);
        format!(
            "UPDATE payment_events SET outcome = t.outcome, order_id = t.order_id,
                 note = NULLIF(t.note, '')
             FROM t WHERE payment_events.id = t.id AND {by_id}
                 AND payment_events.outcome = 'UNMATCHED'"
        )
    });
    let updated = ctx.txn.execute_raw(statement).await?.rows_affected();
    if updated != settled.len() as u64 {
        return Err(StorageError::Conflict(
            "waiting event settled concurrently".into(),
        ));
    }
    Ok(())
}
