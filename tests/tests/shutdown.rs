//! Graceful shutdown under load, with the real binaries: SIGTERM to the
//! adapter or to the fulfilment service while webhooks are arriving. Every
//! webhook answered 2xx is recorded, and every one that was not is applied
//! exactly once when the provider retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use adapter::verify::sign;
use fulfil_e2e::{Process, start_adapter, start_fulfilment};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, GetOrderRequest, LineItem, ListPaymentEventsRequest};
use tokio::sync::RwLock;

const SECRET: &str = "whsec_shutdown_e2e";
const ORDERS: usize = 120;
const AMOUNT: i64 = 1950;

fn sources() -> String {
    format!("[sources.stripe]\nkind = \"stripe\"\nsecrets = [\"{SECRET}\"]\n")
}

fn order_id(i: usize) -> String {
    format!("order-sd-{i}")
}

/// Sends order `i`'s payment once to the adapter at `adapter`; the status,
/// or None when the connection failed.
async fn deliver(http: &reqwest::Client, adapter: &str, i: usize) -> Option<u16> {
    let body = serde_json::to_vec(&fulfil_e2e::stripe_payment_succeeded(
        &format!("evt_sd_{i}"),
        &order_id(i),
        AMOUNT,
    ))
    .expect("json");
    let header = sign::stripe_header(SECRET, fulfil_e2e::unix_now(), &body);
    http.post(format!("http://{adapter}/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn create_orders(grpc: &str) {
    let mut client = OrderServiceClient::connect(grpc.to_owned())
        .await
        .expect("connect");
    for i in 0..ORDERS {
        client
            .create_order(CreateOrderRequest {
                order_id: order_id(i),
                customer_id: "cus_sd".into(),
                currency: "eur".into(),
                line_items: vec![LineItem {
                    sku: "tee".into(),
                    quantity: 1,
                    unit_amount: AMOUNT,
                }],
                ..Default::default()
            })
            .await
            .expect("create order");
    }
}

/// Sends every order's payment, 16 at a time, to whatever adapter `target`
/// names at the moment; calls `interrupt` once a third are answered.
/// Returns each delivery's first answer.
async fn send_all_with_interruption(
    target: Arc<RwLock<String>>,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> Vec<Option<u16>> {
    let http = fulfil_e2e::http();
    let answered = Arc::new(AtomicUsize::new(0));
    let (third, third_reached) = tokio::sync::oneshot::channel::<()>();
    let interrupter = tokio::spawn(async move {
        let _ = third_reached.await;
        interrupt.await;
    });
    let mut third = Some(third);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..ORDERS {
        let permit = semaphore.clone().acquire_owned().await.expect("permit");
        if answered.load(Ordering::SeqCst) >= ORDERS / 3
            && let Some(third) = third.take()
        {
            let _ = third.send(());
        }
        let (http, target, answered) = (http.clone(), target.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let adapter = target.read().await.clone();
            let status = deliver(&http, &adapter, i).await;
            answered.fetch_add(1, Ordering::SeqCst);
            drop(permit);
            status
        }));
    }
    let mut first = Vec::new();
    for task in tasks {
        first.push(task.await.expect("delivery task"));
    }
    drop(third);
    interrupter.await.expect("interrupter");
    first
}

/// Retries each delivery that was not answered 2xx, as a provider would,
/// until it is (with a deadline).
async fn retry_failed(adapter: &str, first: &[Option<u16>]) {
    let http = fulfil_e2e::http();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, status) in first.iter().enumerate() {
        if status.is_some_and(|s| (200..300).contains(&s)) {
            continue;
        }
        loop {
            match deliver(&http, adapter, i).await {
                Some(200) => break,
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "order {i} never accepted: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Which orders are PAID now; panics if any was counted twice.
async fn paid_orders(grpc: &str) -> Vec<bool> {
    let mut client = OrderServiceClient::connect(grpc.to_owned())
        .await
        .expect("connect");
    let mut paid = Vec::new();
    for i in 0..ORDERS {
        let order = client
            .get_order(GetOrderRequest {
                order_id: order_id(i),
            })
            .await
            .expect("get order")
            .into_inner();
        assert!(
            order.amount_paid <= AMOUNT,
            "order {i} paid twice: {order:?}"
        );
        paid.push(order.state() == State::Paid);
    }
    paid
}

async fn ledger_size(grpc: &str) -> usize {
    let mut client = PaymentEventServiceClient::connect(grpc.to_owned())
        .await
        .expect("connect");
    client
        .list_payment_events(ListPaymentEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .events
        .len()
}

fn assert_answered_means_recorded(first: &[Option<u16>], paid: &[bool]) {
    let mut answered = 0;
    for (i, status) in first.iter().enumerate() {
        if let Some(status) = status {
            assert!(
                *status == 200 || *status == 503,
                "order {i}: unexpected status {status}"
            );
        }
        if *status == Some(200) {
            answered += 1;
            assert!(paid[i], "order {i} was answered 200 but is not paid");
        }
    }
    assert!(answered > 0, "nothing was answered before the interruption");
    assert!(
        answered < ORDERS,
        "the interruption came too late to test anything"
    );
}

#[tokio::test]
async fn sigterm_to_the_adapter_under_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("FULFIL_SHUTDOWN_GRACE_SECS", "10".to_owned())];
    let fulfilment = start_fulfilment(dir.path(), &env).await;
    let grpc = format!("http://{}", fulfilment.addr);
    create_orders(&grpc).await;
    let first_adapter = start_adapter(dir.path(), fulfilment.addr, &sources(), &env).await;
    let target = Arc::new(RwLock::new(first_adapter.addr.to_string()));

    let stopped = Arc::new(tokio::sync::Mutex::new(None::<std::process::ExitStatus>));
    let first = send_all_with_interruption(target.clone(), {
        let stopped = stopped.clone();
        async move {
            let status = first_adapter.terminate().await;
            *stopped.lock().await = Some(status);
        }
    })
    .await;
    let exit = stopped.lock().await.expect("adapter stopped");
    assert!(
        exit.success(),
        "the adapter exits cleanly on SIGTERM: {exit}"
    );

    assert_answered_means_recorded(&first, &paid_orders(&grpc).await);
    let second_adapter: Process =
        start_adapter(dir.path(), fulfilment.addr, &sources(), &env).await;
    retry_failed(&second_adapter.addr.to_string(), &first).await;
    assert!(paid_orders(&grpc).await.iter().all(|p| *p));
    assert_eq!(
        ledger_size(&grpc).await,
        ORDERS,
        "each payment recorded once"
    );
}

#[tokio::test]
async fn sigterm_to_fulfilment_under_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A fixed port, so the adapter finds the restarted service.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let env = [
        ("FULFIL_GRPC_ADDR", format!("127.0.0.1:{port}")),
        ("FULFIL_SHUTDOWN_GRACE_SECS", "10".to_owned()),
    ];
    let fulfilment = start_fulfilment(dir.path(), &env).await;
    let grpc = format!("http://{}", fulfilment.addr);
    create_orders(&grpc).await;
    let adapter_env = [("FULFIL_FULFILMENT_RETRY_BUDGET_MS", "300".to_owned())];
    let adapter = start_adapter(dir.path(), fulfilment.addr, &sources(), &adapter_env).await;
    let target = Arc::new(RwLock::new(adapter.addr.to_string()));

    let stopped = Arc::new(tokio::sync::Mutex::new(None::<std::process::ExitStatus>));
    let first = send_all_with_interruption(target, {
        let stopped = stopped.clone();
        async move {
            let status = fulfilment.terminate().await;
            *stopped.lock().await = Some(status);
        }
    })
    .await;
    let exit = stopped.lock().await.expect("fulfilment stopped");
    assert!(
        exit.success(),
        "fulfilment exits cleanly on SIGTERM: {exit}"
    );

    let restarted = start_fulfilment(dir.path(), &env).await;
    assert_answered_means_recorded(&first, &paid_orders(&grpc).await);
    retry_failed(&adapter.addr.to_string(), &first).await;
    assert!(paid_orders(&grpc).await.iter().all(|p| *p));
    assert_eq!(
        ledger_size(&grpc).await,
        ORDERS,
        "each payment recorded once"
    );
    drop(restarted);
}
