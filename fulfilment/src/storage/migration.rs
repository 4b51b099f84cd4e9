//! Schema migrations, applied at start and by `fulfilment migrate`.
//!
//! Written as plain SQL per backend: the DDL an operator reads is exactly the
//! DDL that runs.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Orders)]
    }
}

async fn run_all(
    manager: &SchemaManager<'_>,
    sqlite: &[&str],
    postgres: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let statements = match db.get_database_backend() {
        DbBackend::Sqlite => sqlite,
        DbBackend::Postgres => postgres,
        other => return Err(DbErr::Migration(format!("unsupported backend {other:?}"))),
    };
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Orders and their change feed.
struct M0001Orders;

impl MigrationName for M0001Orders {
    fn name(&self) -> &str {
        "m0001_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Orders {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // AUTOINCREMENT (SQLite) and BIGSERIAL (PostgreSQL) never reuse a
        // number, so keyset page tokens and feed cursors stay meaningful even
        // after the newest rows are deleted.
        run_all(
            manager,
            &[
                "CREATE TABLE orders (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    order_id TEXT NOT NULL UNIQUE,
                    customer_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    amount_total INTEGER NOT NULL,
                    amount_paid INTEGER NOT NULL,
                    amount_refunded INTEGER NOT NULL,
                    line_items TEXT NOT NULL,
                    metadata TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    request_id TEXT UNIQUE,
                    request_hash TEXT,
                    create_time INTEGER NOT NULL,
                    update_time INTEGER NOT NULL,
                    fulfil_time INTEGER,
                    cancel_time INTEGER,
                    cancel_reason TEXT
                )",
                "CREATE INDEX orders_by_customer ON orders (customer_id, id)",
                "CREATE INDEX orders_by_state ON orders (state, id)",
                "CREATE TABLE order_changes (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    order_id TEXT NOT NULL,
                    customer_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    snapshot TEXT NOT NULL,
                    commit_time INTEGER NOT NULL
                )",
                "CREATE INDEX order_changes_by_order ON order_changes (order_id, seq)",
            ],
            &[
                "CREATE TABLE orders (
                    id BIGSERIAL PRIMARY KEY,
                    order_id TEXT NOT NULL UNIQUE,
                    customer_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    amount_total BIGINT NOT NULL,
                    amount_paid BIGINT NOT NULL,
                    amount_refunded BIGINT NOT NULL,
                    line_items TEXT NOT NULL,
                    metadata TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    request_id TEXT UNIQUE,
                    request_hash TEXT,
                    create_time BIGINT NOT NULL,
                    update_time BIGINT NOT NULL,
                    fulfil_time BIGINT,
                    cancel_time BIGINT,
                    cancel_reason TEXT
                )",
                "CREATE INDEX orders_by_customer ON orders (customer_id, id)",
                "CREATE INDEX orders_by_state ON orders (state, id)",
                "CREATE TABLE order_changes (
                    seq BIGSERIAL PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    customer_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    snapshot TEXT NOT NULL,
                    commit_time BIGINT NOT NULL
                )",
                "CREATE INDEX order_changes_by_order ON order_changes (order_id, seq)",
            ],
        )
        .await
    }
}
