//! CheckoutService over real gRPC against a fake Stripe, on SQLite and
//! PostgreSQL: idempotency under concurrency, cancellation, the catalogue
//! and who may check out what.

mod common;
mod fake_stripe;

use common::security::{self, Signer, bearer, claims, sign};
use common::{Backend, Security, TestApp, create, get, new_order, payment_event, reason};
use fake_stripe::FakeStripe;
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::{
    CancelOrderRequest, CatalogueOrder, Checkout, CheckoutFlow, CheckoutItem,
    CreateCheckoutRequest, create_checkout_request::Target,
};
use fulfilment::checkout::{Catalogue, CatalogueHandle};
use tonic::Code;
use tonic_types::StatusExt;

const CATALOGUE: &str = r#"
[products.tee]
name = "T-shirt"
unit_amount = 1950
currency = "eur"
stripe_price = "price_tee"

[products.mug]
name = "Mug"
unit_amount = 900
currency = "eur"
"#;

/// An app with checkout against a fresh fake Stripe (authorization off).
async fn spawn(backend: Backend) -> Option<(TestApp, FakeStripe)> {
    spawn_with(backend, false).await
}

async fn spawn_with(backend: Backend, auth: bool) -> Option<(TestApp, FakeStripe)> {
    let fake = FakeStripe::start().await;
    let mut setup = fake.setup();
    setup.catalogue = Some(CatalogueHandle::fixed(
        Catalogue::parse(CATALOGUE).expect("catalogue"),
    ));
    setup.return_urls.allowed_prefixes = vec!["https://shop.example/".into()];
    let security = Security {
        checkout: setup,
        auth: if auth {
            security::authenticator()
        } else {
            Default::default()
        },
        ..Security::default()
    };
    let app = TestApp::spawn_secured(backend, security).await?;
    Some((app, fake))
}

macro_rules! checkout_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (app, fake) = super::spawn(super::Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app, fake).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((app, fake)) = super::spawn(super::Backend::Postgres).await else { return };
                    super::$name(app, fake).await;
                }
            )*
        }
    };
}

checkout_tests!(
    payment_sheet_gets_a_payment_intent_a_customer_and_an_ephemeral_key,
    a_repeated_checkout_returns_the_same_payment,
    concurrent_checkouts_of_one_order_make_one_attempt_and_one_payment_intent,
    concurrent_first_checkouts_of_one_customer_make_one_stripe_customer,
    cancel_order_cancels_the_payment_intent,
    cancel_while_stripe_is_down_is_unavailable_and_changes_nothing,
    a_payment_cancelled_at_stripe_starts_a_new_attempt,
    hosted_checkout_returns_the_session_url,
    return_urls_are_checked,
    stripe_refusals_are_failed_precondition_with_stripes_code,
    an_event_naming_only_the_payment_intent_finds_its_order,
    catalogue_items_become_an_order_at_catalogue_prices,
    paid_orders_cannot_be_checked_out,
);

fn sheet(order_id: &str) -> CreateCheckoutRequest {
    CreateCheckoutRequest {
        target: Some(Target::OrderId(order_id.to_owned())),
        flow: CheckoutFlow::StripePaymentSheet.into(),
        stripe_api_version: "2020-08-27".into(),
        ..Default::default()
    }
}

fn hosted(order_id: &str) -> CreateCheckoutRequest {
    CreateCheckoutRequest {
        target: Some(Target::OrderId(order_id.to_owned())),
        flow: CheckoutFlow::StripeCheckoutSession.into(),
        success_url: "https://shop.example/done".into(),
        cancel_url: "https://shop.example/cart".into(),
        ..Default::default()
    }
}

async fn try_checkout(
    app: &TestApp,
    request: impl tonic::IntoRequest<CreateCheckoutRequest>,
) -> Result<Checkout, tonic::Status> {
    Ok(app
        .checkout
        .clone()
        .create_checkout(request)
        .await?
        .into_inner())
}

async fn checkout(app: &TestApp, request: CreateCheckoutRequest) -> Checkout {
    try_checkout(app, request).await.expect("checkout")
}

async fn cancel(app: &TestApp, order_id: &str) -> Result<fulfil_proto::v1::Order, tonic::Status> {
    Ok(app
        .client
        .clone()
        .cancel_order(CancelOrderRequest {
            order_id: order_id.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner())
}

async fn payment_sheet_gets_a_payment_intent_a_customer_and_an_ephemeral_key(
    app: TestApp,
    fake: FakeStripe,
) {
    let order = create(&app, new_order("user_42")).await;
    let out = checkout(&app, sheet(&order.order_id)).await;
    assert_eq!(out.attempt, 1);
    assert!(out.provider_payment_id.starts_with("pi_"));
    assert!(out.client_secret.starts_with(&out.provider_payment_id));
    assert_eq!(out.publishable_key, fake_stripe::PUBLISHABLE_KEY);
    assert!(out.provider_customer_id.starts_with("cus_"));
    assert!(out.ephemeral_key_secret.starts_with("ek_test_"));
    assert_eq!(out.order.map(|o| o.order_id), Some(order.order_id.clone()));

    let created = fake.seen_at("POST", "/v1/payment_intents");
    assert_eq!(created.len(), 1);
    let pi = &created[0];
    assert_eq!(
        pi.idempotency_key.as_deref(),
        Some(format!("fulfil-{}-1-payment-intent", order.order_id).as_str())
    );
    assert_eq!(pi.field("amount"), Some("3900"));
    assert_eq!(pi.field("currency"), Some("eur"));
    assert_eq!(
        pi.field("metadata[order_id]"),
        Some(order.order_id.as_str())
    );
    assert_eq!(pi.field("metadata[customer_id]"), Some("user_42"));
    assert_eq!(pi.field("automatic_payment_methods[enabled]"), Some("true"));
    assert_eq!(
        pi.field("customer"),
        Some(out.provider_customer_id.as_str())
    );
    let customers = fake.seen_at("POST", "/v1/customers");
    assert_eq!(
        customers[0].idempotency_key.as_deref(),
        Some("fulfil-customer-user_42")
    );
    let keys = fake.seen_at("POST", "/v1/ephemeral_keys");
    assert_eq!(keys[0].stripe_version.as_deref(), Some("2020-08-27"));
    assert_eq!(
        keys[0].field("customer"),
        Some(out.provider_customer_id.as_str())
    );
}

async fn a_repeated_checkout_returns_the_same_payment(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let first = checkout(&app, sheet(&order.order_id)).await;
    let again = checkout(&app, sheet(&order.order_id)).await;
    assert_eq!(again.provider_payment_id, first.provider_payment_id);
    assert_eq!(again.client_secret, first.client_secret);
    assert_eq!(again.attempt, 1);
    assert_eq!(fake.intent_count(), 1);
    assert_eq!(fake.customer_count(), 1);
    // Another flow while this one is open is refused.
    let err = try_checkout(&app, hosted(&order.order_id))
        .await
        .expect_err("other flow");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CHECKOUT_IN_PROGRESS");
}

async fn concurrent_checkouts_of_one_order_make_one_attempt_and_one_payment_intent(
    app: TestApp,
    fake: FakeStripe,
) {
    let order = create(&app, new_order("user_42")).await;
    let calls = (0..16).map(|_| {
        let mut client = app.checkout.clone();
        let request = sheet(&order.order_id);
        async move { client.create_checkout(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| r.expect("checkout").into_inner().provider_payment_id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(fake.intent_count(), 1);
    let attempts = app.db.attempts(&order.order_id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].provider_payment_id.as_ref(), ids.iter().next());
}

async fn concurrent_first_checkouts_of_one_customer_make_one_stripe_customer(
    app: TestApp,
    fake: FakeStripe,
) {
    let mut orders = Vec::new();
    for _ in 0..8 {
        orders.push(create(&app, new_order("user_7")).await.order_id);
    }
    let calls = orders.iter().map(|order_id| {
        let mut client = app.checkout.clone();
        let request = sheet(order_id);
        async move { client.create_checkout(request).await }
    });
    let customers: std::collections::HashSet<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("checkout").into_inner().provider_customer_id)
        .collect();
    assert_eq!(customers.len(), 1, "{customers:?}");
    assert_eq!(fake.customer_count(), 1);
    assert_eq!(fake.intent_count(), 8);
    let stored = app
        .db
        .provider_customer("user_7", fulfilment::checkout::PaymentProvider::Stripe)
        .await
        .expect("read");
    assert_eq!(stored.as_ref(), customers.iter().next());
}

async fn cancel_order_cancels_the_payment_intent(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let out = checkout(&app, sheet(&order.order_id)).await;
    let cancelled = cancel(&app, &order.order_id).await.expect("cancel");
    assert_eq!(cancelled.state(), State::Cancelled);
    let intent = fake.intent(&out.provider_payment_id).expect("intent");
    assert_eq!(intent["status"], "canceled");
    let cancels = fake.seen_at(
        "POST",
        &format!("/v1/payment_intents/{}/cancel", out.provider_payment_id),
    );
    assert_eq!(
        cancels[0].idempotency_key.as_deref(),
        Some(format!("fulfil-{}-1-payment-intent-cancel", order.order_id).as_str())
    );
    let attempts = app.db.attempts(&order.order_id).await.expect("attempts");
    assert_eq!(
        attempts[0].state,
        fulfilment::checkout::AttemptState::Cancelled
    );
    let err = try_checkout(&app, sheet(&order.order_id))
        .await
        .expect_err("cancelled order");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ORDER_CANCELLED");
    // Cancelling again changes nothing and calls Stripe no more.
    let calls = fake.seen().len();
    cancel(&app, &order.order_id).await.expect("cancel again");
    assert_eq!(fake.seen().len(), calls);
}

async fn cancel_while_stripe_is_down_is_unavailable_and_changes_nothing(
    app: TestApp,
    fake: FakeStripe,
) {
    let order = create(&app, new_order("user_42")).await;
    let out = checkout(&app, sheet(&order.order_id)).await;
    fake.set_down(Some(503));
    let err = cancel(&app, &order.order_id)
        .await
        .expect_err("stripe down");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "PROVIDER_UNAVAILABLE");
    assert_eq!(
        get(&app, &order.order_id).await.state(),
        State::PendingPayment
    );
    let open = app.db.open_attempt(&order.order_id).await.expect("read");
    assert_eq!(
        open.and_then(|a| a.provider_payment_id),
        Some(out.provider_payment_id.clone())
    );
    // Back up: the retry cancels both.
    fake.set_down(None);
    cancel(&app, &order.order_id).await.expect("cancel");
    assert_eq!(
        fake.intent(&out.provider_payment_id).expect("pi")["status"],
        "canceled"
    );
}

async fn a_payment_cancelled_at_stripe_starts_a_new_attempt(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let first = checkout(&app, sheet(&order.order_id)).await;
    fake.set_intent_status(&first.provider_payment_id, "canceled");
    let second = checkout(&app, sheet(&order.order_id)).await;
    assert_eq!(second.attempt, 2);
    assert_ne!(second.provider_payment_id, first.provider_payment_id);
    let keys: Vec<Option<String>> = fake
        .seen_at("POST", "/v1/payment_intents")
        .into_iter()
        .map(|s| s.idempotency_key)
        .collect();
    assert_eq!(
        keys,
        [
            Some(format!("fulfil-{}-1-payment-intent", order.order_id)),
            Some(format!("fulfil-{}-2-payment-intent", order.order_id)),
        ]
    );
    let states: Vec<_> = app
        .db
        .attempts(&order.order_id)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| a.state)
        .collect();
    use fulfilment::checkout::AttemptState::{Cancelled, Open};
    assert_eq!(states, [Cancelled, Open]);
}

async fn hosted_checkout_returns_the_session_url(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let out = checkout(&app, hosted(&order.order_id)).await;
    assert!(out.provider_payment_id.starts_with("cs_test_"));
    assert!(out.url.starts_with("https://checkout.stripe.test/"));
    assert!(out.client_secret.is_empty() && out.ephemeral_key_secret.is_empty());
    let seen = &fake.seen_at("POST", "/v1/checkout/sessions")[0];
    assert_eq!(seen.field("mode"), Some("payment"));
    assert_eq!(
        seen.field("client_reference_id"),
        Some(order.order_id.as_str())
    );
    assert_eq!(
        seen.field("metadata[order_id]"),
        Some(order.order_id.as_str())
    );
    assert_eq!(
        seen.field("payment_intent_data[metadata][order_id]"),
        Some(order.order_id.as_str())
    );
    assert_eq!(seen.field("success_url"), Some("https://shop.example/done"));
    // Not in the catalogue: inline prices from the order.
    assert_eq!(
        seen.field("line_items[0][price_data][unit_amount]"),
        Some("1500")
    );
    assert_eq!(seen.field("line_items[0][quantity]"), Some("2"));
    assert_eq!(
        seen.idempotency_key.as_deref(),
        Some(format!("fulfil-{}-1-checkout-session", order.order_id).as_str())
    );
    let again = checkout(&app, hosted(&order.order_id)).await;
    assert_eq!(again.url, out.url);
    // CancelOrder expires the session.
    cancel(&app, &order.order_id).await.expect("cancel");
    assert_eq!(
        fake.seen_at(
            "POST",
            &format!("/v1/checkout/sessions/{}/expire", out.provider_payment_id)
        )
        .len(),
        1
    );
}

async fn return_urls_are_checked(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let err = try_checkout(
        &app,
        CreateCheckoutRequest {
            success_url: "https://evil.example/done".into(),
            cancel_url: "http://shop.example/cart".into(),
            ..hosted(&order.order_id)
        },
    )
    .await
    .expect_err("bad urls");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&err), ["success_url", "cancel_url"]);
    let err = try_checkout(
        &app,
        CreateCheckoutRequest {
            flow: CheckoutFlow::PaypalOrder.into(),
            ..sheet(&order.order_id)
        },
    )
    .await
    .expect_err("paypal");
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(reason(&err), "CHECKOUT_FLOW_UNAVAILABLE");
    assert!(fake.seen().is_empty());
    assert!(
        app.db
            .attempts(&order.order_id)
            .await
            .expect("read")
            .is_empty()
    );
}

async fn stripe_refusals_are_failed_precondition_with_stripes_code(app: TestApp, fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    // The customer is created; the PaymentIntent is refused.
    checkout(&app, sheet(&order.order_id)).await;
    let other = create(&app, new_order("user_42")).await;
    fake.fail_next(
        400,
        serde_json::json!({"error": {"type": "invalid_request_error", "code": "amount_too_small",
            "message": "Amount must be at least 50 cents"}}),
        1,
    );
    let err = try_checkout(&app, sheet(&other.order_id))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "PROVIDER_REFUSED");
    assert_eq!(
        info.metadata.get("code").map(String::as_str),
        Some("amount_too_small")
    );
    assert!(!format!("{err:?}").contains(fake_stripe::SECRET_KEY));
    // The attempt stays open with no payment: the next call completes it
    // with the same key.
    let out = checkout(&app, sheet(&other.order_id)).await;
    assert_eq!(out.attempt, 1);
}

async fn an_event_naming_only_the_payment_intent_finds_its_order(app: TestApp, _fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    let out = checkout(&app, sheet(&order.order_id)).await;
    let event = fulfil_proto::v1::PaymentEvent {
        amount: 3900,
        ..payment_event(
            "evt_1",
            Kind::PaymentSucceeded,
            "",
            &out.provider_payment_id,
            1,
        )
    };
    let recorded = app.record(event).await;
    assert_eq!(recorded.order.map(|o| o.state()), Some(State::Paid));
}

async fn catalogue_items_become_an_order_at_catalogue_prices(app: TestApp, fake: FakeStripe) {
    let out = checkout(
        &app,
        CreateCheckoutRequest {
            target: Some(Target::Catalogue(CatalogueOrder {
                customer_id: "user_9".into(),
                items: vec![
                    CheckoutItem {
                        product_id: "tee".into(),
                        quantity: 2,
                    },
                    CheckoutItem {
                        product_id: "mug".into(),
                        quantity: 1,
                    },
                ],
                order_id: String::new(),
            })),
            request_id: "req-cat-1".into(),
            ..hosted("")
        },
    )
    .await;
    let order = out.order.expect("order");
    assert_eq!(order.customer_id, "user_9");
    assert_eq!(order.amount_total, 2 * 1950 + 900);
    assert_eq!(order.currency, "EUR");
    let seen = &fake.seen_at("POST", "/v1/checkout/sessions")[0];
    assert_eq!(seen.field("line_items[0][price]"), Some("price_tee"));
    assert_eq!(
        seen.field("line_items[1][price_data][unit_amount]"),
        Some("900")
    );
    let err = try_checkout(
        &app,
        CreateCheckoutRequest {
            target: Some(Target::Catalogue(CatalogueOrder {
                customer_id: "user_9".into(),
                items: vec![CheckoutItem {
                    product_id: "yacht".into(),
                    quantity: 1,
                }],
                order_id: String::new(),
            })),
            ..sheet("")
        },
    )
    .await
    .expect_err("unknown product");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&err),
        ["catalogue.items[0].product_id"]
    );
}

async fn paid_orders_cannot_be_checked_out(app: TestApp, _fake: FakeStripe) {
    let order = create(&app, new_order("user_42")).await;
    app.mark_paid(&order.order_id).await;
    let err = try_checkout(&app, sheet(&order.order_id))
        .await
        .expect_err("paid");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ORDER_NOT_PAYABLE");
}

#[tokio::test]
async fn without_stripe_checkout_is_not_configured() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let order = create(&app, new_order("user_42")).await;
    let err = try_checkout(&app, sheet(&order.order_id))
        .await
        .expect_err("not configured");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CHECKOUT_NOT_CONFIGURED");
    // CancelOrder works as before.
    cancel(&app, &order.order_id).await.expect("cancel");
}

#[tokio::test]
async fn app_clients_check_out_only_for_themselves() {
    let (app, _fake) = spawn_with(Backend::Sqlite, true).await.expect("app");
    let alice = sign(Signer::Hs256, &claims("alice", ""));
    let service = sign(Signer::Hs256, &claims("shop", "orders:write"));
    let catalogue = |customer_id: &str| CreateCheckoutRequest {
        target: Some(Target::Catalogue(CatalogueOrder {
            customer_id: customer_id.into(),
            items: vec![CheckoutItem {
                product_id: "mug".into(),
                quantity: 3,
            }],
            order_id: String::new(),
        })),
        ..sheet("")
    };
    // Her own catalogue order, customer left empty: hers.
    let mine = try_checkout(&app, bearer(catalogue(""), &alice))
        .await
        .expect("own checkout");
    let order = mine.order.expect("order");
    assert_eq!(order.customer_id, "alice");
    assert_eq!(order.amount_total, 2700);
    // Again on her order by id.
    try_checkout(&app, bearer(sheet(&order.order_id), &alice))
        .await
        .expect("own order");
    // Not for bob, neither by catalogue nor by order.
    let err = try_checkout(&app, bearer(catalogue("bob"), &alice))
        .await
        .expect_err("bob");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "CUSTOMER_MISMATCH");
    let bobs = app
        .client
        .clone()
        .create_order(bearer(new_order("bob"), &service))
        .await
        .expect("service creates")
        .into_inner();
    for order_id in [bobs.order_id.as_str(), "ord_missing"] {
        let err = try_checkout(&app, bearer(sheet(order_id), &alice))
            .await
            .expect_err("not hers");
        assert_eq!(reason(&err), "CUSTOMER_MISMATCH");
    }
    // A service with orders:write checks out anyone's.
    try_checkout(&app, bearer(sheet(&bobs.order_id), &service))
        .await
        .expect("service checkout");
    // App clients still cannot create orders with their own prices.
    let err = app
        .client
        .clone()
        .create_order(bearer(new_order("alice"), &alice))
        .await
        .expect_err("no prices from apps");
    assert_eq!(err.code(), Code::PermissionDenied);
}
