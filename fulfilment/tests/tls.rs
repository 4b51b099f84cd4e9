//! TLS on the API listener, mutual TLS on the ingest listener, gRPC-Web
//! over TLS, and the adapter's client recording through mutual TLS with a
//! token file it re-reads.

mod common;

use std::time::Duration;

use adapter::fulfilment_client::{ClientSecurity, FulfilmentClient};
use adapter::fulfilment_tls::TlsFiles;
use adapter::token_file::TokenFile;
use common::security::{self, PKI, Signer, bearer, claims, client_tls, server_tls, sign};
use common::{Backend, Security, TestApp, new_order, payment_event};
use fulfil_proto::v1 as pb;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::record_payment_event_response::Outcome;

fn trusting_ca() -> Option<tonic::transport::ClientTlsConfig> {
    Some(client_tls(&PKI.ca, None))
}

/// TLS on both listeners, client certificates required on ingest,
/// authorization on; the test clients trust the CA and present the client
/// certificate.
async fn mtls(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_secured(
        backend,
        Security {
            auth: security::authenticator(),
            tls: Some(server_tls(true)),
            ingest: true,
            client_tls: Some(client_tls(
                &PKI.ca,
                Some((&PKI.client_cert, &PKI.client_key)),
            )),
            ..Security::default()
        },
    )
    .await
}

fn adapter_token() -> String {
    sign(Signer::Rs256, &claims("adapter", "payment_events:write"))
}

fn record_request(event_id: &str) -> pb::RecordPaymentEventRequest {
    pb::RecordPaymentEventRequest {
        event: Some(payment_event(
            event_id,
            Kind::PaymentSucceeded,
            "not-yet-created",
            &format!("pi_{event_id}"),
            1,
        )),
    }
}

/// The ingest listener admits the CA's client certificate only.
async fn ingest_requires_a_client_certificate_from_the_ca(app: TestApp) {
    let ingest = app.ingest_addr.expect("ingest listener");
    let token = adapter_token();
    let record = |tls: tonic::transport::ClientTlsConfig, event_id: &'static str| {
        let token = token.clone();
        async move {
            let channel = common::connect(ingest, Some(tls)).await?;
            PaymentEventServiceClient::new(channel)
                .record_payment_event(bearer(record_request(event_id), &token))
                .await
                .map(drop)
                .map_err(|status| Box::new(status) as Box<dyn std::error::Error>)
        }
    };
    let none = record(client_tls(&PKI.ca, None), "evt_no_cert").await;
    assert!(none.is_err(), "no client certificate was accepted");
    let foreign = record(
        client_tls(
            &PKI.ca,
            Some((&PKI.other_client_cert, &PKI.other_client_key)),
        ),
        "evt_other_ca",
    )
    .await;
    assert!(
        foreign.is_err(),
        "a certificate from another CA was accepted"
    );
    let right = record(
        client_tls(&PKI.ca, Some((&PKI.client_cert, &PKI.client_key))),
        "evt_right_cert",
    )
    .await;
    assert!(right.is_ok(), "{right:?}");

    // Even with the right certificate, the call needs the adapter's token.
    let status = app
        .events
        .clone()
        .record_payment_event(record_request("evt_no_token"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

/// The adapter's client: CA, client certificate and token file; a rotated
/// token file is used without a new client.
async fn the_adapter_records_through_mutual_tls_and_follows_its_token_file(app: TestApp) {
    let ingest = app.ingest_addr.expect("ingest listener");
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let token_path = write(
        "token",
        &sign(Signer::Hs256, &claims("adapter", "orders:read")),
    );
    let files = TlsFiles {
        ca: Some(write("ca.crt", &PKI.ca)),
        client_cert: Some(write("tls.crt", &PKI.client_cert)),
        client_key: Some(write("tls.key", &PKI.client_key)),
    };
    // The server certificate names localhost; connect by that name.
    let url = format!("https://localhost:{}", ingest.port());
    let client = FulfilmentClient::with_security(
        &url,
        Duration::from_secs(5),
        Duration::from_millis(600),
        ClientSecurity {
            tls: files.clone(),
            token: Some(TokenFile::open_with_interval(&token_path, Duration::ZERO).expect("token")),
        },
    )
    .expect("client");
    let event = |id: &str| {
        payment_event(
            id,
            Kind::PaymentSucceeded,
            "not-yet-created",
            &format!("pi_{id}"),
            1,
        )
    };
    // A token without payment_events:write is refused…
    let refused = client.record(event("evt_wrong_scope")).await;
    assert!(refused.is_err(), "{refused:?}");
    // …and the rotated one is used at once, by the same client.
    let rotated = dir.path().join("token.new");
    std::fs::write(&rotated, adapter_token()).expect("write");
    std::fs::rename(&rotated, &token_path).expect("rotate");
    let recorded = client
        .record(event("evt_after_rotation"))
        .await
        .expect("recorded with the new token");
    assert_eq!(recorded.outcome(), Outcome::Unmatched);

    // With a long check interval, an UNAUTHENTICATED answer makes the client
    // look at the file at once and retry with the new token.
    let mut expired = claims("adapter", "payment_events:write");
    expired["exp"] = (security::now() - 600).into();
    std::fs::write(&token_path, sign(Signer::Hs256, &expired)).expect("write");
    let lazy = FulfilmentClient::with_security(
        &url,
        Duration::from_secs(5),
        Duration::from_secs(5),
        ClientSecurity {
            tls: files,
            token: Some(
                TokenFile::open_with_interval(&token_path, Duration::from_secs(3600))
                    .expect("token"),
            ),
        },
    )
    .expect("client");
    std::fs::write(&rotated, adapter_token()).expect("write");
    std::fs::rename(&rotated, &token_path).expect("rotate");
    lazy.record(event("evt_refreshed_on_refusal"))
        .await
        .expect("retried with the rotated token");
}

storage_tests!(
    spawn = crate::mtls;
    ingest_requires_a_client_certificate_from_the_ca,
    the_adapter_records_through_mutual_tls_and_follows_its_token_file,
);

/// A client trusting the CA uses the API over TLS; the API listener never
/// asks for a client certificate, even when ingest requires one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_listener_serves_tls_without_client_certificates() {
    let app = TestApp::spawn_secured(
        Backend::Sqlite,
        Security {
            tls: Some(server_tls(true)),
            ingest: true,
            client_tls: trusting_ca(),
            ..Security::default()
        },
    )
    .await
    .expect("app");
    let order = app
        .client
        .clone()
        .create_order(new_order("erin"))
        .await
        .expect("create over TLS")
        .into_inner();
    assert_eq!(order.customer_id, "erin");
}

/// Plaintext to a TLS port, and TLS with an unknown CA, get nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_untrusted_clients_fail() {
    let app = TestApp::spawn_secured(
        Backend::Sqlite,
        Security {
            tls: Some(server_tls(false)),
            client_tls: trusting_ca(),
            ..Security::default()
        },
    )
    .await
    .expect("app");
    let addr = app.addr;
    let attempt = |tls: Option<tonic::transport::ClientTlsConfig>| async move {
        let channel = common::connect(addr, tls).await?;
        pb::order_service_client::OrderServiceClient::new(channel)
            .list_orders(pb::ListOrdersRequest::default())
            .await
            .map(drop)
            .map_err(|status| Box::new(status) as Box<dyn std::error::Error>)
    };
    let plaintext = tokio::time::timeout(Duration::from_secs(15), attempt(None))
        .await
        .expect("fails fast");
    assert!(plaintext.is_err(), "plaintext reached a TLS listener");
    let untrusted = attempt(Some(client_tls(&PKI.other_ca, None))).await;
    assert!(untrusted.is_err(), "a client not trusting the CA connected");
    assert!(attempt(trusting_ca()).await.is_ok());
}

/// gRPC-Web over TLS from a client that speaks only HTTP/1.1 (ALPN
/// `http/1.1`, as Node's fetch), carrying the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_works_over_tls_with_http1_and_a_token() {
    let app = TestApp::spawn_secured(
        Backend::Sqlite,
        Security {
            auth: security::authenticator(),
            tls: Some(server_tls(false)),
            client_tls: trusting_ca(),
            ..Security::default()
        },
    )
    .await
    .expect("app");
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(PKI.ca.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .build()
        .expect("http client");

    let call = |token: Option<String>| {
        let http = http.clone();
        let url = format!(
            "https://localhost:{}/fulfil.v1.OrderService/ListOrders",
            app.addr.port()
        );
        async move {
            // An empty ListOrdersRequest in one gRPC-Web data frame.
            let mut request = http
                .post(url)
                .header("content-type", "application/grpc-web+proto")
                .header("x-grpc-web", "1")
                .body(vec![0u8, 0, 0, 0, 0]);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = request.send().await.expect("HTTP/1.1 over TLS");
            assert_eq!(response.version(), reqwest::Version::HTTP_11);
            let in_headers = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.expect("body");
            in_headers.or_else(|| trailer_status(&body))
        }
    };
    let alice = sign(Signer::Hs256, &claims("alice", ""));
    assert_eq!(call(Some(alice)).await.as_deref(), Some("0"));
    assert_eq!(call(None).await.as_deref(), Some("16"), "UNAUTHENTICATED");
}

/// The grpc-status in a gRPC-Web body's trailer frame.
fn trailer_status(body: &[u8]) -> Option<String> {
    let mut rest = body;
    while rest.len() >= 5 {
        let flags = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = rest.get(5..5 + len)?;
        if flags & 0x80 != 0 {
            return String::from_utf8_lossy(frame)
                .lines()
                .find_map(|line| line.trim().strip_prefix("grpc-status:"))
                .map(|v| v.trim().to_owned());
        }
        rest = &rest[5 + len..];
    }
    None
}

/// Bad or missing files stop the start with the variable's name.
#[test]
fn unusable_tls_material_fails_naming_the_variable() {
    use fulfilment::server::tls::TlsConfig;
    let mismatched =
        TlsConfig::from_pem(PKI.server_cert.as_bytes(), PKI.client_key.as_bytes(), None)
            .expect_err("key of another certificate");
    assert!(
        mismatched.to_string().contains("FULFIL_TLS_KEY_FILE"),
        "{mismatched}"
    );
    let no_key = TlsConfig::from_pem(PKI.server_cert.as_bytes(), PKI.ca.as_bytes(), None)
        .expect_err("no key");
    assert!(no_key.to_string().contains("FULFIL_TLS_KEY_FILE"));
    let bad_ca = TlsConfig::from_pem(
        PKI.server_cert.as_bytes(),
        PKI.server_key.as_bytes(),
        Some(b"not a certificate"),
    )
    .expect_err("bad CA");
    assert!(bad_ca.to_string().contains("FULFIL_TLS_CLIENT_CA_FILE"));
    assert!(!bad_ca.to_string().contains("not a certificate"));
}
