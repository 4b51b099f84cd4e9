//! Identifiers at the boundary: ids with control characters (U+0000 among
//! them) or over the length bound are INVALID_ARGUMENT on both databases and
//! write nothing; payloads are bytes and keep whatever they hold; and a
//! statement the database refuses for its input is never reported as an
//! outage.

mod common;

use common::{TestApp, create, get, new_order, payment_event, reason, violated_fields};
use fulfil_proto::Identifier;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::{
    CancelOrderRequest, CreateOrderRequest, Entitlement, GetOrderRequest, ListEntitlementsRequest,
    ListOrdersRequest, ListPaymentEventsRequest, PaymentEvent, RecordPaymentEventRequest,
    WatchOrdersRequest,
};
use fulfilment::storage::StorageError;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tonic::Code;

storage_tests!(
    create_order_refuses_bad_identifiers_and_creates_nothing,
    reads_refuse_bad_identifiers,
    record_refuses_bad_identifiers_and_records_nothing,
    cancel_reason_with_control_characters_is_refused,
    payloads_are_stored_byte_for_byte,
    database_refusals_are_the_callers_error_not_an_outage,
);

fn too_long() -> String {
    "x".repeat(Identifier::MAX_BYTES + 1)
}

/// Asserts INVALID_ARGUMENT, reason INVALID_ARGUMENT, and a BadRequest
/// violation of exactly `field`.
fn assert_invalid(status: &tonic::Status, field: &str, what: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert_eq!(reason(status), "INVALID_ARGUMENT", "{what}");
    assert_eq!(violated_fields(status), [field], "{what}");
}

async fn order_count(app: &TestApp) -> usize {
    app.client
        .clone()
        .list_orders(ListOrdersRequest::default())
        .await
        .expect("list orders")
        .into_inner()
        .orders
        .len()
}

async fn ledger(app: &TestApp) -> Vec<fulfil_proto::v1::RecordedPaymentEvent> {
    app.events
        .clone()
        .list_payment_events(ListPaymentEventsRequest {
            include_payload: true,
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("list payment events")
        .into_inner()
        .events
}

async fn create_order_refuses_bad_identifiers_and_creates_nothing(app: TestApp) {
    let head = app.db.feed_head().await.expect("feed head");
    let cases: Vec<(&str, CreateOrderRequest)> = vec![
        (
            "customer_id",
            CreateOrderRequest {
                customer_id: "cus\0x".into(),
                ..new_order("ignored")
            },
        ),
        ("customer_id", new_order(&too_long())),
        (
            "order_id",
            CreateOrderRequest {
                order_id: "ord\0x".into(),
                ..new_order("cus_1")
            },
        ),
        (
            "request_id",
            CreateOrderRequest {
                request_id: "req\0".into(),
                ..new_order("cus_1")
            },
        ),
        (
            "request_id",
            CreateOrderRequest {
                request_id: too_long(),
                ..new_order("cus_1")
            },
        ),
        ("line_items[0].sku", {
            let mut request = new_order("cus_1");
            request.line_items[0].sku = "tee\0".into();
            request
        }),
    ];
    for (field, request) in cases {
        let status = app
            .client
            .clone()
            .create_order(request)
            .await
            .expect_err("refused");
        assert_invalid(&status, field, field);
    }
    assert_eq!(
        order_count(&app).await,
        0,
        "a refused request creates nothing"
    );
    assert_eq!(
        app.db.feed_head().await.expect("feed head"),
        head,
        "nor a change"
    );

    let longest = create(&app, new_order(&"c".repeat(Identifier::MAX_BYTES))).await;
    assert_eq!(longest.customer_id.len(), Identifier::MAX_BYTES);
}

async fn reads_refuse_bad_identifiers(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    for customer_id in ["cus\0x".to_owned(), too_long()] {
        let status = app
            .client
            .clone()
            .list_orders(ListOrdersRequest {
                customer_id: customer_id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_invalid(&status, "customer_id", "ListOrders");

        let status = app
            .client
            .clone()
            .watch_orders(WatchOrdersRequest {
                customer_id: customer_id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_invalid(&status, "customer_id", "WatchOrders");

        let status = app
            .entitlements
            .clone()
            .list_entitlements(ListEntitlementsRequest {
                customer_id,
                active_only: false,
            })
            .await
            .expect_err("refused");
        assert_invalid(&status, "customer_id", "ListEntitlements");
    }
    for (order_id, source, field) in [
        ("ord\0x".to_owned(), String::new(), "order_id"),
        (too_long(), String::new(), "order_id"),
        (String::new(), "stripe\0".to_owned(), "source"),
        (String::new(), too_long(), "source"),
    ] {
        let status = app
            .events
            .clone()
            .list_payment_events(ListPaymentEventsRequest {
                order_id,
                source,
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_invalid(&status, field, "ListPaymentEvents");
    }
    let status = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: format!("{}\0", order.order_id),
        })
        .await
        .expect_err("refused");
    assert_invalid(&status, "order_id", "GetOrder");
}

fn paid(event_id: &str, order_id: &str) -> PaymentEvent {
    PaymentEvent {
        amount: 3900,
        ..payment_event(
            event_id,
            Kind::PaymentSucceeded,
            order_id,
            &format!("pi_{event_id}"),
            1,
        )
    }
}

async fn record_refuses_bad_identifiers_and_records_nothing(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    type Patch = fn(&mut PaymentEvent, String);
    let fields: [(&str, Patch); 10] = [
        ("event.source", |e, v| e.source = v),
        ("event.provider", |e, v| e.provider = v),
        ("event.event_id", |e, v| e.event_id = v),
        ("event.event_type", |e, v| e.event_type = v),
        ("event.order_ref", |e, v| e.order_ref = v),
        ("event.payment_ref", |e, v| e.payment_ref = v),
        ("event.refund_ref", |e, v| e.refund_ref = v),
        ("event.customer_ref", |e, v| e.customer_ref = v),
        ("event.product_ref", |e, v| e.product_ref = v),
        ("event.entitlements[0].entitlement_id", |e, v| {
            e.entitlements = vec![Entitlement {
                entitlement_id: v,
                expire_time: None,
            }]
        }),
    ];
    for (field, patch) in fields {
        for value in ["a\0b".to_owned(), "\0".to_owned(), too_long()] {
            let mut event = paid("evt_bad", &order.order_id);
            patch(&mut event, value);
            let status = app
                .events
                .clone()
                .record_payment_event(RecordPaymentEventRequest { event: Some(event) })
                .await
                .expect_err("refused");
            assert_invalid(&status, field, field);
        }
    }
    assert!(ledger(&app).await.is_empty(), "nothing was recorded");
    assert_eq!(get(&app, &order.order_id).await.version, 1, "nor applied");
}

async fn cancel_reason_with_control_characters_is_refused(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let status = app
        .client
        .clone()
        .cancel_order(CancelOrderRequest {
            order_id: order.order_id.clone(),
            reason: "changed\0mind".into(),
            expected_version: 0,
        })
        .await
        .expect_err("refused");
    assert_invalid(&status, "reason", "CancelOrder");
    assert_eq!(get(&app, &order.order_id).await.version, 1);
}

async fn payloads_are_stored_byte_for_byte(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    // What Stripe sends: JSON escapes of NUL and other control characters
    // in free text; then raw bytes no text column could hold.
    let mut payload =
        br#"{"id":"evt_free_text","description":"a\u0000b","note":"tab\there\u001f"}"#.to_vec();
    payload.extend_from_slice(b"\n\0\x01\xff\xfe");
    let event = PaymentEvent {
        payload: payload.clone(),
        ..paid("evt_free_text", &order.order_id)
    };
    let recorded = app.record(event).await;
    assert_eq!(
        recorded.order.map(|o| o.state()),
        Some(fulfil_proto::v1::order::State::Paid)
    );
    let events = ledger(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event.as_ref().map(|e| e.payload.as_slice()),
        Some(payload.as_slice()),
        "the exact bytes come back"
    );
}

/// Runs `sql` and returns how storage classifies its failure.
async fn refusal(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) -> StorageError {
    let statement = Statement::from_sql_and_values(app.db.backend(), sql, values);
    let err = app
        .db
        .conn()
        .execute_raw(statement)
        .await
        .expect_err(&format!("the database refuses {sql}"));
    StorageError::from(err)
}

async fn database_refusals_are_the_callers_error_not_an_outage(app: TestApp) {
    let backend = app.db.backend();
    let conn = app.db.conn();
    conn.execute_unprepared(
        "CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'x'))",
    )
    .await
    .expect("create probe table");
    let insert = match backend {
        DbBackend::Postgres => "INSERT INTO probe (id, v) VALUES ($1, $2)",
        _ => "INSERT INTO probe (id, v) VALUES (?, ?)",
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [1.into(), "a".into()],
    ))
    .await
    .expect("a valid row");

    // Class 23 (SQLite: CONSTRAINT): unique, not-null and check.
    for values in [
        vec![1.into(), "b".into()],
        vec![2.into(), sea_orm::Value::String(None)],
        vec![3.into(), "x".into()],
    ] {
        let err = refusal(&app, insert, values).await;
        assert!(matches!(err, StorageError::ConstraintViolated(_)), "{err}");
    }

    // Class 22 (SQLite: MISMATCH): a value the column cannot hold.
    let err = match backend {
        DbBackend::Postgres => {
            // The finding itself: U+0000 in text.
            refusal(&app, "SELECT CAST($1 AS TEXT)", vec!["cus\0x".into()]).await
        }
        _ => refusal(&app, insert, vec!["not a number".into(), "a".into()]).await,
    };
    assert!(matches!(err, StorageError::ValueRefused(_)), "{err}");

    // And through the API the same refusal is the caller's error, not
    // UNAVAILABLE.
    let status = fulfilment::api::status::storage(&err);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "VALUE_NOT_STORABLE");

    if backend == DbBackend::Postgres {
        // A real failure stays an outage: the session is killed under the
        // statement (SQLSTATE 57P01).
        let err = refusal(
            &app,
            "SELECT pg_terminate_backend(pg_backend_pid())",
            vec![],
        )
        .await;
        assert!(matches!(err, StorageError::Db(_)), "{err}");
        assert_eq!(
            fulfilment::api::status::storage(&err).code(),
            Code::Unavailable
        );
    }
}
