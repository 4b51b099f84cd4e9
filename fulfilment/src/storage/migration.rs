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
        vec![
            Box::new(M0001Orders),
            Box::new(M0002PaymentEvents),
            Box::new(M0003FeedHorizon),
            Box::new(M0004IncrementalSummary),
            Box::new(M0005Checkout),
        ]
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

/// The payment event ledger, entitlements, and order flags set by payments.
struct M0002PaymentEvents;

impl MigrationName for M0002PaymentEvents {
    fn name(&self) -> &str {
        "m0002_payment_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002PaymentEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // UNIQUE (source, event_id) is the exactly-once guarantee: a
        // duplicate delivery, concurrent or not, cannot insert a second row.
        run_all(
            manager,
            &[
                "ALTER TABLE orders ADD COLUMN disputed BOOLEAN NOT NULL DEFAULT FALSE",
                "ALTER TABLE orders ADD COLUMN attention_reason TEXT",
                "CREATE TABLE payment_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    source TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    order_ref TEXT NOT NULL,
                    payment_ref TEXT NOT NULL,
                    refund_ref TEXT NOT NULL,
                    amount INTEGER NOT NULL,
                    amount_is_cumulative BOOLEAN NOT NULL,
                    currency TEXT,
                    occur_time INTEGER NOT NULL,
                    customer_ref TEXT NOT NULL,
                    product_ref TEXT NOT NULL,
                    entitlements TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    outcome TEXT NOT NULL,
                    order_id TEXT,
                    note TEXT,
                    record_time INTEGER NOT NULL,
                    UNIQUE (source, event_id)
                )",
                "CREATE INDEX payment_events_by_order ON payment_events (order_id, id)",
                "CREATE INDEX payment_events_by_outcome ON payment_events (outcome, id)",
                "CREATE INDEX payment_events_by_source ON payment_events (source, id)",
                "CREATE INDEX payment_events_by_payment ON payment_events (payment_ref)",
                "CREATE INDEX payment_events_by_order_ref ON payment_events (order_ref)",
                "CREATE TABLE entitlements (
                    customer_id TEXT NOT NULL,
                    entitlement_id TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    lifetime BOOLEAN NOT NULL,
                    granted_until INTEGER,
                    expired_through INTEGER,
                    update_time INTEGER NOT NULL,
                    PRIMARY KEY (customer_id, entitlement_id)
                )",
            ],
            &[
                "ALTER TABLE orders ADD COLUMN disputed BOOLEAN NOT NULL DEFAULT FALSE",
                "ALTER TABLE orders ADD COLUMN attention_reason TEXT",
                "CREATE TABLE payment_events (
                    id BIGSERIAL PRIMARY KEY,
                    source TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    order_ref TEXT NOT NULL,
                    payment_ref TEXT NOT NULL,
                    refund_ref TEXT NOT NULL,
                    amount BIGINT NOT NULL,
                    amount_is_cumulative BOOLEAN NOT NULL,
                    currency TEXT,
                    occur_time BIGINT NOT NULL,
                    customer_ref TEXT NOT NULL,
                    product_ref TEXT NOT NULL,
                    entitlements TEXT NOT NULL,
                    payload BYTEA NOT NULL,
                    outcome TEXT NOT NULL,
                    order_id TEXT,
                    note TEXT,
                    record_time BIGINT NOT NULL,
                    UNIQUE (source, event_id)
                )",
                "CREATE INDEX payment_events_by_order ON payment_events (order_id, id)",
                "CREATE INDEX payment_events_by_outcome ON payment_events (outcome, id)",
                "CREATE INDEX payment_events_by_source ON payment_events (source, id)",
                "CREATE INDEX payment_events_by_payment ON payment_events (payment_ref)",
                "CREATE INDEX payment_events_by_order_ref ON payment_events (order_ref)",
                "CREATE TABLE entitlements (
                    customer_id TEXT NOT NULL,
                    entitlement_id TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    lifetime BOOLEAN NOT NULL,
                    granted_until BIGINT,
                    expired_through BIGINT,
                    update_time BIGINT NOT NULL,
                    PRIMARY KEY (customer_id, entitlement_id)
                )",
            ],
        )
        .await
    }
}

/// How far the change feed has been pruned, so an expired cursor is told
/// apart from one that points into a hole left by a rolled-back write.
struct M0003FeedHorizon;

impl MigrationName for M0003FeedHorizon {
    fn name(&self) -> &str {
        "m0003_feed_horizon"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003FeedHorizon {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = [
            "CREATE TABLE feed_horizon (id INTEGER PRIMARY KEY CHECK (id = 1), pruned_through BIGINT NOT NULL)",
            "INSERT INTO feed_horizon (id, pruned_through) VALUES (1, 0)",
            "CREATE INDEX order_changes_by_commit_time ON order_changes (commit_time)",
        ];
        run_all(manager, &statements, &statements).await
    }
}

/// The incremental write path: each order keeps its merged payment summary
/// (rebuilt from the ledger on first use where it is missing or stale, so
/// orders written by an earlier release need no backfill here); feed rows
/// carry the order as protobuf; partial indexes find the events waiting for
/// an order by equality alone, whatever the table's statistics.
struct M0004IncrementalSummary;

impl MigrationName for M0004IncrementalSummary {
    fn name(&self) -> &str {
        "m0004_incremental_summary"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004IncrementalSummary {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let indexes = [
            "CREATE INDEX payment_events_waiting_by_order_ref ON payment_events (order_ref)
                WHERE outcome = 'UNMATCHED'",
            "CREATE INDEX payment_events_waiting_by_payment ON payment_events (payment_ref)
                WHERE outcome = 'UNMATCHED' AND order_ref = ''",
            // Superseded: waiting events are found through the partial
            // indexes above, and no hot-path query filters on order_ref alone.
            "DROP INDEX payment_events_by_order_ref",
        ];
        let sqlite = [
            "ALTER TABLE orders ADD COLUMN payment_summary BLOB",
            "ALTER TABLE orders ADD COLUMN summary_version INTEGER",
            "ALTER TABLE order_changes ADD COLUMN order_pb BLOB",
        ];
        let postgres = [
            "ALTER TABLE orders ADD COLUMN payment_summary BYTEA",
            "ALTER TABLE orders ADD COLUMN summary_version BIGINT",
            "ALTER TABLE order_changes ADD COLUMN order_pb BYTEA",
        ];
        let chain = |columns: [&'static str; 3]| -> Vec<&'static str> {
            columns.into_iter().chain(indexes).collect()
        };
        run_all(manager, &chain(sqlite), &chain(postgres)).await
    }
}

/// Checkout: payment attempts started at providers, and the provider's
/// customer of each Fulfil customer.
///
/// The database decides every race: `UNIQUE (order_id, attempt)` and the
/// partial unique index allow one OPEN attempt per order, `UNIQUE
/// (provider_payment_id)` one attempt per provider payment, and the primary
/// key of `provider_customers` one provider customer per Fulfil customer.
/// The CHECKs keep the text columns to the values of their Rust enums.
struct M0005Checkout;

impl MigrationName for M0005Checkout {
    fn name(&self) -> &str {
        "m0005_checkout"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Checkout {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = |id: &str, int: &str| {
            format!(
                "CREATE TABLE checkout_attempts (
                    id {id},
                    order_id TEXT NOT NULL REFERENCES orders (order_id),
                    attempt {int} NOT NULL CHECK (attempt >= 1),
                    customer_id TEXT NOT NULL,
                    provider TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal')),
                    flow TEXT NOT NULL
                        CHECK (flow IN ('STRIPE_PAYMENT_SHEET', 'STRIPE_CHECKOUT_SESSION', 'PAYPAL_ORDER')),
                    state TEXT NOT NULL CHECK (state IN ('OPEN', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
                    provider_payment_id TEXT UNIQUE,
                    create_time {int} NOT NULL,
                    update_time {int} NOT NULL,
                    UNIQUE (order_id, attempt)
                )"
            )
        };
        let customers = |int: &str| {
            format!(
                "CREATE TABLE provider_customers (
                    customer_id TEXT NOT NULL,
                    provider TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal')),
                    provider_customer_id TEXT NOT NULL,
                    create_time {int} NOT NULL,
                    PRIMARY KEY (customer_id, provider)
                )"
            )
        };
        let open = "CREATE UNIQUE INDEX checkout_attempts_one_open ON checkout_attempts (order_id)
                WHERE state = 'OPEN'";
        let sqlite = [
            table("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
            customers("INTEGER"),
            open.to_owned(),
        ];
        let postgres = [
            table("BIGSERIAL PRIMARY KEY", "BIGINT"),
            customers("BIGINT"),
            open.to_owned(),
        ];
        let sqlite: Vec<&str> = sqlite.iter().map(String::as_str).collect();
        let postgres: Vec<&str> = postgres.iter().map(String::as_str).collect();
        run_all(manager, &sqlite, &postgres).await
    }
}
