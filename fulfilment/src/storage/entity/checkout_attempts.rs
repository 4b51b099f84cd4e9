//! Table `checkout_attempts`: payments started at providers for orders.

use sea_orm::entity::prelude::*;

use crate::checkout::{AttemptState, Flow, PaymentProvider};

/// One row of `checkout_attempts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "checkout_attempts")]
pub struct Model {
    /// Insertion sequence.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The order being paid.
    pub order_id: String,
    /// 1, 2, ... per order; part of the provider idempotency keys.
    pub attempt: i64,
    /// The order's customer.
    pub customer_id: String,
    /// Where the payment is.
    pub provider: PaymentProvider,
    /// How the customer pays.
    pub flow: Flow,
    /// OPEN until the payment ends.
    pub state: AttemptState,
    /// The provider's payment (PaymentIntent, Checkout Session), once created.
    pub provider_payment_id: Option<String>,
    /// Unix microseconds.
    pub create_time: i64,
    /// Unix microseconds.
    pub update_time: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
