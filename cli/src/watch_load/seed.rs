//! `watch-load seed`: grow the retained change history to a given size for
//! the catch-up measurement, quickly. It creates real orders through the
//! API, then copies their committed feed rows in the database (under the
//! feed's append lock on PostgreSQL), so the history holds real snapshots
//! without spending minutes writing a million changes one by one.
//! Benchmark use only: the copies repeat order versions.

use clap::Args;
use fulfilment::storage::{self, DatabaseConfig, FEED_LOCK};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use super::{Target, create_orders};

/// Options of `watch-load seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Changes the retained history should hold at least.
    #[arg(long, default_value_t = 1_000_000)]
    changes: i64,
    /// Real orders to create first (their changes are the ones copied).
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// The fulfilment service's database.
    #[arg(long, env = "FULFIL_DATABASE_URL", default_value = fulfilment::config::DEFAULT_DATABASE_URL)]
    database_url: String,
    #[command(flatten)]
    target: Target,
}

/// Creates the orders, then doubles the feed until it is large enough.
pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let client = args.target.connect().await?;
    create_orders(&client, args.orders, "watch_seed").await?;
    let conn = storage::connect(&DatabaseConfig {
        url: args.database_url.clone(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(30),
    })
    .await?;
    let backend = conn.get_database_backend();
    let count = |conn: &sea_orm::DatabaseConnection| {
        let conn = conn.clone();
        async move {
            let row = conn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT COUNT(*) AS n FROM order_changes",
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no count"))?;
            anyhow::Ok(row.try_get::<i64>("", "n")?)
        }
    };
    let mut held = count(&conn).await?;
    while held < args.changes {
        let copy = (args.changes - held).min(held);
        let txn = conn.begin().await?;
        if backend == DbBackend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [FEED_LOCK.into()],
            ))
            .await?;
        }
        txn.execute_raw(Statement::from_string(
            backend,
            format!(
                "INSERT INTO order_changes (order_id, customer_id, state, version, snapshot, order_pb, commit_time) \
                 SELECT order_id, customer_id, state, version, snapshot, order_pb, commit_time \
                 FROM order_changes ORDER BY seq LIMIT {copy}"
            ),
        ))
        .await?;
        txn.commit().await?;
        held += copy;
        eprintln!("history holds {held} changes");
    }
    if backend == DbBackend::Postgres {
        conn.execute_unprepared("ANALYZE order_changes").await?;
    }
    println!("retained history: {held} changes");
    Ok(())
}
