//! OrderService over real gRPC, on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use common::{TestApp, create, new_order, reason};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::{
    CancelOrderRequest, CreateOrderRequest, FulfilOrderRequest, GetOrderRequest, LineItem,
    ListOrdersRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

storage_tests!(
    create_then_get_returns_the_same_order,
    client_chosen_id_is_kept_and_cannot_be_taken_twice,
    invalid_create_lists_every_field_and_creates_nothing,
    request_id_retry_returns_the_first_order,
    request_id_with_other_content_is_refused,
    unknown_order_is_not_found,
    list_filters_by_customer_and_state,
    list_pages_are_stable_while_orders_are_inserted,
    page_token_is_bound_to_its_filters,
    cancel_is_idempotent_and_keeps_the_reason,
    fulfil_needs_a_paid_order,
    fulfil_paid_order_then_cancel_is_refused,
    expected_version_mismatch_is_aborted,
    concurrent_creates_with_one_request_id_create_one_order,
    concurrent_fulfil_and_cancel_exactly_one_wins,
);

async fn create_then_get_returns_the_same_order(app: TestApp) {
    let created = create(&app, new_order("cus_1")).await;
    assert!(created.order_id.starts_with("ord_"));
    assert_eq!(created.state(), State::PendingPayment);
    assert_eq!(created.currency, "EUR");
    assert_eq!(created.amount_total, 3900);
    assert_eq!((created.amount_paid, created.amount_refunded), (0, 0));
    assert_eq!(created.version, 1);
    assert_eq!(
        created.metadata.get("channel").map(String::as_str),
        Some("ios")
    );
    assert_eq!(created.line_items.len(), 2);
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);

    let fetched = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: created.order_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, created);
}

async fn client_chosen_id_is_kept_and_cannot_be_taken_twice(app: TestApp) {
    let request = CreateOrderRequest {
        order_id: "checkout-42".into(),
        ..new_order("cus_1")
    };
    assert_eq!(create(&app, request.clone()).await.order_id, "checkout-42");

    let again = app
        .client
        .clone()
        .create_order(request)
        .await
        .expect_err("taken id");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(reason(&again), "ORDER_ALREADY_EXISTS");
}

async fn invalid_create_lists_every_field_and_creates_nothing(app: TestApp) {
    let bad = CreateOrderRequest {
        order_id: "has spaces".into(),
        customer_id: String::new(),
        line_items: vec![
            LineItem {
                sku: "a".into(),
                quantity: 0,
                unit_amount: 100,
            },
            LineItem {
                sku: "b".into(),
                quantity: 1,
                unit_amount: -5,
            },
        ],
        currency: "euro".into(),
        metadata: [("k".repeat(41), "v".to_owned())].into(),
        request_id: String::new(),
    };
    let status = app
        .client
        .clone()
        .create_order(bad)
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let fields: HashSet<String> = common::violated_fields(&status).into_iter().collect();
    let expected: HashSet<String> = [
        "order_id",
        "customer_id",
        "currency",
        "line_items[0].quantity",
        "line_items[1].unit_amount",
        "metadata",
    ]
    .map(String::from)
    .into();
    assert_eq!(fields, expected);

    let empty = CreateOrderRequest {
        line_items: vec![],
        ..new_order("cus_1")
    };
    let status = app
        .client
        .clone()
        .create_order(empty)
        .await
        .expect_err("no items");
    assert_eq!(status.code(), Code::InvalidArgument);

    let overflow = CreateOrderRequest {
        line_items: vec![LineItem {
            sku: "gold".into(),
            quantity: 1_000_000,
            unit_amount: i64::MAX / 10,
        }],
        ..new_order("cus_1")
    };
    let status = app
        .client
        .clone()
        .create_order(overflow)
        .await
        .expect_err("overflow");
    assert_eq!(status.code(), Code::InvalidArgument);

    let listed = app
        .client
        .clone()
        .list_orders(ListOrdersRequest::default())
        .await
        .expect("list");
    assert!(
        listed.into_inner().orders.is_empty(),
        "a refused request must create nothing"
    );
}

async fn request_id_retry_returns_the_first_order(app: TestApp) {
    let request = CreateOrderRequest {
        request_id: "9b1f6c1e-req".into(),
        ..new_order("cus_1")
    };
    let first = create(&app, request.clone()).await;
    let retry = create(
        &app,
        CreateOrderRequest {
            currency: "EUR".into(),
            ..request
        },
    )
    .await;
    assert_eq!(
        retry, first,
        "a retry (currency case aside) returns the original order"
    );
    let listed = app
        .client
        .clone()
        .list_orders(ListOrdersRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.into_inner().orders.len(), 1);
}

async fn request_id_with_other_content_is_refused(app: TestApp) {
    let request = CreateOrderRequest {
        request_id: "req-1".into(),
        ..new_order("cus_1")
    };
    create(&app, request.clone()).await;
    let mut other = request;
    other.line_items[0].quantity = 3;
    let status = app
        .client
        .clone()
        .create_order(other)
        .await
        .expect_err("reused request_id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
}

async fn unknown_order_is_not_found(app: TestApp) {
    let status = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "ORDER_NOT_FOUND");
    assert_eq!(
        status
            .get_details_error_info()
            .and_then(|i| i.metadata.get("order_id").cloned())
            .as_deref(),
        Some("nope")
    );

    let status = app
        .client
        .clone()
        .cancel_order(CancelOrderRequest {
            order_id: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let status = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: String::new(),
        })
        .await
        .expect_err("empty id");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn list_filters_by_customer_and_state(app: TestApp) {
    let a1 = create(&app, new_order("alice")).await;
    let a2 = create(&app, new_order("alice")).await;
    let b1 = create(&app, new_order("bob")).await;
    app.client
        .clone()
        .cancel_order(CancelOrderRequest {
            order_id: a1.order_id.clone(),
            ..Default::default()
        })
        .await
        .expect("cancel");

    let ids = |orders: Vec<fulfil_proto::v1::Order>| {
        orders.into_iter().map(|o| o.order_id).collect::<Vec<_>>()
    };
    let list = |request: ListOrdersRequest| {
        let mut client = app.client.clone();
        async move {
            client
                .list_orders(request)
                .await
                .expect("list")
                .into_inner()
        }
    };

    let alice = list(ListOrdersRequest {
        customer_id: "alice".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(alice.orders),
        [a2.order_id.clone(), a1.order_id.clone()],
        "newest first"
    );

    let cancelled = list(ListOrdersRequest {
        states: vec![State::Cancelled.into()],
        ..Default::default()
    })
    .await;
    assert_eq!(ids(cancelled.orders), [a1.order_id]);

    let pending_bob = list(ListOrdersRequest {
        customer_id: "bob".into(),
        states: vec![State::PendingPayment.into(), State::Paid.into()],
        ..Default::default()
    })
    .await;
    assert_eq!(ids(pending_bob.orders), [b1.order_id]);

    let status = app
        .client
        .clone()
        .list_orders(ListOrdersRequest {
            states: vec![0],
            ..Default::default()
        })
        .await
        .expect_err("unspecified state");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn list_pages_are_stable_while_orders_are_inserted(app: TestApp) {
    let mut expected = Vec::new();
    for _ in 0..7 {
        expected.push(create(&app, new_order("carol")).await.order_id);
    }
    expected.reverse();

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_orders(ListOrdersRequest {
                customer_id: "carol".into(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.orders.len() <= 3);
        seen.extend(page.orders.into_iter().map(|o| o.order_id));
        // New orders arriving mid-listing must not shift later pages.
        create(&app, new_order("carol")).await;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected, "every order exactly once, in order");
}

async fn page_token_is_bound_to_its_filters(app: TestApp) {
    for _ in 0..3 {
        create(&app, new_order("dave")).await;
    }
    let page = app
        .client
        .clone()
        .list_orders(ListOrdersRequest {
            customer_id: "dave".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let status = app
        .client
        .clone()
        .list_orders(ListOrdersRequest {
            customer_id: "erin".into(),
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .expect_err("other filter");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = app
        .client
        .clone()
        .list_orders(ListOrdersRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .expect_err("garbage token");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = app
        .client
        .clone()
        .list_orders(ListOrdersRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page size");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn cancel_is_idempotent_and_keeps_the_reason(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let cancel = CancelOrderRequest {
        order_id: order.order_id.clone(),
        reason: "customer changed mind".into(),
        expected_version: 1,
    };
    let cancelled = app
        .client
        .clone()
        .cancel_order(cancel.clone())
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state(), State::Cancelled);
    assert_eq!(cancelled.version, 2);
    assert_eq!(cancelled.cancel_reason, "customer changed mind");
    assert!(cancelled.cancel_time.is_some());

    // The same call again (a retry, even with the now-stale expected_version)
    // succeeds and changes nothing.
    let again = app
        .client
        .clone()
        .cancel_order(cancel)
        .await
        .expect("repeat cancel")
        .into_inner();
    assert_eq!(again, cancelled);
    assert_eq!(app.feed_versions(&order.order_id).await, [1, 2]);
}

async fn fulfil_needs_a_paid_order(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    let status = app
        .client
        .clone()
        .fulfil_order(FulfilOrderRequest {
            order_id: order.order_id.clone(),
            expected_version: 0,
        })
        .await
        .expect_err("unpaid");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "ORDER_NOT_PAID");
    let unchanged = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: order.order_id,
        })
        .await
        .expect("get");
    assert_eq!(unchanged.into_inner().version, 1);
}

async fn fulfil_paid_order_then_cancel_is_refused(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    app.mark_paid(&order.order_id).await;
    let fulfil = FulfilOrderRequest {
        order_id: order.order_id.clone(),
        expected_version: 2,
    };
    let fulfilled = app
        .client
        .clone()
        .fulfil_order(fulfil.clone())
        .await
        .expect("fulfil")
        .into_inner();
    assert_eq!(fulfilled.state(), State::Fulfilled);
    assert_eq!(fulfilled.version, 3);
    assert!(fulfilled.fulfil_time.is_some());
    let again = app
        .client
        .clone()
        .fulfil_order(fulfil)
        .await
        .expect("repeat fulfil")
        .into_inner();
    assert_eq!(again, fulfilled);

    let status = app
        .client
        .clone()
        .cancel_order(CancelOrderRequest {
            order_id: order.order_id,
            ..Default::default()
        })
        .await
        .expect_err("fulfilled");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "ORDER_ALREADY_FULFILLED");
}

async fn expected_version_mismatch_is_aborted(app: TestApp) {
    let order = create(&app, new_order("cus_1")).await;
    app.mark_paid(&order.order_id).await;
    let status = app
        .client
        .clone()
        .fulfil_order(FulfilOrderRequest {
            order_id: order.order_id.clone(),
            expected_version: 1,
        })
        .await
        .expect_err("stale version");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(reason(&status), "VERSION_MISMATCH");
    let current = app
        .client
        .clone()
        .get_order(GetOrderRequest {
            order_id: order.order_id,
        })
        .await
        .expect("get");
    assert_eq!(
        current.into_inner().state(),
        State::Paid,
        "an aborted call changes nothing"
    );
}

async fn concurrent_creates_with_one_request_id_create_one_order(app: TestApp) {
    let request = CreateOrderRequest {
        request_id: "double-tap".into(),
        ..new_order("cus_1")
    };
    let calls = (0..32).map(|_| {
        let mut client = app.client.clone();
        let request = request.clone();
        tokio::spawn(async move {
            client
                .create_order(request)
                .await
                .map(|r| r.into_inner().order_id)
        })
    });
    let mut ids = HashSet::new();
    for call in calls {
        ids.insert(call.await.expect("join").expect("create"));
    }
    assert_eq!(ids.len(), 1, "every caller gets the same order");
    let listed = app
        .client
        .clone()
        .list_orders(ListOrdersRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.into_inner().orders.len(), 1);
}

async fn concurrent_fulfil_and_cancel_exactly_one_wins(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..16 {
        let order = create(&app, new_order("cus_1")).await;
        app.mark_paid(&order.order_id).await;
        orders.push(order.order_id);
    }
    let mut races = Vec::new();
    for order_id in &orders {
        let mut fulfil_client = app.client.clone();
        let mut cancel_client = app.client.clone();
        let fulfil = FulfilOrderRequest {
            order_id: order_id.clone(),
            expected_version: 0,
        };
        let cancel = CancelOrderRequest {
            order_id: order_id.clone(),
            ..Default::default()
        };
        races.push((
            order_id.clone(),
            tokio::spawn(async move { fulfil_client.fulfil_order(fulfil).await }),
            tokio::spawn(async move { cancel_client.cancel_order(cancel).await }),
        ));
    }
    for (order_id, fulfil, cancel) in races {
        let fulfil = fulfil.await.expect("join");
        let cancel = cancel.await.expect("join");
        let (winner, loser) = match (fulfil, cancel) {
            (Ok(won), Err(lost)) => {
                assert_eq!(reason(&lost), "ORDER_ALREADY_FULFILLED");
                (won.into_inner(), lost)
            }
            (Err(lost), Ok(won)) => {
                assert_eq!(reason(&lost), "ORDER_CANCELLED");
                (won.into_inner(), lost)
            }
            (f, c) => panic!("exactly one must win: fulfil {f:?}, cancel {c:?}"),
        };
        assert_eq!(loser.code(), Code::FailedPrecondition);
        assert_eq!(winner.version, 3);
        let stored = app
            .client
            .clone()
            .get_order(GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .expect("get");
        assert_eq!(
            stored.into_inner(),
            winner,
            "the winner's result is what is stored"
        );
        // Created (1), paid (2), then only the winning change (3).
        assert_eq!(
            app.feed_versions(&order_id).await,
            [1, 2, 3],
            "no lost or doubled update"
        );
    }
}
