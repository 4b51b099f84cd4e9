//! Recording a batch of payment events, set-based.
//!
//! The writer hands over every RecordPaymentEvent of a batch that arrived
//! together. The batch then costs a fixed number of statements, whatever
//! its size:
//!
//! 1. read: which events the ledger has already; for events that name no
//!    order, the orders their payments were applied to; every touched
//!    order (locked on PostgreSQL); the events waiting for those orders;
//!    the touched entitlements;
//! 2. decide, in memory, in arrival order, with the domain rules
//!    (`payment_event::apply`): two events of one order, or two copies of
//!    one event, behave exactly as if committed one after the other;
//! 3. write: one multi-row claim of the new ledger rows, one update of the
//!    waiting events adopted, one insert of new (in-app purchase) orders,
//!    one update of the changed orders, one upsert of entitlements.
//!
//! Nothing is written before every decision is made, so an event that
//! cannot be decided (a corrupt order row, say) fails alone and leaves its
//! neighbours untouched. A database error fails the whole batch, which the
//! writer then retries one event at a time.

use std::collections::{HashMap, HashSet};

use super::held::{self, Held};
use super::ledger::{self, Claim, Settled, WaitingRow};
use super::writer::Ctx;
use super::{StorageError, entitlements};
use crate::entitlement::Entitlement;
use crate::order::{Order, OrderError, OrderId, UnixMicros};
use crate::payment_event::apply::{
    self, Decision, EntitlementChange, Target, entitlement_change, purchase_order, target,
};
use crate::payment_event::{Outcome, PaymentEvent};

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

/// Chains of waiting events (a refund waiting for a payment waiting for
/// its order) are followed this many links deep.
const MAX_CHAIN: usize = 8;

/// An event waiting for its order: stored, or new in this batch.
#[derive(Debug, Clone)]
enum Origin {
    Stored(i64),
    Claim(usize),
}

#[derive(Debug, Clone)]
struct Waiting {
    origin: Origin,
    key: (String, String),
    row: WaitingRow,
}

/// The batch's view of the world, changed in memory, written at the end.
struct Batch<'e> {
    now: UnixMicros,
    orders: HashMap<String, Held>,
    /// Payment reference → the order it was applied to.
    payments: HashMap<String, String>,
    waiting: Vec<Waiting>,
    claims: Vec<Claim<'e>>,
    settled: Vec<Settled>,
    /// Stored waiting events settled in this batch, by (source, event id).
    settled_keys: HashMap<(String, String), (Outcome, String)>,
    /// First deliveries: stored before the batch, or claimed in it.
    first: HashMap<(String, String), First>,
    entitlements: HashMap<(String, String), Entitlement>,
    changed_entitlements: HashSet<(String, String)>,
    changes: Vec<Order>,
}

#[derive(Debug, Clone)]
enum First {
    Stored {
        outcome: Outcome,
        order_id: Option<String>,
    },
    Claim(usize),
}

fn key(event: &PaymentEvent) -> (String, String) {
    (event.source.clone(), event.event_id.clone())
}

/// Records and applies `events` in one transaction; one result per event,
/// in order.
pub(crate) async fn record_batch(
    ctx: &mut Ctx<'_>,
    events: &[&PaymentEvent],
) -> Result<Vec<Result<Recorded, OrderError>>, StorageError> {
    // 1. Reads.
    let keys: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.source.as_str(), e.event_id.as_str()))
        .collect();
    let stored = ledger::recorded(ctx, &keys).await?;
    let first: HashMap<(String, String), First> = stored
        .into_iter()
        .map(|r| {
            (
                (r.source, r.event_id),
                First::Stored {
                    outcome: r.outcome,
                    order_id: r.order_id,
                },
            )
        })
        .collect();

    let unnamed: Vec<String> = unique(
        events
            .iter()
            .filter(|e| {
                e.order_ref.is_empty()
                    && !e.payment_ref.is_empty()
                    && target(e) == Target::Order
                    && !first.contains_key(&key(e))
            })
            .map(|e| e.payment_ref.clone()),
    );
    let payments = ledger::orders_of_payments(ctx, &unnamed).await?;

    let mut order_ids: Vec<String> = Vec::new();
    for event in events {
        match target(event) {
            Target::Order if !event.order_ref.is_empty() => order_ids.push(event.order_ref.clone()),
            Target::Order => {
                if let Some(order_id) = payments.get(&event.payment_ref) {
                    order_ids.push(order_id.clone());
                }
            }
            Target::Purchase(order_id) => order_ids.push(order_id.as_str().to_owned()),
            Target::Entitlements(_) | Target::Nothing => {}
        }
    }
    for f in first.values() {
        if let First::Stored {
            order_id: Some(order_id),
            ..
        } = f
        {
            order_ids.push(order_id.clone());
        }
    }
    let order_ids = unique(order_ids);
    let orders = held::load(ctx, &order_ids).await?;

    let payment_refs = unique(
        events
            .iter()
            .filter(|e| !e.payment_ref.is_empty())
            .map(|e| e.payment_ref.clone()),
    );
    let waiting = load_waiting(ctx, &order_ids, payment_refs).await?;

    let grants = entitlement_keys(events);
    let entitlements = entitlements::load(ctx, &grants, ctx.now).await?;

    // 2. Decisions, in memory.
    let mut batch = Batch {
        now: ctx.now,
        orders,
        payments,
        waiting,
        claims: Vec::with_capacity(events.len()),
        settled: Vec::new(),
        settled_keys: HashMap::new(),
        first,
        entitlements,
        changed_entitlements: HashSet::new(),
        changes: Vec::new(),
    };
    let results: Vec<Result<Recorded, OrderError>> =
        events.iter().map(|event| batch.record(event)).collect();

    // 3. Writes.
    ledger::claim(ctx, &batch.claims, batch.now).await?;
    ledger::settle(ctx, &batch.settled).await?;
    held::save(ctx, batch.orders.values()).await?;
    let changed: Vec<&Entitlement> = batch
        .changed_entitlements
        .iter()
        .filter_map(|k| batch.entitlements.get(k))
        .collect();
    entitlements::save(ctx, &changed).await?;
    for order in batch.changes {
        ctx.record_change(order);
    }
    Ok(results)
}

/// Adopts, for orders created outside a record batch (CreateOrder), the
/// events that were waiting for them; returns the order after.
pub(crate) async fn adopt_for_new_order(
    ctx: &mut Ctx<'_>,
    order: Order,
) -> Result<Order, StorageError> {
    let order_id = order.order_id.as_str().to_owned();
    let waiting = load_waiting(ctx, std::slice::from_ref(&order_id), Vec::new()).await?;
    if waiting.is_empty() {
        return Ok(order);
    }
    let orders = held::load(ctx, std::slice::from_ref(&order_id)).await?;
    let mut batch = Batch::empty(ctx.now, orders, waiting);
    batch.adopt(&order_id, Vec::new());
    ledger::settle(ctx, &batch.settled).await?;
    held::save(ctx, batch.orders.values()).await?;
    let after = batch
        .orders
        .get(&order_id)
        .map(|h| h.order.clone())
        .unwrap_or(order);
    for change in batch.changes {
        ctx.record_change(change);
    }
    Ok(after)
}

/// What re-applying one chunk of waiting events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkReapplied {
    /// Events matched to an order now.
    pub applied: u64,
    /// Events still waiting.
    pub still_unmatched: u64,
    /// Ledger position of the chunk's last event; `None` when it was the last.
    pub next_after: Option<i64>,
}

/// Tries the next `limit` waiting events after ledger position `after`
/// against the orders that exist now.
pub(crate) async fn reapply_chunk(
    ctx: &mut Ctx<'_>,
    after: i64,
    limit: u64,
) -> Result<ChunkReapplied, StorageError> {
    let chunk = ledger::waiting_after(ctx, after, limit).await?;
    let next_after = if chunk.len() as u64 >= limit {
        chunk.last().map(|r| r.id)
    } else {
        None
    };
    let unnamed = unique(
        chunk
            .iter()
            .filter(|r| r.order_ref.is_empty() && !r.payment_ref.is_empty())
            .map(|r| r.payment_ref.clone()),
    );
    let payments = ledger::orders_of_payments(ctx, &unnamed).await?;
    let targets: Vec<(String, Option<String>)> = chunk
        .iter()
        .filter_map(|r| {
            if !r.order_ref.is_empty() {
                Some((r.order_ref.clone(), None))
            } else {
                payments
                    .get(&r.payment_ref)
                    .map(|o| (o.clone(), Some(r.payment_ref.clone())))
            }
        })
        .collect();
    let order_ids = unique(targets.iter().map(|(o, _)| o.clone()));
    let orders = held::load(ctx, &order_ids).await?;
    let seeds = unique(targets.iter().filter_map(|(_, p)| p.clone()));
    let waiting = load_waiting(ctx, &order_ids, seeds).await?;
    let mut batch = Batch::empty(ctx.now, orders, waiting);
    batch.payments = payments;
    for order_id in &order_ids {
        let seeds = targets
            .iter()
            .filter(|(o, _)| o == order_id)
            .filter_map(|(_, p)| p.clone())
            .collect();
        batch.adopt(order_id, seeds);
    }
    let settled: HashSet<i64> = batch.settled.iter().map(|s| s.id).collect();
    let applied = chunk.iter().filter(|r| settled.contains(&r.id)).count() as u64;
    ledger::settle(ctx, &batch.settled).await?;
    held::save(ctx, batch.orders.values()).await?;
    for change in batch.changes {
        ctx.record_change(change);
    }
    Ok(ChunkReapplied {
        applied,
        still_unmatched: chunk.len() as u64 - applied,
        next_after,
    })
}

/// Waiting events for these orders and payments, following chains: an
/// adopted event's own payment may have events waiting for it too.
async fn load_waiting(
    ctx: &Ctx<'_>,
    order_ids: &[String],
    mut payment_refs: Vec<String>,
) -> Result<Vec<Waiting>, StorageError> {
    let mut seen_payments: HashSet<String> = HashSet::new();
    let mut seen_rows: HashSet<i64> = HashSet::new();
    let mut found = Vec::new();
    let mut order_ids = order_ids;
    for _ in 0..MAX_CHAIN {
        payment_refs.retain(|p| seen_payments.insert(p.clone()));
        if order_ids.is_empty() && payment_refs.is_empty() {
            break;
        }
        let rows = ledger::waiting(ctx, order_ids, &payment_refs).await?;
        order_ids = &[];
        payment_refs = Vec::new();
        for row in rows {
            if !seen_rows.insert(row.id) {
                continue;
            }
            if !row.payment_ref.is_empty() && !seen_payments.contains(&row.payment_ref) {
                payment_refs.push(row.payment_ref.clone());
            }
            found.push(Waiting {
                origin: Origin::Stored(row.id),
                key: (row.source.clone(), row.event_id.clone()),
                row,
            });
        }
    }
    Ok(found)
}

fn entitlement_keys(events: &[&PaymentEvent]) -> Vec<(String, String, String)> {
    let mut keys = Vec::new();
    for event in events {
        if entitlement_change(event).is_some() {
            for grant in &event.entitlements {
                keys.push((
                    event.customer_ref.clone(),
                    grant.entitlement_id.clone(),
                    event.product_ref.clone(),
                ));
            }
        }
    }
    keys
}

fn unique(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

impl<'e> Batch<'e> {
    fn empty(now: UnixMicros, orders: HashMap<String, Held>, waiting: Vec<Waiting>) -> Self {
        Batch {
            now,
            orders,
            payments: HashMap::new(),
            waiting,
            claims: Vec::new(),
            settled: Vec::new(),
            settled_keys: HashMap::new(),
            first: HashMap::new(),
            entitlements: HashMap::new(),
            changed_entitlements: HashSet::new(),
            changes: Vec::new(),
        }
    }

    fn current_order(&self, order_id: Option<&str>) -> Option<Order> {
        order_id.and_then(|id| self.orders.get(id).map(|h| h.order.clone()))
    }

    /// Records one event: a duplicate answers with the first delivery;
    /// anything else is decided, claimed and applied.
    fn record(&mut self, event: &'e PaymentEvent) -> Result<Recorded, OrderError> {
        let key = key(event);
        if let Some(first) = self.first.get(&key).cloned() {
            let (outcome, order_id) = match first {
                First::Stored { outcome, order_id } => {
                    // Settled earlier in this batch, it answers as it is now.
                    match self.settled_keys.get(&key) {
                        Some((outcome, order_id)) => (*outcome, Some(order_id.clone())),
                        None => (outcome, order_id),
                    }
                }
                First::Claim(index) => {
                    let claim = &self.claims[index];
                    (claim.outcome, claim.order_id.clone())
                }
            };
            return Ok(Recorded {
                outcome,
                duplicate: true,
                order: self.current_order(order_id.as_deref()),
            });
        }

        let index = self.claims.len();
        self.first.insert(key.clone(), First::Claim(index));
        let target = target(event);
        let order_id = match &target {
            Target::Order if !event.order_ref.is_empty() => {
                Some(event.order_ref.clone()).filter(|id| self.orders.contains_key(id))
            }
            Target::Order => self.payments.get(&event.payment_ref).cloned(),
            Target::Purchase(order_id) => {
                let order_id = order_id.as_str().to_owned();
                if !self.orders.contains_key(&order_id) {
                    let new = purchase_order(event).ok_or_else(|| {
                        StorageError::Statement("a purchase without currency".into())
                    })?;
                    let order = Order::new(&new, OrderId::from_trusted(order_id.clone()), self.now);
                    self.changes.push(order.clone());
                    self.orders.insert(order_id.clone(), Held::new(order));
                }
                Some(order_id)
            }
            Target::Entitlements(_) | Target::Nothing => None,
        };
        let order = order_id.as_deref().and_then(|id| self.orders.get(id));
        let decision = apply::decide(event, order.map(|h| &h.order));

        if let Some(change) = entitlement_change(event) {
            self.entitlements_apply(event, change);
        }

        let claim_order_id = match decision.outcome {
            Outcome::Applied | Outcome::Mismatch => order_id.clone(),
            Outcome::Unmatched | Outcome::Ignored => None,
        };
        self.claims.push(Claim {
            event,
            outcome: decision.outcome,
            order_id: claim_order_id.clone(),
            note: decision.note.clone(),
        });

        let Some(order_id) = claim_order_id else {
            if decision.outcome == Outcome::Unmatched {
                self.waiting.push(Waiting {
                    origin: Origin::Claim(index),
                    key,
                    row: waiting_row(event),
                });
            }
            return Ok(Recorded {
                outcome: decision.outcome,
                duplicate: false,
                order: None,
            });
        };

        if !event.payment_ref.is_empty() {
            self.payments
                .entry(event.payment_ref.clone())
                .or_insert_with(|| order_id.clone());
        }
        if let Some(h) = self.orders.get_mut(&order_id) {
            h.summary_changed |= apply::merge(&mut h.summary, &event.fact(), &decision);
        }
        let seeds = Some(event.payment_ref.clone())
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect();
        self.adopt(&order_id, seeds);
        Ok(Recorded {
            outcome: decision.outcome,
            duplicate: false,
            order: self.current_order(Some(&order_id)),
        })
    }

    /// Attaches the waiting events that belong to `order_id` (those naming
    /// it, and those naming no order whose payment is one of `seeds` or of
    /// an event attached here), then brings the order up to date: one new
    /// version for the event and everything it brought along.
    fn adopt(&mut self, order_id: &str, mut seeds: Vec<String>) {
        let Some(mut h) = self.orders.remove(order_id) else {
            return;
        };
        loop {
            let position = self.waiting.iter().position(|w| {
                w.row.order_ref == order_id
                    || (w.row.order_ref.is_empty() && seeds.contains(&w.row.payment_ref))
            });
            let Some(position) = position else { break };
            let w = self.waiting.swap_remove(position);
            let fit = apply::fit(w.row.kind, w.row.amount, w.row.currency(), &h.order);
            let decision = match fit {
                Ok(()) => Decision {
                    outcome: Outcome::Applied,
                    note: None,
                },
                Err(mismatch) => Decision {
                    outcome: Outcome::Mismatch,
                    note: Some(mismatch.to_string()),
                },
            };
            h.summary_changed |= apply::merge(&mut h.summary, &w.row.fact(), &decision);
            if !w.row.payment_ref.is_empty() {
                if !seeds.contains(&w.row.payment_ref) {
                    seeds.push(w.row.payment_ref.clone());
                }
                self.payments
                    .entry(w.row.payment_ref.clone())
                    .or_insert_with(|| order_id.to_owned());
            }
            match w.origin {
                Origin::Stored(id) => {
                    self.settled_keys
                        .insert(w.key, (decision.outcome, order_id.to_owned()));
                    self.settled.push(Settled {
                        id,
                        outcome: decision.outcome,
                        order_id: order_id.to_owned(),
                        note: decision.note,
                    });
                }
                Origin::Claim(index) => {
                    let claim = &mut self.claims[index];
                    claim.outcome = decision.outcome;
                    claim.order_id = Some(order_id.to_owned());
                    claim.note = decision.note;
                }
            }
        }
        if let Some(next) = apply::refresh(&h.order, &h.summary, self.now) {
            self.changes.push(next.clone());
            h.order = next;
        }
        self.orders.insert(order_id.to_owned(), h);
    }

    fn entitlements_apply(&mut self, event: &PaymentEvent, change: EntitlementChange) {
        for grant in &event.entitlements {
            let k = (event.customer_ref.clone(), grant.entitlement_id.clone());
            let entitlement = self.entitlements.entry(k.clone()).or_insert_with(|| {
                Entitlement::empty(
                    &event.customer_ref,
                    &grant.entitlement_id,
                    &event.product_ref,
                )
            });
            match change {
                EntitlementChange::Grant => entitlement.grant(&event.product_ref, grant, self.now),
                EntitlementChange::Expire => entitlement.expire(grant, event.occur_time, self.now),
            }
            self.changed_entitlements.insert(k);
        }
    }
}

fn waiting_row(event: &PaymentEvent) -> WaitingRow {
    WaitingRow {
        id: 0,
        source: event.source.clone(),
        event_id: event.event_id.clone(),
        kind: event.kind,
        order_ref: event.order_ref.clone(),
        payment_ref: event.payment_ref.clone(),
        refund_ref: event.refund_ref.clone(),
        amount: event.amount,
        amount_is_cumulative: event.amount_is_cumulative,
        currency: event.currency.map(|c| c.as_str().to_owned()),
        occur_time: event.occur_time.0,
    }
}
