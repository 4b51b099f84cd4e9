//! Reading orders, and the mutations that change them.

use futures::future::BoxFuture;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entity::orders::{self, Column};
use super::row::to_order;
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError, payment_events};
use crate::order::{NewOrder, Order, OrderError, OrderId, OrderState, Transition};

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this customer's orders.
    pub customer_id: Option<String>,
    /// Only orders in one of these states (all when empty).
    pub states: Vec<OrderState>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct OrderPage {
    /// The orders.
    pub orders: Vec<Order>,
    /// Keyset position to continue after, when there are more.
    pub next_after: Option<i64>,
}

impl Database {
    /// The order with this id, if any.
    pub async fn get_order(&self, order_id: &str) -> Result<Option<Order>, StorageError> {
        let row = orders::Entity::find()
            .filter(Column::OrderId.eq(order_id))
            .one(self.conn())
            .await?;
        row.as_ref().map(to_order).transpose()
    }

    /// Up to `limit` orders matching `filter`, newest first, strictly older
    /// than keyset position `after`. Keyset (not OFFSET) paging stays correct
    /// while orders are being inserted.
    pub async fn list_orders(
        &self,
        filter: &ListFilter,
        after: Option<i64>,
        limit: u64,
    ) -> Result<OrderPage, StorageError> {
        list(self.conn(), filter, after, limit).await
    }
}

async fn list(
    conn: &DatabaseConnection,
    filter: &ListFilter,
    after: Option<i64>,
    limit: u64,
) -> Result<OrderPage, StorageError> {
    let mut query = orders::Entity::find();
    if let Some(customer_id) = &filter.customer_id {
        query = query.filter(Column::CustomerId.eq(customer_id.as_str()));
    }
    if !filter.states.is_empty() {
        query = query.filter(Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.lt(after));
    }
    // One extra row tells whether another page exists.
    let mut rows = query
        .order_by_desc(Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_after = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    let orders = rows.iter().map(to_order).collect::<Result<_, _>>()?;
    Ok(OrderPage { orders, next_after })
}

/// Creates an order; with a request id, a retry returns the first order.
#[derive(Debug, Clone)]
pub struct CreateOrder(pub NewOrder);

impl Mutation for CreateOrder {
    type Output = Order;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(create(&self.0, ctx))
    }
}

async fn create(new: &NewOrder, ctx: &mut Ctx<'_>) -> Result<Order, OrderError> {
    let order_id = new.order_id.clone().unwrap_or_else(OrderId::generate);
    if let Some(row) = create_row(new, order_id.clone(), ctx).await? {
        // Payment events may have arrived before the order (a webhook racing
        // the app's CreateOrder): they apply now, in this transaction.
        return Ok(payment_events::adopt_waiting(ctx, row).await?);
    }

    if let Some(request_id) = &new.request_id {
        let first = orders::Entity::find()
            .filter(Column::RequestId.eq(request_id.as_str()))
            .one(ctx.txn)
            .await
            .map_err(StorageError::from)?;
        if let Some(first) = first {
            return if first.request_hash.as_deref() == Some(new.request_hash.as_str()) {
                Ok(to_order(&first)?)
            } else {
                Err(OrderError::RequestIdReused(request_id.clone()))
            };
        }
    }
    Err(OrderError::AlreadyExists(order_id.as_str().to_owned()))
}

/// Inserts a new order row and queues it for the feed; `None` when its id or
/// request id is taken.
pub(crate) async fn create_row(
    new: &NewOrder,
    order_id: OrderId,
    ctx: &mut Ctx<'_>,
) -> Result<Option<orders::Model>, StorageError> {
    let encode = |what: &str, e: serde_json::Error| StorageError::Statement(format!("{what}: {e}"));
    let mut row = orders::Model {
        id: 0,
        order_id: order_id.as_str().to_owned(),
        customer_id: new.customer_id.clone(),
        state: OrderState::PendingPayment.as_str().to_owned(),
        currency: new.currency.as_str().to_owned(),
        amount_total: new.amount_total,
        amount_paid: 0,
        amount_refunded: 0,
        line_items: serde_json::to_string(&new.line_items).map_err(|e| encode("line_items", e))?,
        metadata: serde_json::to_string(&new.metadata).map_err(|e| encode("metadata", e))?,
        version: 1,
        request_id: new.request_id.clone(),
        request_hash: new.request_id.as_ref().map(|_| new.request_hash.clone()),
        create_time: ctx.now.0,
        update_time: ctx.now.0,
        fulfil_time: None,
        cancel_time: None,
        cancel_reason: None,
        disputed: false,
        attention_reason: None,
    };

    // ON CONFLICT DO NOTHING with no target covers both unique keys
    // (order_id, request_id): the database decides who was first, also
    // between replicas, and nobody gets a constraint error.
    let mut insert = Query::insert();
    insert
        .into_table(orders::Entity)
        .columns([
            Column::OrderId,
            Column::CustomerId,
            Column::State,
            Column::Currency,
            Column::AmountTotal,
            Column::AmountPaid,
            Column::AmountRefunded,
            Column::LineItems,
            Column::Metadata,
            Column::Version,
            Column::RequestId,
            Column::RequestHash,
            Column::CreateTime,
            Column::UpdateTime,
            Column::Disputed,
        ])
        .values([
            row.order_id.clone().into(),
            row.customer_id.clone().into(),
            row.state.clone().into(),
            row.currency.clone().into(),
            row.amount_total.into(),
            row.amount_paid.into(),
            row.amount_refunded.into(),
            row.line_items.clone().into(),
            row.metadata.clone().into(),
            row.version.into(),
            row.request_id.clone().into(),
            row.request_hash.clone().into(),
            row.create_time.into(),
            row.update_time.into(),
            row.disputed.into(),
        ])
        .map_err(|e| StorageError::Statement(e.to_string()))?
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col(Column::Id);
    let backend = ctx.backend();
    let Some(inserted) = ctx.txn.query_one_raw(backend.build(&insert)).await? else {
        return Ok(None);
    };
    row.id = inserted.try_get("", "id")?;
    ctx.record_change(&row);
    Ok(Some(row))
}

/// A command of the app's backend on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Cancel it, with an optional reason.
    Cancel {
        /// Kept on the order.
        reason: Option<String>,
    },
    /// Mark it fulfilled.
    Fulfil,
}

/// Applies a [`Command`] to one order.
#[derive(Debug, Clone)]
pub struct ChangeState {
    /// The order.
    pub order_id: String,
    /// Fail with `VersionMismatch` unless the order is at this version.
    pub expected_version: Option<i64>,
    /// What to do.
    pub command: Command,
}

impl Mutation for ChangeState {
    type Output = Order;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(change_state(self, ctx))
    }
}

/// Loads an order inside the writer's transaction, locking its row on
/// PostgreSQL so a replica's concurrent change waits for ours.
pub(crate) async fn load_for_update(
    ctx: &Ctx<'_>,
    order_id: &str,
) -> Result<Option<orders::Model>, StorageError> {
    let mut query = orders::Entity::find().filter(Column::OrderId.eq(order_id));
    if ctx.backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    Ok(query.one(ctx.txn).await?)
}

async fn change_state(change: &ChangeState, ctx: &mut Ctx<'_>) -> Result<Order, OrderError> {
    let row = load_for_update(ctx, &change.order_id)
        .await?
        .ok_or_else(|| OrderError::NotFound(change.order_id.clone()))?;
    let state = OrderState::parse(&row.state)
        .ok_or_else(|| StorageError::Corrupt(format!("order {}: state", row.order_id)))?;
    let transition = match &change.command {
        Command::Cancel { .. } => state.cancel(),
        Command::Fulfil => state.fulfil(),
    };
    // A command that already took effect succeeds whatever the version: it
    // is most likely the caller's own retry.
    if transition == Ok(Transition::AlreadyDone) {
        return Ok(to_order(&row)?);
    }
    if let Some(expected) = change.expected_version.filter(|v| *v != row.version) {
        return Err(OrderError::VersionMismatch {
            order_id: row.order_id,
            expected,
            actual: row.version,
        });
    }
    let next = match transition {
        Ok(Transition::To(next)) => next,
        Ok(Transition::AlreadyDone) => return Ok(to_order(&row)?),
        Err(refusal) => {
            return Err(OrderError::Refused {
                order_id: row.order_id,
                state,
                refusal,
            });
        }
    };

    let mut updated = orders::Model {
        state: next.as_str().to_owned(),
        version: row.version + 1,
        update_time: ctx.now.0,
        ..row.clone()
    };
    match &change.command {
        Command::Cancel { reason } => {
            updated.cancel_time = Some(ctx.now.0);
            updated.cancel_reason = reason.clone();
        }
        Command::Fulfil => updated.fulfil_time = Some(ctx.now.0),
    }
    let result = orders::Entity::update_many()
        .col_expr(Column::State, Expr::value(updated.state.clone()))
        .col_expr(Column::Version, Expr::value(updated.version))
        .col_expr(Column::UpdateTime, Expr::value(updated.update_time))
        .col_expr(Column::CancelTime, Expr::value(updated.cancel_time))
        .col_expr(
            Column::CancelReason,
            Expr::value(updated.cancel_reason.clone()),
        )
        .col_expr(Column::FulfilTime, Expr::value(updated.fulfil_time))
        .filter(Column::Id.eq(row.id))
        .filter(Column::Version.eq(row.version))
        .exec(ctx.txn)
        .await
        .map_err(StorageError::from)?;
    if result.rows_affected != 1 {
        // Someone else changed the row between our read and write (only
        // possible without row locks); the writer retries the mutation.
        return Err(StorageError::Conflict(row.order_id).into());
    }
    ctx.record_change(&updated);
    Ok(to_order(&updated)?)
}
