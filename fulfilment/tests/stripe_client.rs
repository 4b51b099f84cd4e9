//! The Stripe client against a fake Stripe on port 0: retries with the same
//! Idempotency-Key, refusals, timeouts, ephemeral keys and Checkout
//! Sessions (which localstripe lacks, so they are covered here).

mod fake_stripe;

use std::time::Duration;

use fake_stripe::FakeStripe;
use fulfilment::checkout::stripe::{SecretKey, StripeClient, StripeError};
use serde_json::json;

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_idempotency_key() {
    let fake = FakeStripe::start().await;
    fake.fail_next(
        500,
        json!({"error": {"type": "api_error", "message": "boom"}}),
        2,
    );
    let intent = fake
        .client()
        .create_payment_intent(
            &form(&[("amount", "3900"), ("currency", "eur")]),
            "fulfil-ord_1-1-payment-intent",
        )
        .await
        .expect("created after retries");
    assert!(intent.id.starts_with("pi_"));
    let posts = fake.seen_at("POST", "/v1/payment_intents");
    assert_eq!(posts.len(), 3);
    for post in &posts {
        assert_eq!(
            post.idempotency_key.as_deref(),
            Some("fulfil-ord_1-1-payment-intent")
        );
        assert_eq!(post.stripe_version.as_deref(), Some("2024-06-20"));
        assert_eq!(post.field("amount"), Some("3900"));
    }
    assert_eq!(fake.intent_count(), 1);
}

#[tokio::test]
async fn the_same_key_gets_the_same_payment_intent() {
    let fake = FakeStripe::start().await;
    let client = fake.client();
    let body = form(&[("amount", "100"), ("currency", "eur")]);
    let first = client
        .create_payment_intent(&body, "k1")
        .await
        .expect("first");
    let again = client
        .create_payment_intent(&body, "k1")
        .await
        .expect("again");
    assert_eq!(first, again);
    assert_eq!(fake.intent_count(), 1);
}

#[tokio::test]
async fn failures_beyond_the_retries_are_unavailable() {
    let fake = FakeStripe::start().await;
    fake.set_down(Some(503));
    let err = fake
        .client()
        .create_customer("user_1", "fulfil-customer-user_1")
        .await
        .expect_err("down");
    assert!(matches!(err, StripeError::Unavailable(_)), "{err:?}");
    // The first attempt and two retries.
    assert_eq!(fake.seen_at("POST", "/v1/customers").len(), 3);
}

#[tokio::test]
async fn rate_limits_are_retried() {
    let fake = FakeStripe::start().await;
    fake.fail_next(
        429,
        json!({"error": {"type": "invalid_request_error", "code": "rate_limit"}}),
        1,
    );
    let id = fake
        .client()
        .create_customer("user_1", "fulfil-customer-user_1")
        .await
        .expect("after a retry");
    assert!(id.starts_with("cus_"));
    assert_eq!(fake.seen_at("POST", "/v1/customers").len(), 2);
}

#[tokio::test]
async fn refusals_are_not_retried_and_keep_stripes_code() {
    let fake = FakeStripe::start().await;
    fake.fail_next(
        402,
        json!({"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}),
        1,
    );
    let err = fake
        .client()
        .create_payment_intent(&form(&[("amount", "100")]), "k")
        .await
        .expect_err("refused");
    match err {
        StripeError::Refused {
            status,
            kind,
            code,
            message,
        } => {
            assert_eq!(status, 402);
            assert_eq!(kind, "card_error");
            assert_eq!(code.as_deref(), Some("card_declined"));
            assert_eq!(message, "Your card was declined.");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.seen_at("POST", "/v1/payment_intents").len(), 1);
}

#[tokio::test]
async fn a_wrong_key_is_a_credentials_error_that_does_not_show_the_key() {
    let fake = FakeStripe::start().await;
    let mut config = fake.config();
    config.secret_key = SecretKey::new("sk_test_wrong_secret_value");
    let err = StripeClient::new(config)
        .expect("client")
        .create_customer("u", "k")
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StripeError::Credentials { status: 401 }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong_secret"));
}

#[tokio::test]
async fn a_slow_stripe_times_out_and_is_unavailable() {
    let fake = FakeStripe::start().await;
    fake.set_delay(Some(Duration::from_secs(5)));
    let mut config = fake.config();
    config.request_timeout = Duration::from_millis(200);
    config.max_retries = 1;
    let started = std::time::Instant::now();
    let err = StripeClient::new(config)
        .expect("client")
        .payment_intent("pi_1")
        .await
        .expect_err("timed out");
    assert!(matches!(err, StripeError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.seen_at("GET", "/v1/payment_intents/pi_1").len(), 2);
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut config = config_at(addr);
    config.max_retries = 0;
    let err = StripeClient::new(config)
        .expect("client")
        .payment_intent("pi_1")
        .await
        .expect_err("nothing there");
    assert!(matches!(err, StripeError::Unavailable(_)), "{err:?}");
}

fn config_at(addr: std::net::SocketAddr) -> fulfilment::checkout::StripeConfig {
    let mut config = fulfilment::checkout::StripeConfig::new(
        SecretKey::new(fake_stripe::SECRET_KEY),
        "pk".into(),
    );
    config.base_url = format!("http://{addr}");
    config.connect_timeout = Duration::from_millis(500);
    config
}

#[tokio::test]
async fn ephemeral_keys_carry_the_mobile_sdks_version() {
    let fake = FakeStripe::start().await;
    let secret = fake
        .client()
        .create_ephemeral_key("cus_1", "2020-08-27")
        .await
        .expect("ephemeral key");
    assert!(secret.starts_with("ek_test_"));
    let seen = fake.seen_at("POST", "/v1/ephemeral_keys");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].stripe_version.as_deref(), Some("2020-08-27"));
    assert_eq!(seen[0].field("customer"), Some("cus_1"));
    assert!(seen[0].idempotency_key.is_some());
}

#[tokio::test]
async fn checkout_sessions_are_created_read_and_expired() {
    let fake = FakeStripe::start().await;
    let client = fake.client();
    let session = client
        .create_checkout_session(
            &form(&[
                ("mode", "payment"),
                ("client_reference_id", "ord_1"),
                ("success_url", "https://shop.example/ok"),
            ]),
            "fulfil-ord_1-1-checkout-session",
        )
        .await
        .expect("session");
    assert_eq!(session.status, "open");
    assert!(session.url.is_some());
    assert_eq!(
        client.checkout_session(&session.id).await.expect("read"),
        session
    );
    let expired = client
        .expire_checkout_session(&session.id, "fulfil-ord_1-1-checkout-session-cancel")
        .await
        .expect("expire");
    assert_eq!(expired.status, "expired");
    assert_eq!(expired.url, None);
}
