//! Table `provider_customers`: the provider's customer of each Fulfil
//! customer (one Stripe Customer per app user).

use sea_orm::entity::prelude::*;

use crate::checkout::PaymentProvider;

/// One row of `provider_customers`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_customers")]
pub struct Model {
    /// The Fulfil customer.
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// The provider.
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: PaymentProvider,
    /// The provider's id (`cus_...`).
    pub provider_customer_id: String,
    /// Unix microseconds.
    pub create_time: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
