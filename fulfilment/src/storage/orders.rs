//! Reading orders, and the mutations that change them.

use fulfil_proto::Identifier;
use futures::future::BoxFuture;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};

use super::entity::orders::{self, Column};
use super::page::{self, Page};
use super::row::{self, to_order};
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError, record, summary_codec};
use crate::order::{NewOrder, Order, OrderError, OrderId, OrderState, Transition};
use crate::payment_event::summary::Summary;

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this customer's orders.
    pub customer_id: Option<Identifier>,
    /// Only orders in one of these states (all when empty).
    pub states: Vec<OrderState>,
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
    /// than keyset position `after`.
    pub async fn list_orders(
        &self,
        filter: &ListFilter,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Page<Order>, StorageError> {
        let mut query = orders::Entity::find();
        if let Some(customer_id) = &filter.customer_id {
            query = query.filter(Column::CustomerId.eq(customer_id.as_str()));
        }
        if !filter.states.is_empty() {
            query = query.filter(Column::State.is_in(filter.states.iter().copied()));
        }
        page::newest_first(query, Column::Id, |row| row.id, after, limit, self.conn())
            .await?
            .try_map(|row| to_order(&row))
    }
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
    if let Some(order) = create_row(new, order_id.clone(), ctx).await? {
        // Payment events may have arrived before the order (a webhook racing
        // the app's CreateOrder): they apply now, in this transaction.
        return Ok(record::adopt_for_new_order(ctx, order).await?);
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
async fn create_row(
    new: &NewOrder,
    order_id: OrderId,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Order>, StorageError> {
    let order = Order::new(new, order_id, ctx.now);
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
            Column::PaymentSummary,
            Column::SummaryVersion,
        ])
        .values([
            order.order_id.as_str().into(),
            order.customer_id.clone().into(),
            order.state.as_str().into(),
            order.currency.as_str().into(),
            order.amount_total.into(),
            order.amount_paid.into(),
            order.amount_refunded.into(),
            row::line_items_json(&order.line_items)?.into(),
            row::metadata_json(&order.metadata)?.into(),
            order.version.into(),
            new.request_id.clone().into(),
            new.request_id
                .as_ref()
                .map(|_| new.request_hash.clone())
                .into(),
            order.create_time.0.into(),
            order.update_time.0.into(),
            order.disputed.into(),
            summary_codec::encode(&Summary::default()).into(),
            order.version.into(),
        ])
        .map_err(|e| StorageError::Statement(e.to_string()))?
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col(Column::Id);
    let backend = ctx.backend();
    if ctx
        .txn
        .query_one_raw(backend.build(&insert))
        .await?
        .is_none()
    {
        return Ok(None);
    }
    ctx.record_change(order.clone());
    Ok(Some(order))
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
async fn load_for_update(
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
    let state = row.state;
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
        state: next,
        version: row.version + 1,
        update_time: ctx.now.0,
        ..row.clone()
    };
    match &change.command {
        Command::Cancel { reason } => {
            updated.cancel_time = Some(ctx.now.0);
            updated.cancel_reason = reason.clone();
            // A cancelled order has no open payment: a checkout racing
            // this cancel finds its attempt ended and cancels its payment.
            super::checkout::cancel_open(ctx, &row.order_id).await?;
        }
        Command::Fulfil => updated.fulfil_time = Some(ctx.now.0),
    }
    let result = orders::Entity::update_many()
        .col_expr(Column::State, Expr::value(updated.state.as_str()))
        .col_expr(Column::Version, Expr::value(updated.version))
        .col_expr(Column::UpdateTime, Expr::value(updated.update_time))
        .col_expr(Column::CancelTime, Expr::value(updated.cancel_time))
        .col_expr(
            Column::CancelReason,
            Expr::value(updated.cancel_reason.clone()),
        )
        .col_expr(Column::FulfilTime, Expr::value(updated.fulfil_time))
        // A command changes no payment: a current summary stays current.
        .col_expr(
            Column::SummaryVersion,
            Expr::value(if row.summary_version == Some(row.version) {
                Some(updated.version)
            } else {
                row.summary_version
            }),
        )
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
    let order = to_order(&updated)?;
    ctx.record_change(order.clone());
    Ok(order)
}
