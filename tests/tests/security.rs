//! The real binaries secured as in production: fulfilment with TLS, mutual
//! TLS on its ingest port and JWT authorization; the adapter with its CA,
//! client certificate and token file. A signed webhook pays an order, which
//! the customer's app then reads over TLS with its own token. Keys and
//! certificates are made here, at run time.

use std::time::{SystemTime, UNIX_EPOCH};

use adapter::verify::sign;
use fulfil_e2e::{Process, start_adapter, start_fulfilment};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, GetOrderRequest, LineItem};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const STRIPE_SECRET: &str = "whsec_e2e_security_secret";
const ISSUER: &str = "https://issuer.e2e.test/";
const AUDIENCE: &str = "fulfil-e2e";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn token(secret: &str, sub: &str, scope: &str) -> String {
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 600});
    if !scope.is_empty() {
        claims["scope"] = scope.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("token")
}

/// A CA, a server certificate for localhost and a client certificate.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let leaf = |names: &[&str], usage| {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        server: leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(&["adapter"], ExtendedKeyUsagePurpose::ClientAuth),
        ca: ca.pem(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn payment_intent_succeeded(event_id: &str, order_id: &str, amount: i64) -> Vec<u8> {
    serde_json::to_vec(&fulfil_e2e::stripe_payment_succeeded(
        event_id, order_id, amount,
    ))
    .expect("json")
}

async fn api(fulfilment: &Process, ca: &str) -> OrderServiceClient<Channel> {
    let channel = Channel::from_shared(format!("https://localhost:{}", fulfilment.addr.port()))
        .expect("url")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .expect("tls")
        .connect()
        .await
        .expect("connect over TLS");
    OrderServiceClient::new(channel)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

#[tokio::test]
async fn a_webhook_pays_an_order_through_mutual_tls_and_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let secret: String = (0..48)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let ingest_port = free_port();
    let fulfilment = start_fulfilment(
        dir.path(),
        &[
            ("FULFIL_INGEST_ADDR", format!("127.0.0.1:{ingest_port}")),
            ("FULFIL_TLS_CERT_FILE", write("server.crt", &pki.server.0)),
            ("FULFIL_TLS_KEY_FILE", write("server.key", &pki.server.1)),
            ("FULFIL_TLS_CLIENT_CA_FILE", write("ca.crt", &pki.ca)),
            ("FULFIL_AUTH_JWT_HS256_SECRET", secret.clone()),
            ("FULFIL_AUTH_JWT_ISSUER", ISSUER.to_owned()),
            ("FULFIL_AUTH_JWT_AUDIENCE", AUDIENCE.to_owned()),
        ],
    )
    .await;
    let sources = format!("[sources.stripe]\nkind = \"stripe\"\nsecrets = [\"{STRIPE_SECRET}\"]\n");
    let adapter = start_adapter(
        dir.path(),
        fulfilment.addr,
        &sources,
        &[
            (
                "FULFIL_FULFILMENT_URL",
                format!("https://localhost:{ingest_port}"),
            ),
            ("FULFIL_FULFILMENT_CA_FILE", write("ca.crt", &pki.ca)),
            (
                "FULFIL_FULFILMENT_CLIENT_CERT_FILE",
                write("client.crt", &pki.client.0),
            ),
            (
                "FULFIL_FULFILMENT_CLIENT_KEY_FILE",
                write("client.key", &pki.client.1),
            ),
            (
                "FULFIL_FULFILMENT_TOKEN_FILE",
                write(
                    "adapter.jwt",
                    &token(&secret, "adapter", "payment_events:write"),
                ),
            ),
        ],
    )
    .await;

    let mut client = api(&fulfilment, &pki.ca).await;
    let order = CreateOrderRequest {
        order_id: "e2e-secure-1".into(),
        customer_id: "cus_secure".into(),
        line_items: vec![LineItem {
            sku: "tee".into(),
            quantity: 2,
            unit_amount: 1950,
        }],
        currency: "eur".into(),
        ..Default::default()
    };
    let refused = client
        .create_order(order.clone())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    client
        .create_order(with_token(
            order,
            &token(&secret, "checkout", "orders:write"),
        ))
        .await
        .expect("create with a service token");

    let body = payment_intent_succeeded("evt_e2e_secure_1", "e2e-secure-1", 3900);
    let header = sign::stripe_header(STRIPE_SECRET, i64::try_from(now()).expect("time"), &body);
    let response = fulfil_e2e::http()
        .post(format!("http://{}/webhooks/stripe", adapter.addr))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .expect("post webhook");
    let status = response.status().as_u16();
    let answer: Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json answer");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "applied");

    let app_token = token(&secret, "cus_secure", "");
    let paid = client
        .get_order(with_token(
            GetOrderRequest {
                order_id: "e2e-secure-1".into(),
            },
            &app_token,
        ))
        .await
        .expect("the customer reads its order")
        .into_inner();
    assert_eq!(paid.state(), State::Paid);
    let other = token(&secret, "cus_other", "");
    let denied = client
        .get_order(with_token(
            GetOrderRequest {
                order_id: "e2e-secure-1".into(),
            },
            &other,
        ))
        .await
        .expect_err("another customer");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    adapter.terminate().await;
    fulfilment.terminate().await;
}

/// A TLS file that cannot be read stops the start, naming the variable.
#[tokio::test]
async fn an_unreadable_tls_file_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(fulfil_e2e::binary("fulfilment"))
        .arg("serve")
        .env("FULFIL_GRPC_ADDR", "127.0.0.1:0")
        .env("FULFIL_TLS_CERT_FILE", dir.path().join("missing.crt"))
        .env("FULFIL_TLS_KEY_FILE", dir.path().join("missing.key"))
        .current_dir(dir.path())
        .output()
        .await
        .expect("run fulfilment");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("FULFIL_TLS_CERT_FILE"), "{log}");
}

/// Without authorization, the start says so loudly.
#[tokio::test]
async fn serving_without_authorization_warns_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(fulfil_e2e::binary("fulfilment"))
        .arg("serve")
        .env("FULFIL_GRPC_ADDR", "127.0.0.1:0")
        .env("FULFIL_LOG_FORMAT", "json")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fulfilment");
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let warning = tokio::time::timeout(fulfil_e2e::START_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(json) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if json["message"] == "gRPC server listening" {
                return None;
            }
            if json["level"] == "WARN"
                && json["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("unauthenticated"))
            {
                return Some(line);
            }
        }
        None
    })
    .await
    .expect("started in time");
    let warning = warning.expect("a WARN line about the unauthenticated API");
    assert!(warning.contains("FULFIL_AUTH_JWT_ISSUER"), "{warning}");
    child.kill().await.ok();
}
