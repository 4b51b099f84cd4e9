//! Orders as a write batch holds them: loaded once (locked on PostgreSQL),
//! changed in memory by the domain rules, written back once.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult};

use super::bulk::{Params, Rows, Ty, chunks, opt_text};
use super::entity::orders;
use super::row::{self, to_order};
use super::writer::Ctx;
use super::{StorageError, ledger, summary_codec};
use crate::order::Order;
use crate::payment_event::summary::{Summary, summarize};

/// One order inside a batch.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// Row id; `None` for an order created in this batch, inserted at the end.
    pub id: Option<i64>,
    /// The version on disk when loaded (the optimistic check of the write).
    pub stored_version: i64,
    /// The order as it is now in the batch.
    pub order: Order,
    /// Its merged payment summary.
    pub summary: Summary,
    /// The summary gained a fact in this batch (which need not change the
    /// order: a dispute closed before it was opened, say).
    pub summary_changed: bool,
}

impl Held {
    /// A new order, not yet in the database.
    pub fn new(order: Order) -> Self {
        Held {
            id: None,
            stored_version: 0,
            order,
            summary: Summary::default(),
            summary_changed: false,
        }
    }

    fn dirty(&self) -> bool {
        self.id.is_none() || self.order.version != self.stored_version || self.summary_changed
    }
}

/// Loads the orders with these ids (the missing are left out), locking
/// their rows on PostgreSQL in id order, so two replicas never deadlock on
/// them. Summaries that are missing or stale (written by an earlier
/// release, or by one that did not keep them) are rebuilt from the ledger.
pub(crate) async fn load(
    ctx: &Ctx<'_>,
    order_ids: &[String],
) -> Result<HashMap<String, Held>, StorageError> {
    let mut held = HashMap::with_capacity(order_ids.len());
    if order_ids.is_empty() {
        return Ok(held);
    }
    let backend = ctx.backend();
    let mut params = Params::new(backend);
    let filter = params.any_text("order_id", order_ids);
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let rows = ctx
        .txn
        .query_all_raw(params.statement(format!(
            "SELECT * FROM orders WHERE {filter} ORDER BY id{lock}"
        )))
        .await?;
    let mut stale = Vec::new();
    for row in rows {
        let row = orders::Model::from_query_result(&row, "")?;
        let current = row.summary_version == Some(row.version);
        let summary = match (&row.payment_summary, current) {
            (Some(bytes), true) => summary_codec::decode(bytes)?,
            _ => {
                stale.push(row.order_id.clone());
                Summary::default()
            }
        };
        held.insert(
            row.order_id.clone(),
            Held {
                id: Some(row.id),
                stored_version: row.version,
                order: to_order(&row)?,
                summary,
                summary_changed: false,
            },
        );
    }
    if !stale.is_empty() {
        for (order_id, facts) in ledger::facts_of_orders(ctx, &stale).await? {
            if let Some(h) = held.get_mut(&order_id) {
                let mut summary = summarize(&facts.applied);
                for (fact, note) in &facts.mismatched {
                    summary.merge_mismatch(fact, note);
                }
                h.summary = summary;
                // Rebuilt: write it back even if no event changes the order.
                h.summary_changed = true;
            }
        }
    }
    Ok(held)
}

/// Writes back every order the batch changed: multi-row INSERTs for the new
/// ones and multi-row UPDATEs for the others (one of each, unless the rows
/// outgrow `bulk::PG_STATEMENT_BYTES`). A row that changed under us (only
/// possible without row locks) fails the batch as a conflict, and the
/// writer retries it.
pub(crate) async fn save<'a>(
    ctx: &Ctx<'_>,
    held: impl IntoIterator<Item = &'a Held>,
) -> Result<(), StorageError> {
    let backend = ctx.backend();
    let (new, changed): (Vec<_>, Vec<_>) = held
        .into_iter()
        .filter(|h| h.dirty())
        .map(|h| (h, summary_codec::encode(&h.summary)))
        .partition(|(h, _)| h.id.is_none());
    let size = |(h, summary): &(&Held, Vec<u8>)| {
        summary.len() + 256 + h.order.line_items.len() * 64 + h.order.metadata.len() * 64
    };
    for run in chunks(backend, &new, size) {
        insert(ctx, run).await?;
    }
    for run in chunks(backend, &changed, size) {
        update(ctx, run).await?;
    }
    Ok(())
}

async fn insert(ctx: &Ctx<'_>, run: &[(&Held, Vec<u8>)]) -> Result<(), StorageError> {
    let mut t = Rows::new(&[
        ("order_id", Ty::Text),
        ("customer_id", Ty::Text),
        ("state", Ty::Text),
        ("currency", Ty::Text),
        ("amount_total", Ty::BigInt),
        ("amount_paid", Ty::BigInt),
        ("amount_refunded", Ty::BigInt),
        ("line_items", Ty::Text),
        ("metadata", Ty::Text),
        ("version", Ty::BigInt),
        ("create_time", Ty::BigInt),
        ("update_time", Ty::BigInt),
        ("disputed", Ty::Bool),
        ("attention_reason", Ty::Text),
        ("payment_summary", Ty::Bytes),
    ]);
    for (h, summary) in run {
        let o = &h.order;
        t.push(vec![
            o.order_id.as_str().to_owned().into(),
            o.customer_id.clone().into(),
            o.state.as_str().to_owned().into(),
            o.currency.as_str().to_owned().into(),
            o.amount_total.into(),
            o.amount_paid.into(),
            o.amount_refunded.into(),
            row::line_items_json(&o.line_items)?.into(),
            row::metadata_json(&o.metadata)?.into(),
            o.version.into(),
            o.create_time.0.into(),
            o.update_time.0.into(),
            o.disputed.into(),
            opt_text(o.attention_reason.as_deref()),
            summary.clone().into(),
        ]);
    }
    let statement = t.statement(ctx.backend(), |_| {
        "INSERT INTO orders (order_id, customer_id, state, currency, amount_total,
             amount_paid, amount_refunded, line_items, metadata, version, create_time,
             update_time, disputed, attention_reason, payment_summary, summary_version)
         SELECT order_id, customer_id, state, currency, amount_total, amount_paid,
             amount_refunded, line_items, metadata, version, create_time, update_time,
             disputed, NULLIF(attention_reason, ''), payment_summary, version
         FROM t WHERE true
         ON CONFLICT DO NOTHING"
            .to_owned()
    });
    let inserted = ctx.txn.execute_raw(statement).await?.rows_affected();
    if inserted != run.len() as u64 {
        // A replica created one of them since we looked: retry the batch.
        return Err(StorageError::Conflict("order created concurrently".into()));
    }
    Ok(())
}

async fn update(ctx: &Ctx<'_>, run: &[(&Held, Vec<u8>)]) -> Result<(), StorageError> {
    let mut t = Rows::new(&[
        ("id", Ty::BigInt),
        ("stored_version", Ty::BigInt),
        ("state", Ty::Text),
        ("amount_paid", Ty::BigInt),
        ("amount_refunded", Ty::BigInt),
        ("disputed", Ty::Bool),
        ("attention_reason", Ty::Text),
        ("version", Ty::BigInt),
        ("update_time", Ty::BigInt),
        ("payment_summary", Ty::Bytes),
    ]);
    let mut ids = Vec::with_capacity(run.len());
    for (h, summary) in run {
        let o = &h.order;
        let id = h.id.unwrap_or_default();
        ids.push(id);
        t.push(vec![
            id.into(),
            h.stored_version.into(),
            o.state.as_str().to_owned().into(),
            o.amount_paid.into(),
            o.amount_refunded.into(),
            o.disputed.into(),
            opt_text(o.attention_reason.as_deref()),
            o.version.into(),
            o.update_time.0.into(),
            summary.clone().into(),
        ]);
    }
    // `= ANY` on the key steers the plan to the primary key whatever the
    // statistics say.
    let statement = t.statement(ctx.backend(), |params| {
        let by_id = params.any_bigint("orders.id", &ids);
        format!(
            "UPDATE orders SET state = t.state, amount_paid = t.amount_paid,
                 amount_refunded = t.amount_refunded, disputed = t.disputed,
                 attention_reason = NULLIF(t.attention_reason, ''), version = t.version,
                 update_time = t.update_time, payment_summary = t.payment_summary,
                 summary_version = t.version
             FROM t WHERE orders.id = t.id AND {by_id}
                 AND orders.version = t.stored_version"
        )
    });
    let updated = ctx.txn.execute_raw(statement).await?.rows_affected();
    if updated != run.len() as u64 {
        return Err(StorageError::Conflict("order changed concurrently".into()));
    }
    Ok(())
}
