//! Table `entitlements`: access granted to app users by in-app purchases.

use sea_orm::entity::prelude::*;

/// One row of `entitlements`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "entitlements")]
pub struct Model {
    /// App user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// Entitlement.
    #[sea_orm(primary_key, auto_increment = false)]
    pub entitlement_id: String,
    /// Product of the grant that reaches furthest.
    pub product_id: String,
    /// Granted for life.
    pub lifetime: bool,
    /// Latest end of any grant, unix microseconds.
    pub granted_until: Option<i64>,
    /// Latest period end reported expired, unix microseconds.
    pub expired_through: Option<i64>,
    /// Unix microseconds.
    pub update_time: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
