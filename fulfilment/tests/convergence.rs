//! Out-of-order delivery converges: whatever order a payment's events
//! arrive in, with duplicates, and whether the order exists before, between
//! or after them, the order ends with the same state and amounts as when
//! the same events arrive once, in order, after the order was created.
//! A property test, run on SQLite and (when configured) PostgreSQL.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Backend, TestApp, create, new_order, payment_event};
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::{CreateOrderRequest, GetOrderRequest, PaymentEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The events one payment can produce (the order's total is 3900 EUR).
fn pool(order_id: &str) -> Vec<PaymentEvent> {
    let on_order =
        |id: &str, kind: Kind, payment: &str, t: i64| payment_event(id, kind, order_id, payment, t);
    let on_payment = |id: &str, kind: Kind, refund: &str, amount: i64, t: i64| PaymentEvent {
        refund_ref: refund.into(),
        amount,
        ..payment_event(id, kind, "", "pi_1", t)
    };
    vec![
        on_order("failed_earlier", Kind::PaymentFailed, "pi_0", 0),
        on_order("processing", Kind::PaymentProcessing, "pi_1", 1),
        PaymentEvent {
            amount: 3900,
            ..on_order("succeeded", Kind::PaymentSucceeded, "pi_1", 2)
        },
        // The same payment reported again by a second event (checkout session).
        PaymentEvent {
            amount: 3900,
            ..on_order("session_completed", Kind::PaymentSucceeded, "pi_1", 2)
        },
        on_payment("refund_1", Kind::Refunded, "re_1", 900, 3),
        PaymentEvent {
            amount_is_cumulative: true,
            ..on_payment("charge_refunded", Kind::Refunded, "", 900, 3)
        },
        on_payment("refund_2", Kind::Refunded, "re_2", 1000, 4),
        on_payment("dispute_opened", Kind::DisputeOpened, "dp_1", 0, 5),
        on_payment("dispute_closed", Kind::DisputeClosed, "dp_1", 0, 6),
        on_order("late_processing", Kind::PaymentProcessing, "pi_2", 7),
        on_order("late_failure", Kind::PaymentFailed, "pi_3", 8),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    /// Indices into the pool, in delivery order, with repeats.
    deliveries: Vec<usize>,
    /// How many deliveries happen before the order is created.
    created_after: usize,
}

fn cases() -> impl Strategy<Value = Case> {
    let size = pool("x").len();
    (
        proptest::collection::vec(any::<bool>(), size),
        proptest::collection::vec(0..size, 0..4),
    )
        .prop_flat_map(move |(keep, repeats)| {
            let mut deliveries: Vec<usize> = (0..size).filter(|i| keep[*i]).collect();
            deliveries.extend(repeats.into_iter().filter(|i| keep[*i]));
            let len = deliveries.len();
            (Just(deliveries).prop_shuffle(), 0..=len)
        })
        .prop_map(|(deliveries, created_after)| Case {
            deliveries,
            created_after,
        })
}

type Summary = (i32, i64, i64, bool, String);

async fn deliver(
    app: &TestApp,
    order_id: &str,
    case_no: usize,
    deliveries: &[usize],
    created_after: usize,
) -> Summary {
    let events = pool(order_id);
    let mut created = false;
    for (n, index) in deliveries.iter().enumerate() {
        if n == created_after {
            create(
                app,
                CreateOrderRequest {
                    order_id: order_id.into(),
                    ..new_order("cus_conv")
                },
            )
            .await;
            created = true;
        }
        let mut event = events[*index].clone();
        // Event ids and payment references are per case, as they would be
        // per real payment.
        event.event_id = format!("{order_id}-{}", event.event_id);
        event.payment_ref = format!("c{case_no}-{}", event.payment_ref);
        app.record(event).await;
    }
    if !created {
        create(
            app,
            CreateOrderRequest {
                order_id: order_id.into(),
                ..new_order("cus_conv")
            },
        )
        .await;
    }
    let order = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .expect("get")
        .into_inner();
    (
        order.state,
        order.amount_paid,
        order.amount_refunded,
        order.disputed,
        order.attention_reason,
    )
}

fn run(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(app) = rt.block_on(TestApp::spawn(backend)) else {
        return;
    };
    let counter = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&cases(), |case| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        rt.block_on(async {
            // Reference: each kept event once, in pool order, order first.
            let mut canonical: Vec<usize> = case.deliveries.clone();
            canonical.sort_unstable();
            canonical.dedup();
            // Separate payment references per run keep the two orders apart.
            let expected = deliver(&app, &format!("ref-{n}"), 2 * n, &canonical, 0).await;
            let actual = deliver(
                &app,
                &format!("conv-{n}"),
                2 * n + 1,
                &case.deliveries,
                case.created_after,
            )
            .await;
            prop_assert_eq!(
                actual,
                expected,
                "deliveries {:?}, created after {}",
                case.deliveries,
                case.created_after
            );
            Ok::<(), TestCaseError>(())
        })
    });
    drop(app);
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn sqlite_events_converge_in_any_order() {
    run(Backend::Sqlite);
}

#[test]
fn postgres_events_converge_in_any_order() {
    run(Backend::Postgres);
}
