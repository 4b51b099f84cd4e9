//! Checkout attempts and provider customers: the claims, in the writer's
//! transaction, that make checkout idempotent. Provider calls happen
//! outside any transaction, between these mutations.

use futures::future::BoxFuture;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::checkout_attempts::{self, Column};
use super::entity::{orders, provider_customers};
use super::row::to_order;
use super::writer::{Ctx, Mutation};
use super::{Database, StorageError};
use crate::checkout::{AttemptState, Flow, PaymentProvider};
use crate::order::{Order, OrderError};

/// A checkout attempt as stored.
pub type Attempt = checkout_attempts::Model;

impl Database {
    /// The open attempt of an order, if any.
    pub async fn open_attempt(&self, order_id: &str) -> Result<Option<Attempt>, StorageError> {
        Ok(checkout_attempts::Entity::find()
            .filter(Column::OrderId.eq(order_id))
            .filter(Column::State.eq(AttemptState::Open))
            .one(self.conn())
            .await?)
    }

    /// Every attempt of an order, first first.
    pub async fn attempts(&self, order_id: &str) -> Result<Vec<Attempt>, StorageError> {
        Ok(checkout_attempts::Entity::find()
            .filter(Column::OrderId.eq(order_id))
            .order_by_asc(Column::Attempt)
            .all(self.conn())
            .await?)
    }

    /// The provider's customer of a Fulfil customer, if one was recorded.
    pub async fn provider_customer(
        &self,
        customer_id: &str,
        provider: PaymentProvider,
    ) -> Result<Option<String>, StorageError> {
        Ok(provider_customers::Entity::find()
            .filter(provider_customers::Column::CustomerId.eq(customer_id))
            .filter(provider_customers::Column::Provider.eq(provider))
            .one(self.conn())
            .await?
            .map(|row| row.provider_customer_id))
    }
}

/// What a claim found or made.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The order, as it is now.
    pub order: Order,
    /// Its open attempt.
    pub attempt: Attempt,
    /// Whether this claim created the attempt.
    pub created: bool,
}

/// Claims the open checkout attempt of an order: returns the open one if
/// there is one, else opens the next. Refused unless the order may take a
/// payment.
#[derive(Debug, Clone)]
pub struct ClaimAttempt {
    /// The order.
    pub order_id: String,
    /// The flow of a new attempt.
    pub flow: Flow,
}

impl Mutation for ClaimAttempt {
    type Output = Claimed;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Claimed, OrderError>> {
        Box::pin(claim(self, ctx))
    }
}

async fn claim(claim: &ClaimAttempt, ctx: &mut Ctx<'_>) -> Result<Claimed, OrderError> {
    // The order's row lock (PostgreSQL) orders this claim with a concurrent
    // CancelOrder on another replica.
    let mut query = orders::Entity::find().filter(orders::Column::OrderId.eq(&claim.order_id));
    if ctx.backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let row = query
        .one(ctx.txn)
        .await
        .map_err(StorageError::from)?
        .ok_or_else(|| OrderError::NotFound(claim.order_id.clone()))?;
    let order = to_order(&row)?;
    if let Some(open) = open_in(ctx, &claim.order_id).await? {
        // Whatever the state now: the caller learns about the open payment
        // (and ends it at the provider if the order moved on).
        return Ok(Claimed {
            order,
            attempt: open,
            created: false,
        });
    }
    order
        .state
        .checkout()
        .map_err(|refusal| OrderError::Refused {
            order_id: claim.order_id.clone(),
            state: order.state,
            refusal,
        })?;
    let last: Option<i64> = checkout_attempts::Entity::find()
        .select_only()
        .column_as(Column::Attempt.max(), "last")
        .filter(Column::OrderId.eq(&claim.order_id))
        .into_tuple::<Option<i64>>()
        .one(ctx.txn)
        .await
        .map_err(StorageError::from)?
        .flatten();
    let attempt = Attempt {
        id: 0,
        order_id: claim.order_id.clone(),
        attempt: last.unwrap_or(0) + 1,
        customer_id: order.customer_id.clone(),
        provider: claim.flow.provider(),
        flow: claim.flow,
        state: AttemptState::Open,
        provider_payment_id: None,
        create_time: ctx.now.0,
        update_time: ctx.now.0,
    };
    // The unique keys decide: a replica that opened an attempt for this
    // order meanwhile makes this insert do nothing.
    let mut insert = Query::insert();
    insert
        .into_table(checkout_attempts::Entity)
        .columns([
            Column::OrderId,
            Column::Attempt,
            Column::CustomerId,
            Column::Provider,
            Column::Flow,
            Column::State,
            Column::CreateTime,
            Column::UpdateTime,
        ])
        .values([
            attempt.order_id.clone().into(),
            attempt.attempt.into(),
            attempt.customer_id.clone().into(),
            attempt.provider.as_str().into(),
            attempt.flow.as_str().into(),
            attempt.state.as_str().into(),
            attempt.create_time.into(),
            attempt.update_time.into(),
        ])
        .map_err(|e| StorageError::Statement(e.to_string()))?
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col(Column::Id);
    let backend = ctx.backend();
    let inserted = ctx
        .txn
        .query_one_raw(backend.build(&insert))
        .await
        .map_err(StorageError::from)?;
    let Some(inserted) = inserted else {
        // Another replica won; the writer retries this claim, which then
        // finds its attempt.
        return Err(StorageError::Conflict(claim.order_id.clone()).into());
    };
    let id: i64 = inserted.try_get("", "id").map_err(StorageError::from)?;
    Ok(Claimed {
        order,
        attempt: Attempt { id, ..attempt },
        created: true,
    })
}

async fn open_in(ctx: &Ctx<'_>, order_id: &str) -> Result<Option<Attempt>, StorageError> {
    Ok(checkout_attempts::Entity::find()
        .filter(Column::OrderId.eq(order_id))
        .filter(Column::State.eq(AttemptState::Open))
        .one(ctx.txn)
        .await?)
}

async fn attempt_in(ctx: &Ctx<'_>, id: i64) -> Result<Attempt, StorageError> {
    checkout_attempts::Entity::find_by_id(id)
        .one(ctx.txn)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout attempt {id} vanished")))
}

/// Records the provider's payment id on an attempt (once: a second id for
/// the same attempt is refused by the statement, not overwritten). Returns
/// the attempt as it is now; the caller checks it is still open.
#[derive(Debug, Clone)]
pub struct RecordProviderPayment {
    /// `checkout_attempts.id`.
    pub attempt_id: i64,
    /// `pi_...` or `cs_...`.
    pub provider_payment_id: String,
}

impl Mutation for RecordProviderPayment {
    type Output = Attempt;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Attempt, OrderError>> {
        Box::pin(async move {
            checkout_attempts::Entity::update_many()
                .col_expr(
                    Column::ProviderPaymentId,
                    Expr::value(self.provider_payment_id.clone()),
                )
                .col_expr(Column::UpdateTime, Expr::value(ctx.now.0))
                .filter(Column::Id.eq(self.attempt_id))
                .filter(Column::ProviderPaymentId.is_null())
                .exec(ctx.txn)
                .await
                .map_err(StorageError::from)?;
            let attempt = attempt_in(ctx, self.attempt_id).await?;
            if attempt.provider_payment_id.as_deref() != Some(&self.provider_payment_id) {
                // The same idempotency key gave another payment: a bug at
                // the provider's or ours; never silently switch payments.
                return Err(StorageError::Corrupt(format!(
                    "checkout attempt {} already has another provider payment",
                    self.attempt_id
                ))
                .into());
            }
            Ok(attempt)
        })
    }
}

/// Ends an open attempt (the provider reported its payment cancelled,
/// expired or paid). An attempt already ended stays as it is.
#[derive(Debug, Clone)]
pub struct EndAttempt {
    /// `checkout_attempts.id`.
    pub attempt_id: i64,
    /// SUCCEEDED, FAILED or CANCELLED.
    pub state: AttemptState,
}

impl Mutation for EndAttempt {
    type Output = Attempt;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<Attempt, OrderError>> {
        Box::pin(async move {
            let attempt = attempt_in(ctx, self.attempt_id).await?;
            if !attempt.state.may_become(self.state) {
                return Ok(attempt);
            }
            checkout_attempts::Entity::update_many()
                .col_expr(Column::State, Expr::value(self.state.as_str()))
                .col_expr(Column::UpdateTime, Expr::value(ctx.now.0))
                .filter(Column::Id.eq(self.attempt_id))
                .filter(Column::State.eq(AttemptState::Open))
                .exec(ctx.txn)
                .await
                .map_err(StorageError::from)?;
            Ok(attempt_in(ctx, self.attempt_id).await?)
        })
    }
}

/// Ends the open attempt of an order as cancelled, inside a CancelOrder.
pub(crate) async fn cancel_open(ctx: &Ctx<'_>, order_id: &str) -> Result<(), StorageError> {
    checkout_attempts::Entity::update_many()
        .col_expr(Column::State, Expr::value(AttemptState::Cancelled.as_str()))
        .col_expr(Column::UpdateTime, Expr::value(ctx.now.0))
        .filter(Column::OrderId.eq(order_id))
        .filter(Column::State.eq(AttemptState::Open))
        .exec(ctx.txn)
        .await?;
    Ok(())
}

/// Records the provider's customer of a Fulfil customer unless one is
/// recorded already, and returns the recorded one: the first writer wins
/// and every racer ends with its id.
#[derive(Debug, Clone)]
pub struct SaveProviderCustomer {
    /// The Fulfil customer.
    pub customer_id: String,
    /// The provider.
    pub provider: PaymentProvider,
    /// The id the provider gave this caller.
    pub provider_customer_id: String,
}

impl Mutation for SaveProviderCustomer {
    type Output = String;

    fn apply<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> BoxFuture<'a, Result<String, OrderError>> {
        Box::pin(async move {
            use provider_customers::Column as C;
            let mut insert = Query::insert();
            insert
                .into_table(provider_customers::Entity)
                .columns([
                    C::CustomerId,
                    C::Provider,
                    C::ProviderCustomerId,
                    C::CreateTime,
                ])
                .values([
                    self.customer_id.clone().into(),
                    self.provider.as_str().into(),
                    self.provider_customer_id.clone().into(),
                    ctx.now.0.into(),
                ])
                .map_err(|e| StorageError::Statement(e.to_string()))?
                .on_conflict(
                    OnConflict::columns([C::CustomerId, C::Provider])
                        .do_nothing()
                        .to_owned(),
                );
            let backend = ctx.backend();
            ctx.txn
                .execute_raw(backend.build(&insert))
                .await
                .map_err(StorageError::from)?;
            let row = provider_customers::Entity::find()
                .filter(C::CustomerId.eq(&self.customer_id))
                .filter(C::Provider.eq(self.provider))
                .one(ctx.txn)
                .await
                .map_err(StorageError::from)?
                .ok_or_else(|| StorageError::Corrupt("provider customer vanished".into()))?;
            Ok(row.provider_customer_id)
        })
    }
}
