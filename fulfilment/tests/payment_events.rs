//! PaymentEventService over real gRPC, on SQLite and PostgreSQL: exactly
//! once, out of order, unmatched, mismatched, in-app purchases.

mod common;

use common::{TestApp, create, get, new_order, payment_event};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::record_payment_event_response::Outcome;
use fulfil_proto::v1::{
    CreateOrderRequest, Entitlement, ListEntitlementsRequest, ListPaymentEventsRequest,
    PaymentEvent, ReapplyUnmatchedEventsRequest,
};
use tonic::Code;

storage_tests!(
    success_pays_the_order_and_a_duplicate_changes_nothing,
    concurrent_duplicates_apply_exactly_once,
    wrong_amount_or_currency_is_recorded_but_not_counted,
    event_before_its_order_waits_and_applies_at_creation,
    refunds_find_the_order_through_the_payment,
    refund_before_payment_converges,
    late_failure_or_processing_never_unpays,
    disputes_open_and_close,
    a_dispute_closed_before_it_was_opened_stays_closed,
    in_app_purchase_creates_a_paid_order_and_grants_access,
    unknown_event_types_are_ignored_but_recorded,
    malformed_events_are_refused_and_change_nothing,
    ledger_lists_by_order_and_outcome,
);

fn paid(event_id: &str, order_ref: &str, payment_ref: &str, amount: i64, t: i64) -> PaymentEvent {
    PaymentEvent {
        amount,
        ..payment_event(event_id, Kind::PaymentSucceeded, order_ref, payment_ref, t)
    }
}

fn refund(
    event_id: &str,
    payment_ref: &str,
    refund_ref: &str,
    amount: i64,
    t: i64,
) -> PaymentEvent {
    PaymentEvent {
        amount,
        refund_ref: refund_ref.into(),
        ..payment_event(event_id, Kind::Refunded, "", payment_ref, t)
    }
}

async fn success_pays_the_order_and_a_duplicate_changes_nothing(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let event = paid("evt_1", &order.order_id, "pi_1", 3900, 1);
    let first = app.record(event.clone()).await;
    assert_eq!(first.outcome(), Outcome::Applied);
    let paid_order = first.order.expect("order");
    assert_eq!(paid_order.state(), State::Paid);
    assert_eq!((paid_order.amount_paid, paid_order.version), (3900, 2));

    let again = app.record(event).await;
    assert_eq!(again.outcome(), Outcome::Duplicate);
    assert_eq!(again.first_outcome(), Outcome::Applied);
    assert_eq!(
        again.order.expect("order").version,
        2,
        "a duplicate makes no new version"
    );
    assert_eq!(app.feed_versions(&order.order_id).await, [1, 2]);
}

async fn concurrent_duplicates_apply_exactly_once(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let event = paid("evt_dup", &order.order_id, "pi_dup", 3900, 1);
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let mut client = app.events.clone();
            let event = event.clone();
            tokio::spawn(async move {
                client
                    .record_payment_event(fulfil_proto::v1::RecordPaymentEventRequest {
                        event: Some(event),
                    })
                    .await
                    .map(|r| r.into_inner().outcome())
            })
        })
        .collect();
    let mut applied = 0;
    for call in calls {
        match call.await.expect("join").expect("record") {
            Outcome::Applied => applied += 1,
            Outcome::Duplicate => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(applied, 1, "exactly one delivery applies");
    assert_eq!(get(&app, &order.order_id).await.version, 2);
    let ledger = app
        .events
        .clone()
        .list_payment_events(ListPaymentEventsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(ledger.events.len(), 1);
}

async fn wrong_amount_or_currency_is_recorded_but_not_counted(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let short = app
        .record(paid("evt_short", &order.order_id, "pi_1", 1000, 1))
        .await;
    assert_eq!(short.outcome(), Outcome::Mismatch);
    let flagged = short.order.expect("order");
    assert_eq!(
        flagged.state(),
        State::PendingPayment,
        "a wrong amount never marks the order paid"
    );
    assert_eq!(flagged.amount_paid, 0);
    assert!(
        flagged.attention_reason.starts_with("AMOUNT_MISMATCH"),
        "{}",
        flagged.attention_reason
    );

    let order = create(&app, new_order("cus_1")).await;
    let dollars = PaymentEvent {
        currency: "USD".into(),
        ..paid("evt_usd", &order.order_id, "pi_2", 3900, 1)
    };
    let response = app.record(dollars).await;
    assert_eq!(response.outcome(), Outcome::Mismatch);
    assert!(
        response
            .order
            .expect("order")
            .attention_reason
            .starts_with("CURRENCY_MISMATCH")
    );
}

async fn event_before_its_order_waits_and_applies_at_creation(app: TestApp) {
    let early = app
        .record(paid("evt_early", "checkout-7", "pi_7", 3900, 1))
        .await;
    assert_eq!(early.outcome(), Outcome::Unmatched);
    assert!(early.order.is_none());

    let created = create(
        &app,
        CreateOrderRequest {
            order_id: "checkout-7".into(),
            ..new_order("cus_1")
        },
    )
    .await;
    assert_eq!(
        created.state(),
        State::Paid,
        "the waiting payment applies when the order appears"
    );
    assert_eq!(created.amount_paid, 3900);

    let again = app
        .record(paid("evt_early", "checkout-7", "pi_7", 3900, 1))
        .await;
    assert_eq!(again.outcome(), Outcome::Duplicate);
    assert_eq!(
        again.first_outcome(),
        Outcome::Applied,
        "the ledger now says applied"
    );
}

async fn refunds_find_the_order_through_the_payment(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    app.record(paid("evt_p", &order.order_id, "pi_r", 3900, 1))
        .await;

    let partial = app.record(refund("evt_r1", "pi_r", "re_1", 900, 2)).await;
    assert_eq!(partial.outcome(), Outcome::Applied);
    let partial = partial.order.expect("order");
    assert_eq!(
        (partial.state(), partial.amount_refunded),
        (State::PartiallyRefunded, 900)
    );

    // Stripe also reports the running total on the charge: not counted twice.
    let cumulative = PaymentEvent {
        amount_is_cumulative: true,
        ..refund("evt_ch", "pi_r", "", 900, 3)
    };
    assert_eq!(
        app.record(cumulative)
            .await
            .order
            .expect("order")
            .amount_refunded,
        900
    );

    let rest = app
        .record(refund("evt_r2", "pi_r", "re_2", 3000, 4))
        .await
        .order
        .expect("order");
    assert_eq!(
        (rest.state(), rest.amount_refunded),
        (State::Refunded, 3900)
    );
}

async fn refund_before_payment_converges(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let early_refund = app.record(refund("evt_r", "pi_x", "re_x", 900, 5)).await;
    assert_eq!(
        early_refund.outcome(),
        Outcome::Unmatched,
        "a refund naming only an unknown payment waits"
    );

    let payment = app
        .record(paid("evt_p", &order.order_id, "pi_x", 3900, 1))
        .await;
    let settled = payment.order.expect("order");
    assert_eq!(settled.state(), State::PartiallyRefunded);
    assert_eq!((settled.amount_paid, settled.amount_refunded), (3900, 900));
}

async fn late_failure_or_processing_never_unpays(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let processing = app
        .record(payment_event(
            "evt_proc",
            Kind::PaymentProcessing,
            &order.order_id,
            "pi_1",
            1,
        ))
        .await;
    assert_eq!(
        processing.order.expect("order").state(),
        State::PaymentProcessing
    );
    app.record(paid("evt_ok", &order.order_id, "pi_1", 3900, 2))
        .await;
    let late = app
        .record(payment_event(
            "evt_fail",
            Kind::PaymentFailed,
            &order.order_id,
            "pi_0",
            3,
        ))
        .await
        .order
        .expect("order");
    assert_eq!(late.state(), State::Paid);
    assert_eq!(
        late.version, 3,
        "an event that changes nothing makes no new version"
    );
}

async fn disputes_open_and_close(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    app.record(paid("evt_p", &order.order_id, "pi_d", 3900, 1))
        .await;
    let opened = PaymentEvent {
        refund_ref: "dp_1".into(),
        ..payment_event("evt_do", Kind::DisputeOpened, "", "pi_d", 2)
    };
    assert!(app.record(opened).await.order.expect("order").disputed);
    let closed = PaymentEvent {
        refund_ref: "dp_1".into(),
        ..payment_event("evt_dc", Kind::DisputeClosed, "", "pi_d", 3)
    };
    assert!(!app.record(closed).await.order.expect("order").disputed);
}

/// The close changes nothing visible when it comes first, but the order's
/// summary must keep it, or the late open would flag the order for ever.
async fn a_dispute_closed_before_it_was_opened_stays_closed(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    app.record(paid("evt_p", &order.order_id, "pi_d", 3900, 1))
        .await;
    let dispute = |id: &str, kind, t| PaymentEvent {
        refund_ref: "dp_1".into(),
        ..payment_event(id, kind, "", "pi_d", t)
    };
    let closed = app.record(dispute("evt_dc", Kind::DisputeClosed, 3)).await;
    assert!(!closed.order.expect("order").disputed);
    let opened = app.record(dispute("evt_do", Kind::DisputeOpened, 2)).await;
    assert!(!opened.order.expect("order").disputed);
    assert!(!get(&app, &order.order_id).await.disputed);
}

async fn in_app_purchase_creates_a_paid_order_and_grants_access(app: TestApp) {
    let in_a_month = prost_types::Timestamp {
        seconds: 4_102_444_800,
        nanos: 0,
    };
    let purchase = PaymentEvent {
        source: "revenuecat".into(),
        provider: "revenuecat".into(),
        customer_ref: "app_user_9".into(),
        product_ref: "pro_monthly".into(),
        amount: 999,
        currency: "USD".into(),
        entitlements: vec![Entitlement {
            entitlement_id: "pro".into(),
            expire_time: Some(in_a_month),
        }],
        ..payment_event("rc_1", Kind::Purchase, "", "txn_1", 1)
    };
    let recorded = app.record(purchase).await;
    assert_eq!(recorded.outcome(), Outcome::Applied);
    let order = recorded.order.expect("order");
    assert_eq!(
        (order.state(), order.customer_id.as_str(), order.amount_paid),
        (State::Paid, "app_user_9", 999)
    );
    assert_eq!(order.line_items[0].sku, "pro_monthly");

    let list = |active_only| {
        let mut client = app.entitlements.clone();
        async move {
            client
                .list_entitlements(ListEntitlementsRequest {
                    customer_id: "app_user_9".into(),
                    active_only,
                })
                .await
                .expect("entitlements")
                .into_inner()
                .entitlements
        }
    };
    let granted = list(true).await;
    assert_eq!(granted.len(), 1);
    assert_eq!(
        (granted[0].entitlement_id.as_str(), granted[0].active),
        ("pro", true)
    );

    // CANCELLATION turns auto-renew off: access lasts to the end of the period.
    let cancellation = PaymentEvent {
        source: "revenuecat".into(),
        customer_ref: "app_user_9".into(),
        ..payment_event("rc_2", Kind::Cancellation, "", "txn_1", 2)
    };
    assert_eq!(app.record(cancellation).await.outcome(), Outcome::Ignored);
    assert_eq!(list(true).await.len(), 1);

    let expiration = PaymentEvent {
        source: "revenuecat".into(),
        customer_ref: "app_user_9".into(),
        entitlements: vec![Entitlement {
            entitlement_id: "pro".into(),
            expire_time: Some(in_a_month),
        }],
        ..payment_event("rc_3", Kind::Expiration, "", "txn_1", 3)
    };
    assert_eq!(app.record(expiration).await.outcome(), Outcome::Applied);
    assert!(list(true).await.is_empty(), "EXPIRATION revokes");
    let all = list(false).await;
    assert_eq!((all.len(), all[0].active), (1, false));
}

async fn unknown_event_types_are_ignored_but_recorded(app: TestApp) {
    let other = PaymentEvent {
        event_type: "customer.created".into(),
        ..payment_event("evt_x", Kind::Other, "", "", 1)
    };
    let recorded = app.record(other.clone()).await;
    assert_eq!(recorded.outcome(), Outcome::Ignored);
    assert_eq!(app.record(other).await.outcome(), Outcome::Duplicate);
}

async fn malformed_events_are_refused_and_change_nothing(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    for bad in [
        PaymentEvent {
            event_id: String::new(),
            ..paid("x", &order.order_id, "pi", 3900, 1)
        },
        PaymentEvent {
            kind: 0,
            ..paid("x", &order.order_id, "pi", 3900, 1)
        },
        PaymentEvent {
            currency: "EURO".into(),
            ..paid("x", &order.order_id, "pi", 3900, 1)
        },
        PaymentEvent {
            amount: -5,
            ..paid("x", &order.order_id, "pi", 3900, 1)
        },
    ] {
        let status = app
            .events
            .clone()
            .record_payment_event(fulfil_proto::v1::RecordPaymentEventRequest { event: Some(bad) })
            .await
            .expect_err("invalid event");
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    assert_eq!(get(&app, &order.order_id).await.version, 1);
    let ledger = app
        .events
        .clone()
        .list_payment_events(ListPaymentEventsRequest::default())
        .await
        .expect("list");
    assert!(ledger.into_inner().events.is_empty());
}

async fn ledger_lists_by_order_and_outcome(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    for i in 0..5 {
        app.record(payment_event(
            &format!("evt_{i}"),
            Kind::PaymentProcessing,
            &order.order_id,
            "pi",
            i,
        ))
        .await;
    }
    app.record(paid("evt_lost", "nobody", "pi_lost", 100, 9))
        .await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .events
            .clone()
            .list_payment_events(ListPaymentEventsRequest {
                order_id: order.order_id.clone(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(
            page.events
                .into_iter()
                .map(|e| e.event.expect("event").event_id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]);

    let unmatched = app
        .events
        .clone()
        .list_payment_events(ListPaymentEventsRequest {
            outcome: Outcome::Unmatched.into(),
            include_payload: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(unmatched.len(), 1);
    assert_eq!(
        unmatched[0].event.as_ref().map(|e| e.payload.is_empty()),
        Some(false)
    );

    let reapplied = app
        .events
        .clone()
        .reapply_unmatched_events(ReapplyUnmatchedEventsRequest {})
        .await
        .expect("reapply")
        .into_inner();
    assert_eq!((reapplied.applied, reapplied.still_unmatched), (0, 1));
}
