//! gRPC messages over the size limit: RESOURCE_EXHAUSTED with ErrorInfo
//! (MESSAGE_TOO_LARGE), for a request a real client sends and for a
//! response the server would send; OUT_OF_RANGE stays CURSOR_EXPIRED's.

mod common;

use common::{Backend, TestApp, create, new_order, payment_event, reason};
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::{CancelOrderRequest, ListPaymentEventsRequest, PaymentEvent};
use fulfilment::server::DEFAULT_MAX_MESSAGE_BYTES;
use tonic::Code;
use tonic_types::StatusExt;

fn assert_too_large(status: &tonic::Status, message: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status), "MESSAGE_TOO_LARGE");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("message").map(String::as_str),
        Some(message)
    );
    assert_eq!(
        info.metadata.get("limit_bytes"),
        Some(&DEFAULT_MAX_MESSAGE_BYTES.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_limit_is_resource_exhausted() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let order = create(&app, new_order("cus_1")).await;
    let cancel = |reason: String| CancelOrderRequest {
        order_id: order.order_id.clone(),
        reason,
        expected_version: 0,
    };
    let status = app
        .client
        .clone()
        .cancel_order(cancel("r".repeat(DEFAULT_MAX_MESSAGE_BYTES + 1)))
        .await
        .expect_err("too large");
    assert_too_large(&status, "request");

    // Under the limit the message is read, and the handler judges it.
    let status = app
        .client
        .clone()
        .cancel_order(cancel("r".repeat(DEFAULT_MAX_MESSAGE_BYTES / 2)))
        .await
        .expect_err("too long a reason");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::get(&app, &order.order_id).await.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_limit_is_resource_exhausted() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    // Five events of 1 MiB each: each fits, the five together do not.
    for i in 0..5 {
        let event = PaymentEvent {
            payload: vec![b'x'; 1024 * 1024],
            ..payment_event(&format!("evt_big_{i}"), Kind::Other, "", "", i)
        };
        app.record(event).await;
    }
    let list = |page_size: i32| ListPaymentEventsRequest {
        include_payload: true,
        page_size,
        ..Default::default()
    };
    let status = app
        .events
        .clone()
        .list_payment_events(list(10))
        .await
        .expect_err("too large");
    assert_too_large(&status, "response");

    let page = app
        .events
        .clone()
        .list_payment_events(list(2))
        .await
        .expect("a smaller page fits")
        .into_inner();
    assert_eq!(page.events.len(), 2);
}
