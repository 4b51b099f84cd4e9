//! Granting, expiring and reading entitlements.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::entitlements::{self, Column};
use super::writer::Ctx;
use super::{Database, StorageError};
use crate::entitlement::Entitlement;
use crate::order::UnixMicros;
use crate::payment_event::Grant;

fn to_entitlement(row: entitlements::Model) -> Entitlement {
    Entitlement {
        customer_id: row.customer_id,
        entitlement_id: row.entitlement_id,
        product_id: row.product_id,
        lifetime: row.lifetime,
        granted_until: row.granted_until.map(UnixMicros),
        expired_through: row.expired_through.map(UnixMicros),
        update_time: UnixMicros(row.update_time),
    }
}

/// The row for (customer, entitlement), created empty if missing, locked on
/// PostgreSQL for the rest of the transaction.
async fn load_or_create(
    ctx: &Ctx<'_>,
    customer_id: &str,
    entitlement_id: &str,
    product_id: &str,
) -> Result<entitlements::Model, StorageError> {
    let empty = entitlements::ActiveModel {
        customer_id: Set(customer_id.to_owned()),
        entitlement_id: Set(entitlement_id.to_owned()),
        product_id: Set(product_id.to_owned()),
        lifetime: Set(false),
        granted_until: Set(None),
        expired_through: Set(None),
        update_time: Set(ctx.now.0),
    };
    entitlements::Entity::insert(empty)
        .on_conflict_do_nothing()
        .exec_without_returning(ctx.txn)
        .await?;
    let mut query = entitlements::Entity::find()
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::EntitlementId.eq(entitlement_id));
    if ctx.backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(ctx.txn)
        .await?
        .ok_or_else(|| StorageError::Conflict(format!("entitlement {entitlement_id} vanished")))
}

async fn save(ctx: &Ctx<'_>, row: entitlements::Model) -> Result<(), StorageError> {
    entitlements::Entity::update_many()
        .col_expr(Column::ProductId, row.product_id.into())
        .col_expr(Column::Lifetime, row.lifetime.into())
        .col_expr(Column::GrantedUntil, row.granted_until.into())
        .col_expr(Column::ExpiredThrough, row.expired_through.into())
        .col_expr(Column::UpdateTime, ctx.now.0.into())
        .filter(Column::CustomerId.eq(row.customer_id))
        .filter(Column::EntitlementId.eq(row.entitlement_id))
        .exec(ctx.txn)
        .await?;
    Ok(())
}

/// Extends each entitlement to the grant's end (or for life).
pub(crate) async fn grant(
    ctx: &Ctx<'_>,
    customer_id: &str,
    product_id: &str,
    grants: &[Grant],
) -> Result<(), StorageError> {
    for g in grants {
        let mut row = load_or_create(ctx, customer_id, &g.entitlement_id, product_id).await?;
        match g.expire_time {
            None => {
                row.lifetime = true;
                row.product_id = product_id.to_owned();
            }
            Some(until) => {
                if row.granted_until.is_none_or(|current| until >= current) {
                    row.granted_until = Some(until);
                    if !row.lifetime {
                        row.product_id = product_id.to_owned();
                    }
                }
            }
        }
        save(ctx, row).await?;
    }
    Ok(())
}

/// Records that each entitlement expired through the grant's end (or
/// `occur_time` when the event gives none).
pub(crate) async fn expire(
    ctx: &Ctx<'_>,
    customer_id: &str,
    product_id: &str,
    grants: &[Grant],
    occur_time: i64,
) -> Result<(), StorageError> {
    for g in grants {
        let mut row = load_or_create(ctx, customer_id, &g.entitlement_id, product_id).await?;
        let through = g.expire_time.unwrap_or(occur_time);
        row.expired_through = Some(row.expired_through.map_or(through, |e| e.max(through)));
        save(ctx, row).await?;
    }
    Ok(())
}

impl Database {
    /// Every entitlement of one customer, by id.
    pub async fn list_entitlements(
        &self,
        customer_id: &str,
    ) -> Result<Vec<Entitlement>, StorageError> {
        let rows = entitlements::Entity::find()
            .filter(Column::CustomerId.eq(customer_id))
            .order_by_asc(Column::EntitlementId)
            .limit(1000)
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().map(to_entitlement).collect())
    }
}
