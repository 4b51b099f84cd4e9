//! The set-based write path: events that arrive together behave as if
//! committed one after the other; a database left by the previous release
//! keeps working after the upgrade; on PostgreSQL the hot path reads through
//! indexes on a database whose statistics were never gathered.

mod common;

use std::time::Duration;

use common::{Backend, TestApp, create, get, new_order, payment_event};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::{
    CreateOrderRequest, PaymentEvent, WatchOrdersRequest, record_payment_event_response::Outcome,
};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;

storage_tests!(
    events_of_one_order_delivered_together_converge,
    concurrent_copies_in_one_batch_apply_once,
);

fn paid(event_id: &str, order_id: &str, payment: &str, t: i64) -> PaymentEvent {
    PaymentEvent {
        amount: 3900,
        ..payment_event(event_id, Kind::PaymentSucceeded, order_id, payment, t)
    }
}

fn refund(event_id: &str, payment: &str, refund: &str, amount: i64, t: i64) -> PaymentEvent {
    PaymentEvent {
        refund_ref: refund.into(),
        amount,
        ..payment_event(event_id, Kind::Refunded, "", payment, t)
    }
}

/// A payment, two refunds, a dispute opened and closed and a late failure,
/// all sent at once (so the writer takes several in one batch), end as
/// they do one by one; each version of the order reaches the feed once.
async fn events_of_one_order_delivered_together_converge(app: TestApp) {
    for round in 0..5 {
        let order = create(&app, new_order("cus_batch")).await;
        let id = order.order_id.clone();
        let pi = format!("pi_batch_{round}");
        let dispute = |eid: &str, kind, t| PaymentEvent {
            refund_ref: "dp_1".into(),
            ..payment_event(eid, kind, "", &pi, t)
        };
        let events = vec![
            refund(&format!("{id}-r1"), &pi, "re_1", 900, 3),
            dispute(&format!("{id}-dc"), Kind::DisputeClosed, 6),
            paid(&format!("{id}-p"), &id, &pi, 2),
            refund(&format!("{id}-r2"), &pi, "re_2", 1000, 4),
            dispute(&format!("{id}-do"), Kind::DisputeOpened, 5),
            payment_event(&format!("{id}-f"), Kind::PaymentFailed, &id, "pi_other", 9),
            paid(&format!("{id}-p"), &id, &pi, 2),
        ];
        let sends = events.into_iter().map(|e| {
            let app = &app;
            async move { app.record(e).await }
        });
        futures::future::join_all(sends).await;
        let order = get(&app, &id).await;
        assert_eq!(
            (
                order.state(),
                order.amount_paid,
                order.amount_refunded,
                order.disputed
            ),
            (State::PartiallyRefunded, 3900, 1900, false),
            "round {round}"
        );
        let versions = app.feed_versions(&id).await;
        let expected: Vec<i64> = (1..=order.version).collect();
        assert_eq!(versions, expected, "one feed row per version, in order");
    }
}

/// Sixteen copies of one event at once: one claim, one application, the
/// rest answer DUPLICATE with the first delivery's outcome.
async fn concurrent_copies_in_one_batch_apply_once(app: TestApp) {
    let order = create(&app, new_order("cus_dup")).await;
    let event = paid("evt_storm", &order.order_id, "pi_storm", 1);
    let sends = (0..16).map(|_| {
        let app = &app;
        let event = event.clone();
        async move { app.record(event).await }
    });
    let answers = futures::future::join_all(sends).await;
    let applied = answers
        .iter()
        .filter(|a| a.outcome() == Outcome::Applied)
        .count();
    assert_eq!(applied, 1);
    assert!(answers.iter().all(|a| a.first_outcome() == Outcome::Applied
        && a.order.as_ref().map(|o| o.amount_paid) == Some(3900)));
    assert_eq!(get(&app, &order.order_id).await.version, 2);
}

/// What the previous release (migrations 1–3) left: a paid order with its
/// JSON feed rows, and a refund waiting for its order.
async fn previous_release(conn: DatabaseConnection) {
    fulfilment::storage::Migrator::up(&conn, Some(3))
        .await
        .expect("old migrations");
    let backend = conn.get_database_backend();
    let snapshot = |version: i64, state: &str, paid: i64| {
        serde_json::json!({
            "id": 1, "order_id": "old-1", "customer_id": "cus_old", "state": state,
            "currency": "EUR", "amount_total": 3900, "amount_paid": paid,
            "amount_refunded": 0,
            "line_items": "[{\"sku\":\"tee\",\"quantity\":1,\"unit_amount\":3900}]",
            "metadata": "{}", "version": version, "request_id": null,
            "request_hash": null, "create_time": 1, "update_time": version,
            "fulfil_time": null, "cancel_time": null, "cancel_reason": null,
            "disputed": false, "attention_reason": null
        })
        .to_string()
    };
    let statements = [
        "INSERT INTO orders (order_id, customer_id, state, currency, amount_total, amount_paid,
             amount_refunded, line_items, metadata, version, create_time, update_time,
             disputed)
         VALUES ('old-1', 'cus_old', 'PAID', 'EUR', 3900, 3900, 0,
             '[{\"sku\":\"tee\",\"quantity\":1,\"unit_amount\":3900}]', '{}', 2, 1, 2, false)"
            .to_owned(),
        "INSERT INTO payment_events (source, event_id, provider, kind, event_type, order_ref,
             payment_ref, refund_ref, amount, amount_is_cumulative, currency, occur_time,
             customer_ref, product_ref, entitlements, payload, outcome, order_id, note,
             record_time)
         VALUES ('stripe', 'evt_old_paid', 'stripe', 'PAYMENT_SUCCEEDED',
             'payment_intent.succeeded', 'old-1', 'pi_old', '', 3900, false, 'EUR', 2, '', '',
             '[]', X'7B7D', 'APPLIED', 'old-1', NULL, 2)"
            .to_owned(),
        // Committed just now: older rows would be pruned by retention.
        format!(
            "INSERT INTO order_changes (order_id, customer_id, state, version, snapshot,
                 commit_time)
             VALUES ('old-1', 'cus_old', 'PENDING_PAYMENT', 1, '{}', {now}),
                    ('old-1', 'cus_old', 'PAID', 2, '{}', {now})",
            snapshot(1, "PENDING_PAYMENT", 0),
            snapshot(2, "PAID", 3900),
            now = fulfilment::order::UnixMicros::now().0,
        ),
    ];
    for sql in statements {
        let sql = if backend == DbBackend::Postgres {
            sql.replace("X'7B7D'", "'\\x7b7d'::bytea")
        } else {
            sql
        };
        conn.execute_raw(Statement::from_string(backend, sql))
            .await
            .expect("previous release's rows");
    }
}

async fn upgrade_keeps_orders_and_feed_working(backend: Backend) {
    let Some(app) = TestApp::spawn_upgraded(backend, previous_release).await else {
        return;
    };
    // The order's summary did not exist: it is rebuilt from the ledger, so a
    // second report of the same payment changes nothing and a refund counts.
    let again = app
        .record(paid("evt_old_session", "old-1", "pi_old", 3))
        .await;
    assert_eq!(again.order.as_ref().map(|o| o.version), Some(2));
    let refunded = app
        .record(refund("evt_old_refund", "pi_old", "re_1", 900, 4))
        .await;
    let order = refunded.order.expect("order");
    assert_eq!(
        (
            order.state(),
            order.amount_paid,
            order.amount_refunded,
            order.version
        ),
        (State::PartiallyRefunded, 3900, 900, 3)
    );
    // New orders work as before.
    let fresh = create(
        &app,
        CreateOrderRequest {
            order_id: "new-1".into(),
            ..new_order("cus_new")
        },
    )
    .await;
    app.record(paid("evt_new", &fresh.order_id, "pi_new", 5))
        .await;
    assert_eq!(get(&app, "new-1").await.state(), State::Paid);
    // The feed reads old JSON rows and new protobuf rows alike.
    let mut stream = app
        .client
        .clone()
        .watch_orders(WatchOrdersRequest {
            start: Some(fulfil_proto::v1::watch_orders_request::Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < 5 {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("feed in time; seen {seen:?}"))
            .expect("stream open")
            .expect("message");
        if let Some(fulfil_proto::v1::watch_orders_response::Event::Change(change)) = message.event
        {
            let order = change.order.expect("order");
            seen.push((order.order_id, order.version, order.amount_paid));
        }
    }
    assert_eq!(
        seen,
        [
            ("old-1".to_owned(), 1, 0),
            ("old-1".to_owned(), 2, 3900),
            ("old-1".to_owned(), 3, 3900),
            ("new-1".to_owned(), 1, 0),
            ("new-1".to_owned(), 2, 3900),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_keeps_orders_and_feed_working() {
    upgrade_keeps_orders_and_feed_working(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrade_keeps_orders_and_feed_working() {
    upgrade_keeps_orders_and_feed_working(Backend::Postgres).await;
}

/// Sequential and index scans of a table, as PostgreSQL counts them.
/// The writer's commits never run SQLite's checkpoint themselves; a
/// background checkpoint copies them into the database file soon after,
/// long before the 1,000 pages at which SQLite's own would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commits_reach_the_database_file_in_the_background() {
    let app = TestApp::spawn(Backend::Sqlite)
        .await
        .expect("sqlite always runs");
    let file = app.sqlite_file().expect("sqlite file");
    let size = || std::fs::metadata(&file).expect("database file").len();
    let before = size();
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(create(&app, new_order("cus_checkpoint")).await.order_id);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no page reached the database file within 10 s ({before} bytes)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &orders {
        assert_eq!(get(&app, id).await.order_id, *id);
    }
}

async fn scans(conn: &DatabaseConnection, table: &str) -> (i64, i64) {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT seq_scan, COALESCE(idx_scan, 0) AS idx_scan
                 FROM pg_stat_user_tables WHERE relname = '{table}'"
            ),
        ))
        .await
        .expect("stats")
        .expect("table stats");
    (
        row.try_get::<i64>("", "seq_scan").expect("seq_scan"),
        row.try_get::<i64>("", "idx_scan").expect("idx_scan"),
    )
}

/// A fresh deployment: a few thousand events recorded into tables whose
/// statistics were gathered only while empty (and never since). Then every
/// statement of the hot path (payments by order, refunds found through
/// their payment, events waiting for an order, adoption at CreateOrder,
/// duplicates) must read `payment_events` and `orders` through indexes:
/// PostgreSQL counts no sequential scan of either while they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hot_path_uses_indexes_without_statistics() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let conn = app.db.conn().clone();
    // Enough orders and events that neither table fits in a page or two,
    // where a sequential scan would rightly be cheapest.
    let orders: Vec<String> = futures::stream::iter(0..2_000)
        .map(|i| {
            let app = &app;
            async move { create(app, new_order(&format!("cus_{i}"))).await.order_id }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // Realistic bodies: a Stripe delivery is 2-3 KB and compresses poorly.
    let load = (0..2_000).map(|n| {
        let app = &app;
        let order = orders[n % orders.len()].clone();
        async move {
            let filler: String = (0..80)
                .map(|_| uuid::Uuid::new_v4().simple().to_string())
                .collect();
            let event = PaymentEvent {
                payload: format!("{{\"id\": \"evt_load_{n}\", \"filler\": \"{filler}\"}}")
                    .into_bytes(),
                ..paid(&format!("evt_load_{n}"), &order, &format!("pi_load_{n}"), 1)
            };
            app.record(event).await
        }
    });
    futures::stream::iter(load)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;

    // Backends report their counts up to 10 s late (when idle): wait until
    // the load's counts have stopped arriving, so they are not taken for
    // the hot path's.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    let read = || async {
        (
            scans(&conn, "payment_events").await,
            scans(&conn, "orders").await,
        )
    };
    let mut before = read().await;
    let mut stable_since = tokio::time::Instant::now();
    while stable_since.elapsed() < std::time::Duration::from_secs(11) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "statistics kept changing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let now = read().await;
        if now != before {
            before = now;
            stable_since = tokio::time::Instant::now();
        }
    }
    let target = orders[0].clone();
    // Every kind of hot-path statement, through the API.
    app.record(paid("evt_hot_paid", &target, "pi_hot", 2)).await;
    app.record(paid("evt_hot_paid", &target, "pi_hot", 2)).await;
    app.record(refund("evt_hot_refund", "pi_hot", "re_1", 100, 3))
        .await;
    app.record(refund("evt_hot_waiting", "pi_nobody", "re_2", 100, 3))
        .await;
    app.record(paid("evt_hot_early", "hot-later", "pi_later", 4))
        .await;
    create(
        &app,
        CreateOrderRequest {
            order_id: "hot-later".into(),
            ..new_order("cus_hot")
        },
    )
    .await;
    assert_eq!(get(&app, "hot-later").await.state(), State::Paid);
    let _ = app
        .events
        .clone()
        .reapply_unmatched_events(fulfil_proto::v1::ReapplyUnmatchedEventsRequest {})
        .await
        .expect("reapply");

    // Statistics reach the view asynchronously: wait until the index scans
    // of these calls are counted, then look at the sequential ones.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let after = loop {
        let now = (
            scans(&conn, "payment_events").await,
            scans(&conn, "orders").await,
        );
        if now.0.1 >= before.0.1 + 8 && now.1.1 >= before.1.1 + 6 {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "index scans not counted in time: {before:?} → {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (after.0.0 - before.0.0, after.1.0 - before.1.0),
        (0, 0),
        "sequential scans of payment_events and orders on the hot path ({before:?} → {after:?})"
    );
}
