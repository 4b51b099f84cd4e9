//! WatchOrder and WatchOrders over real gRPC, on SQLite and PostgreSQL:
//! the current order first, every change once, resume without gaps under
//! concurrent writers, expired cursors, and streams ending on shutdown.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestApp, create, new_order};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::watch_order_response::Event as OrderEvent;
use fulfil_proto::v1::watch_orders_request::Start;
use fulfil_proto::v1::watch_orders_response::Event as OrdersEvent;
use fulfil_proto::v1::{
    CancelOrderRequest, FulfilOrderRequest, WatchOrderRequest, WatchOrdersRequest,
    WatchOrdersResponse,
};
use fulfilment::order::UnixMicros;
use fulfilment::storage::PruneFeed;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

storage_tests!(
    watch_order_sends_the_order_then_every_change,
    watch_orders_resumes_without_gaps_or_duplicates_under_concurrent_writers,
    expired_and_invalid_cursors_are_refused,
    streams_end_with_unavailable_on_shutdown,
);

/// The next message, or a failure after a deadline (never a sleep).
async fn next<T>(stream: &mut Streaming<T>) -> Result<T, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .expect("stream still open")
}

/// WatchOrders of one customer's orders, from now on.
async fn watch_from_now(app: &TestApp, customer_id: &str) -> Streaming<WatchOrdersResponse> {
    app.client
        .clone()
        .watch_orders(WatchOrdersRequest {
            customer_id: customer_id.into(),
            start: Some(Start::FromNow(true)),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner()
}

/// The order id of the next message, which must be a change (heartbeats
/// come every 15 s by default, after `next`'s deadline).
async fn next_change(stream: &mut Streaming<WatchOrdersResponse>) -> String {
    let Some(OrdersEvent::Change(change)) = next(stream).await.expect("change").event else {
        panic!("a change, not progress");
    };
    change.order.map(|o| o.order_id).unwrap_or_default()
}

async fn watch_order_sends_the_order_then_every_change(app: TestApp) {
    let order = create(&app, new_order("cus_w")).await;
    let mut stream = app
        .client
        .clone()
        .watch_order(WatchOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    let Some(OrderEvent::Change(first)) = next(&mut stream).await.expect("first").event else {
        panic!("the current order comes first");
    };
    assert_eq!(first.order.as_ref().map(|o| o.version), Some(1));
    assert!(!first.cursor.is_empty());

    app.mark_paid(&order.order_id).await;
    app.client
        .clone()
        .fulfil_order(FulfilOrderRequest {
            order_id: order.order_id.clone(),
            expected_version: 0,
        })
        .await
        .expect("fulfil");

    let mut versions = Vec::new();
    let mut progress = false;
    while versions.len() < 2 || !progress {
        match next(&mut stream).await.expect("message").event {
            Some(OrderEvent::Change(change)) => {
                let order = change.order.expect("order");
                versions.push((order.version, order.state()));
            }
            Some(OrderEvent::Progress(p)) => progress = !p.cursor.is_empty(),
            None => panic!("empty message"),
        }
    }
    assert_eq!(versions, [(2, State::Paid), (3, State::Fulfilled)]);
}

/// Reads changes until `want` distinct (order, version) pairs were seen or
/// `limit` messages were read; returns them and the last cursor.
async fn read_some(
    stream: &mut Streaming<WatchOrdersResponse>,
    limit: usize,
    seen: &mut Vec<(String, i64)>,
    cursor: &mut String,
) {
    for _ in 0..limit {
        match next(stream).await.expect("message").event {
            Some(OrdersEvent::Change(change)) => {
                let order = change.order.expect("order");
                seen.push((order.order_id, order.version));
                *cursor = change.cursor;
            }
            Some(OrdersEvent::Progress(p)) => *cursor = p.cursor,
            None => panic!("empty message"),
        }
    }
}

async fn watch_orders_resumes_without_gaps_or_duplicates_under_concurrent_writers(app: TestApp) {
    const WRITERS: usize = 4;
    const ORDERS_EACH: usize = 15;
    // Each order: created (v1), then cancelled (v2): 2 changes.
    let expected = WRITERS * ORDERS_EACH * 2;

    let mut stream = watch_from_now(&app, "cus_feed").await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                for _ in 0..ORDERS_EACH {
                    let order = client
                        .create_order(new_order("cus_feed"))
                        .await
                        .expect("create")
                        .into_inner();
                    client
                        .cancel_order(CancelOrderRequest {
                            order_id: order.order_id,
                            ..Default::default()
                        })
                        .await
                        .expect("cancel");
                }
            })
        })
        .collect();
    // Unrelated traffic that the filter must leave out.
    create(&app, new_order("someone_else")).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    // Read a few, then reconnect from the last cursor, again and again.
    while seen.len() < expected {
        let want = (expected - seen.len()).min(7);
        let before = seen.len();
        while seen.len() < before + want {
            read_some(&mut stream, 1, &mut seen, &mut cursor).await;
        }
        drop(stream);
        stream = app
            .client
            .clone()
            .watch_orders(WatchOrdersRequest {
                customer_id: "cus_feed".into(),
                start: Some(Start::AfterCursor(cursor.clone())),
                ..Default::default()
            })
            .await
            .expect("resume")
            .into_inner();
    }
    for writer in writers {
        writer.await.expect("writer");
    }

    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no change delivered twice");
    assert_eq!(seen.len(), expected, "every change delivered");
    // Per order, versions arrive in order: created before cancelled.
    for (order_id, version) in &seen {
        if *version == 2 {
            let created = seen.iter().position(|(id, v)| id == order_id && *v == 1);
            let cancelled = seen.iter().position(|(id, v)| id == order_id && *v == 2);
            assert!(created < cancelled, "{order_id}: v1 before v2");
        }
    }
    // Nothing more is pending for this customer.
    let more = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if let Some(OrdersEvent::Change(_)) = next(&mut stream).await.expect("message").event {
                return;
            }
        }
    })
    .await;
    assert!(more.is_err(), "no extra changes after the last one");
}

async fn expired_and_invalid_cursors_are_refused(app: TestApp) {
    let order = create(&app, new_order("cus_x")).await;
    let mut stream = app
        .client
        .clone()
        .watch_orders(WatchOrdersRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let Some(OrdersEvent::Change(first)) = next(&mut stream).await.expect("first").event else {
        panic!("from the beginning, the creation comes first");
    };
    assert_eq!(first.order.map(|o| o.order_id), Some(order.order_id));
    drop(stream);

    let pruned = app
        .db
        .writer()
        .submit(PruneFeed {
            cutoff: UnixMicros(UnixMicros::now().0 + 1),
        })
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    // Everything up to the first change is pruned: resuming after it
    // misses nothing, resuming from before it would.
    app.client
        .clone()
        .watch_orders(WatchOrdersRequest {
            start: Some(Start::AfterCursor(first.cursor.clone())),
            ..Default::default()
        })
        .await
        .expect("resuming after the horizon is fine");
    let before_first = fulfilment::stream::cursor::encode(0);
    let status_before = app
        .client
        .clone()
        .watch_orders(WatchOrdersRequest {
            start: Some(Start::AfterCursor(before_first)),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .expect_err("a pruned position");
    assert_eq!(status_before.code(), Code::OutOfRange);
    assert_eq!(common::reason(&status_before), "CURSOR_EXPIRED");

    let status = app
        .client
        .clone()
        .watch_orders(WatchOrdersRequest {
            start: Some(Start::AfterCursor("garbage".into())),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .expect_err("garbage cursor");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn streams_end_with_unavailable_on_shutdown(mut app: TestApp) {
    let order = create(&app, new_order("cus_s")).await;
    let mut stream = app
        .client
        .clone()
        .watch_order(WatchOrderRequest {
            order_id: order.order_id,
        })
        .await
        .expect("watch")
        .into_inner();
    next(&mut stream).await.expect("first");
    app.stop_server();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("ends in time")
        {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("stream closed without a status"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable);
}

/// Streams that poll the feed only hourly: within a test, changes of other
/// replicas arrive through LISTEN/NOTIFY alone.
fn listen_only() -> fulfilment::stream::StreamConfig {
    fulfilment::stream::StreamConfig {
        poll: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A server with [`listen_only`] streams on a fresh PostgreSQL database;
/// None when PostgreSQL is not configured.
async fn listen_only_postgres() -> Option<TestApp> {
    TestApp::spawn_full(common::Backend::Postgres, Default::default(), listen_only()).await
}

/// Two replicas on one PostgreSQL database: a subscriber on replica A sees
/// a change committed through replica B. Polling is set to an hour, so
/// only the LISTEN/NOTIFY wake-up can deliver it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replica_changes_reach_subscribers_of_another_replica() {
    let Some(a) = listen_only_postgres().await else {
        return;
    };
    let b = a.replica(listen_only()).await;
    let mut stream = watch_from_now(&a, "cus_r").await;
    let created = create(&b, new_order("cus_r")).await;
    assert_eq!(next_change(&mut stream).await, created.order_id);
}

/// The backends of LISTEN connections on this app's database.
async fn listener_pids(app: &TestApp) -> Vec<i32> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    app.db
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1 ORDER BY pid",
            [fulfilment::stream::LISTENER_APPLICATION_NAME.into()],
        ))
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.try_get::<i32>("", "pid").expect("pid"))
        .collect()
}

/// Waits (with a deadline) until the listener backends satisfy `done`.
async fn wait_for_listeners(app: &TestApp, done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pids = listener_pids(app).await;
        if done(&pids) {
            return pids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener connections within 10 s: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two replicas; replica A's LISTEN connection is killed
/// (`pg_terminate_backend`) while the database refuses new connections, and
/// replica B commits a change meanwhile, so its notification never reaches
/// A. Polling is set to an hour: only A's listener reconnecting, and the
/// catch-up read that follows, can bring the change to A's subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_killed_listener_reconnects_and_its_subscribers_catch_up() {
    use sea_orm::ConnectionTrait;
    // Heartbeats show when the stream has read the feed and follows live
    // changes.
    let streams = fulfilment::stream::StreamConfig {
        heartbeat: Duration::from_millis(200),
        ..listen_only()
    };
    let Some(a) = TestApp::spawn_full(common::Backend::Postgres, Default::default(), streams).await
    else {
        return;
    };
    let a_listener = wait_for_listeners(&a, |pids| pids.len() == 1).await[0];
    let b = a.replica(listen_only()).await;
    wait_for_listeners(&a, |pids| pids.len() == 2).await;
    let mut stream = watch_from_now(&a, "cus_k").await;
    // The stream's first read of the feed needs a connection: let it finish
    // before the database refuses new ones.
    let Some(OrdersEvent::Progress(_)) = next(&mut stream).await.expect("progress").event else {
        panic!("progress first: nothing has changed yet");
    };

    let conn = a.db.conn();
    let database: String = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT current_database() AS name",
        ))
        .await
        .expect("current database")
        .expect("a row")
        .try_get("", "name")
        .expect("name");
    // A database cannot refuse connections from within itself.
    let admin_url = std::env::var(common::POSTGRES_URL_VAR).expect("set for postgres tests");
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .expect("admin connection");
    let allow = |yes: bool| format!("ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS {yes}");
    admin
        .execute_unprepared(&allow(false))
        .await
        .expect("refuse new connections");
    conn.execute_unprepared(&format!("SELECT pg_terminate_backend({a_listener})"))
        .await
        .expect("terminate A's listener");
    wait_for_listeners(&a, |pids| !pids.contains(&a_listener)).await;

    // B's writer keeps its connection: the change commits and B notifies,
    // while A is not listening.
    let created = create(&b, new_order("cus_k")).await;
    admin
        .execute_unprepared(&allow(true))
        .await
        .expect("accept connections again");

    let change = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match next(&mut stream).await.expect("change").event {
                Some(OrdersEvent::Progress(_)) => continue,
                Some(OrdersEvent::Change(change)) => {
                    return change.order.map(|o| o.order_id).unwrap_or_default();
                }
                None => panic!("an empty message"),
            }
        }
    })
    .await
    .expect("the change within 10 s");
    assert_eq!(change, created.order_id);
    let relistened = wait_for_listeners(&a, |pids| pids.len() == 2).await;
    assert!(
        !relistened.contains(&a_listener),
        "A listens on a new connection"
    );
}

/// A subscriber whose client stops reading (its outgoing queue holds one
/// message) while 100 changes are committed falls behind the hub's
/// 16-entry buffer; once it reads again it still gets every change, in
/// order, exactly once (read back from the database), and the writers were
/// never held up by it.
async fn slow_subscriber_catches_up(backend: common::Backend) {
    use fulfilment::stream::watch::{Event, Selector, run};
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let hub = fulfilment::stream::Hub::start(
        app.db.clone(),
        fulfilment::stream::StreamConfig {
            buffer: 16,
            ..Default::default()
        },
    )
    .await
    .expect("hub");
    let start = app.db.feed_head().await.expect("head");
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let selector = Selector {
        customer_id: Some("cus_slow".into()),
        ..Selector::default()
    };
    tokio::spawn(run(hub, selector, start, tx, |event| event));

    let mut created = Vec::new();
    for _ in 0..100 {
        created.push(create(&app, new_order("cus_slow")).await.order_id);
    }
    let mut seen = Vec::new();
    while seen.len() < created.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("no error");
        if let Event::Change(entry) = *event {
            seen.push(entry.order.order_id.as_str().to_owned());
        }
    }
    assert_eq!(seen, created, "every change, in commit order, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_slow_subscriber_catches_up() {
    slow_subscriber_catches_up(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slow_subscriber_catches_up() {
    slow_subscriber_catches_up(common::Backend::Postgres).await;
}
