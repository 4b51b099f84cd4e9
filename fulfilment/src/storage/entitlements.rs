//! Loading and saving entitlements for a write batch (the rules are in
//! `entitlement`), and reading them.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::bulk::{Rows, Ty};
use super::entity::entitlements::{self, Column};
use super::writer::Ctx;
use super::{Database, StorageError};
use crate::entitlement::Entitlement;
use crate::order::UnixMicros;

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

/// The entitlements (customer, entitlement) with these keys, created empty
/// where missing, locked on PostgreSQL for the rest of the transaction: two
/// statements for any number of keys.
pub(crate) async fn load(
    ctx: &Ctx<'_>,
    keys: &[(String, String, String)],
    now: UnixMicros,
) -> Result<HashMap<(String, String), Entitlement>, StorageError> {
    let mut found = HashMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let backend = ctx.backend();
    let mut empty = Rows::new(&[
        ("customer_id", Ty::Text),
        ("entitlement_id", Ty::Text),
        ("product_id", Ty::Text),
    ]);
    let mut seen = std::collections::HashSet::new();
    for (customer, entitlement, product) in keys {
        if seen.insert((customer, entitlement)) {
            empty.push(vec![
                customer.clone().into(),
                entitlement.clone().into(),
                product.clone().into(),
            ]);
        }
    }
    let lookup = Rows::new(&[("customer_id", Ty::Text), ("entitlement_id", Ty::Text)]);
    let mut lookup = lookup;
    for (customer, entitlement) in &seen {
        lookup.push(vec![
            (*customer).clone().into(),
            (*entitlement).clone().into(),
        ]);
    }
    let insert = empty.statement(backend, |params| {
        let now = params.bind(now.0.into());
        format!(
            "INSERT INTO entitlements (customer_id, entitlement_id, product_id, lifetime,
                 granted_until, expired_through, update_time)
             SELECT customer_id, entitlement_id, product_id, false, NULL, NULL, {now}
             FROM t WHERE true
             ON CONFLICT (customer_id, entitlement_id) DO NOTHING"
        )
    });
    ctx.txn.execute_raw(insert).await?;
    let lock = if backend == DbBackend::Postgres {
        " ORDER BY e.customer_id, e.entitlement_id FOR UPDATE OF e"
    } else {
        ""
    };
    let select = lookup.statement(backend, |_| {
        format!(
            "SELECT e.* FROM entitlements e JOIN t
                 ON e.customer_id = t.customer_id AND e.entitlement_id = t.entitlement_id{lock}"
        )
    });
    for row in ctx.txn.query_all_raw(select).await? {
        let row = entitlements::Model::from_query_result(&row, "")?;
        found.insert(
            (row.customer_id.clone(), row.entitlement_id.clone()),
            to_entitlement(row),
        );
    }
    Ok(found)
}

/// Writes these entitlements back, in one statement.
pub(crate) async fn save(ctx: &Ctx<'_>, changed: &[&Entitlement]) -> Result<(), StorageError> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut t = Rows::new(&[
        ("customer_id", Ty::Text),
        ("entitlement_id", Ty::Text),
        ("product_id", Ty::Text),
        ("lifetime", Ty::Bool),
        ("granted_until", Ty::BigInt),
        ("has_granted_until", Ty::Bool),
        ("expired_through", Ty::BigInt),
        ("has_expired_through", Ty::Bool),
        ("update_time", Ty::BigInt),
    ]);
    for e in changed {
        t.push(vec![
            e.customer_id.clone().into(),
            e.entitlement_id.clone().into(),
            e.product_id.clone().into(),
            e.lifetime.into(),
            e.granted_until.map_or(0, |t| t.0).into(),
            e.granted_until.is_some().into(),
            e.expired_through.map_or(0, |t| t.0).into(),
            e.expired_through.is_some().into(),
            e.update_time.0.into(),
        ]);
    }
    let statement = t.statement(ctx.backend(), |_| {
        "UPDATE entitlements SET product_id = t.product_id, lifetime = t.lifetime,
             granted_until = CASE WHEN t.has_granted_until THEN t.granted_until END,
             expired_through = CASE WHEN t.has_expired_through THEN t.expired_through END,
             update_time = t.update_time
         FROM t WHERE entitlements.customer_id = t.customer_id
             AND entitlements.entitlement_id = t.entitlement_id"
            .to_owned()
    });
    ctx.txn.execute_raw(statement).await?;
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
