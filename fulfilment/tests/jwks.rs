//! Tokens verified against a JWKS URL: an identity provider inside the test
//! (HTTPS on 127.0.0.1, certificate from the test CA) serves keys, rotates
//! them, fails, and counts how often it is asked.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::security::{AUDIENCE, ISSUER, PKI, bearer, claims};
use common::{Backend, Security, TestApp, new_order, reason};
use fulfil_proto::v1 as pb;
use fulfilment::auth::jwks::{JwksOptions, JwksSource};
use fulfilment::auth::{AuthArgs, AuthError, Authenticator, Caller, InvalidToken, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;

/// A signing key of the test identity provider and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    private: EncodingKey,
    jwk: Value,
}

impl Signer {
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(Some(&self.kid), claims)
    }

    fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.private).expect("sign")
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// RS256, as Firebase Auth and Cognito sign.
static RSA: LazyLock<Signer> = LazyLock::new(|| {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("rsa key");
    let public = key.to_public_key();
    Signer {
        kid: "rsa-2024".into(),
        alg: Algorithm::RS256,
        private: EncodingKey::from_rsa_der(key.to_pkcs1_der().expect("der").as_bytes()),
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa-2024",
            "n": b64(&public.n_bytes()), "e": b64(&public.e_bytes()),
        }),
    }
});

fn ec(kid: &str) -> Signer {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256 key");
    // Uncompressed point: 0x04, x, y.
    let point = key.public_key_raw();
    Signer {
        kid: kid.into(),
        alg: Algorithm::ES256,
        private: EncodingKey::from_ec_der(&key.serialize_der()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }),
    }
}

/// ES256, as Supabase can sign.
static EC: LazyLock<Signer> = LazyLock::new(|| ec("ec-2025"));
/// A key the identity provider never publishes.
static STRANGER: LazyLock<Signer> = LazyLock::new(|| ec("stranger"));

/// EdDSA.
static ED: LazyLock<Signer> = LazyLock::new(|| {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("randomness");
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Signer {
        kid: "ed-1".into(),
        alg: Algorithm::EdDSA,
        private: EncodingKey::from_ed_der(key.to_pkcs8_der().expect("pkcs8").as_bytes()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
            "x": b64(key.verifying_key().as_bytes()),
        }),
    }
});

/// What the test identity provider answers.
struct Answer {
    status: u16,
    body: String,
    cache_control: Option<String>,
}

/// The test identity provider: its JWKS URL, what it answers, and how many
/// requests it has had.
#[derive(Clone)]
struct Idp {
    url: String,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(keys: &[&Signer]) -> Idp {
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: String::new(),
            cache_control: None,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get({
                let (answer, hits) = (answer.clone(), hits.clone());
                move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let answer = answer.lock().expect("answer");
                    let mut response = http::Response::builder()
                        .status(answer.status)
                        .header("content-type", "application/json");
                    if let Some(cache_control) = &answer.cache_control {
                        response = response.header("cache-control", cache_control);
                    }
                    response
                        .body(axum::body::Body::from(answer.body.clone()))
                        .expect("response")
                }
            }),
        );
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(TlsListener::new(tcp), router).await;
        });
        let idp = Idp {
            url: format!("https://127.0.0.1:{port}/.well-known/jwks.json"),
            answer,
            hits,
        };
        idp.serve(keys);
        idp
    }

    fn serve(&self, keys: &[&Signer]) {
        let keys: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
        self.set(|a| {
            a.status = 200;
            a.body = json!({ "keys": keys }).to_string();
        });
    }

    fn set(&self, change: impl FnOnce(&mut Answer)) {
        change(&mut self.answer.lock().expect("answer"));
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A source trusting the test CA, at most one fetch per `interval`.
    fn source(&self, interval: Duration) -> Arc<JwksSource> {
        Arc::new(
            JwksSource::new(JwksOptions {
                ca_pem: Some(PKI.ca.as_bytes().to_vec()),
                min_refresh_interval: interval,
                ..JwksOptions::new(&self.url)
            })
            .expect("jwks source"),
        )
    }
}

/// TLS on accepted connections, with the test CA's server certificate.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    fn new(tcp: tokio::net::TcpListener) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(PKI.server_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(PKI.server_key.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A failed handshake (an untrusting client) just drops that one.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn authenticator(source: Arc<JwksSource>) -> Authenticator {
    Authenticator::on(
        Verifier::new(
            Vec::new(),
            ISSUER.into(),
            AUDIENCE.into(),
            Duration::from_secs(5),
        )
        .with_jwks(source),
    )
}

async fn check(auth: &Authenticator, token: &str) -> Result<Caller, AuthError> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    auth.authenticate(&headers)
        .outcome()
        .await
        .map(|principal| principal.caller)
}

fn alice() -> Caller {
    Caller::Customer("alice".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_keys_verify_and_rotation_is_picked_up_by_kid() {
    let idp = Idp::start(&[&RSA, &ED]).await;
    let source = idp.source(Duration::from_millis(300));
    assert_eq!(source.load().await.expect("first fetch"), 2);
    let auth = authenticator(source);
    let app = claims("alice", "");
    assert_eq!(check(&auth, &RSA.sign(&app)).await, Ok(alice()));
    assert_eq!(check(&auth, &ED.sign(&app)).await, Ok(alice()));
    assert_eq!(idp.hits(), 1, "known kids need no fetch");

    // The provider rotates to an ES256 key; a token signed with it names a
    // kid the cache lacks, which fetches the JWKS again.
    idp.serve(&[&EC]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(check(&auth, &EC.sign(&app)).await, Ok(alice()));
    assert_eq!(idp.hits(), 2);
    assert_eq!(check(&auth, &EC.sign(&app)).await, Ok(alice()));
    assert_eq!(idp.hits(), 2, "the new key is cached");
    // The retired keys are gone.
    assert!(check(&auth, &RSA.sign(&app)).await.is_err());
    // A key the provider never published.
    assert_eq!(
        check(&auth, &STRANGER.sign(&app)).await,
        Err(InvalidToken::Signature.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let idp = Idp::start(&[&EC]).await;
    let interval = Duration::from_millis(400);
    let source = idp.source(interval);
    source.load().await.expect("first fetch");
    let auth = authenticator(source);
    let started = tokio::time::Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let auth = auth.clone();
        flood.spawn(async move {
            let mut n = 0;
            while started.elapsed() < Duration::from_millis(1200) {
                let kid = format!("bogus-{worker}-{n}");
                let token = STRANGER.sign_as(Some(&kid), &claims("mallory", ""));
                assert!(check(&auth, &token).await.is_err());
                n += 1;
            }
            n
        });
    }
    let mut tokens = 0;
    while let Some(sent) = flood.join_next().await {
        tokens += sent.expect("worker");
    }
    let elapsed = started.elapsed();
    // The first fetch, then at most one per interval begun.
    let allowed = 1 + elapsed.as_millis().div_ceil(interval.as_millis()) as usize;
    let hits = idp.hits();
    eprintln!("{hits} fetches for {tokens} tokens in {elapsed:?}");
    assert!(tokens > 100, "the flood was a flood: {tokens}");
    assert!(
        (2..=allowed).contains(&hits),
        "{hits} fetches for {tokens} tokens in {elapsed:?}"
    );
    // Good tokens still pass at once, without fetching.
    assert_eq!(
        check(&auth, &EC.sign(&claims("alice", ""))).await,
        Ok(alice())
    );
    assert_eq!(idp.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_leaves_the_last_good_keys_in_use() {
    let idp = Idp::start(&[&EC]).await;
    let source = idp.source(Duration::from_millis(50));
    source.load().await.expect("first fetch");
    let auth = authenticator(source.clone());
    let app = claims("alice", "");
    for failure in [
        |a: &mut Answer| a.status = 500,
        |a: &mut Answer| a.body = "<html>maintenance</html>".into(),
        |a: &mut Answer| a.body = r#"{"keys": []}"#.into(),
    ] {
        idp.set(failure);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let before = idp.hits();
        // An unknown kid asks for a refresh, which fails.
        let unknown = STRANGER.sign_as(Some("new-kid"), &app);
        assert!(check(&auth, &unknown).await.is_err());
        assert_eq!(idp.hits(), before + 1);
        assert!(source.load().await.is_err());
        assert_eq!(check(&auth, &EC.sign(&app)).await, Ok(alice()));
        idp.serve(&[&EC]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_fetched_again_when_their_max_age_runs_out() {
    let idp = Idp::start(&[&RSA]).await;
    idp.set(|a| a.cache_control = Some("public, max-age=1".into()));
    let source = Arc::new(
        JwksSource::new(JwksOptions {
            ca_pem: Some(PKI.ca.as_bytes().to_vec()),
            min_refresh_interval: Duration::ZERO,
            min_ttl: Duration::ZERO,
            ..JwksOptions::new(&idp.url)
        })
        .expect("source"),
    );
    source.load().await.expect("first fetch");
    let auth = authenticator(source);
    let app = claims("alice", "");
    assert_eq!(check(&auth, &RSA.sign(&app)).await, Ok(alice()));

    // The provider drops the RSA key; within max-age nothing changes.
    idp.serve(&[&EC]);
    assert_eq!(check(&auth, &RSA.sign(&app)).await, Ok(alice()));
    assert_eq!(idp.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale: this token is still checked with the keys at hand, and a
    // refresh starts in the background.
    assert_eq!(check(&auth, &RSA.sign(&app)).await, Ok(alice()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while idp.hits() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Without kid, so the removal shows (no fetch for an unknown kid).
    assert!(check(&auth, &RSA.sign_as(None, &app)).await.is_err());
    assert_eq!(check(&auth, &EC.sign(&app)).await, Ok(alice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_audience_and_expiry_are_still_checked() {
    let idp = Idp::start(&[&EC]).await;
    let source = idp.source(Duration::from_secs(60));
    source.load().await.expect("first fetch");
    let auth = authenticator(source);
    let with = |key: &str, value: Value| {
        let mut c = claims("alice", "");
        c[key] = value;
        EC.sign(&c)
    };
    assert_eq!(
        check(&auth, &with("iss", "https://another-idp.test/".into())).await,
        Err(InvalidToken::Issuer.into())
    );
    assert_eq!(
        check(&auth, &with("aud", "another-api".into())).await,
        Err(InvalidToken::Audience.into())
    );
    assert_eq!(
        check(&auth, &with("exp", (common::security::now() - 600).into())).await,
        Err(AuthError::TokenExpired)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_can_come_from_another_claim() {
    let idp = Idp::start(&[&EC]).await;
    let source = idp.source(Duration::from_secs(60));
    source.load().await.expect("first fetch");
    let auth = Authenticator::on(
        Verifier::new(
            Vec::new(),
            ISSUER.into(),
            AUDIENCE.into(),
            Duration::from_secs(5),
        )
        .with_jwks(source)
        .with_customer_claim("customer_id"),
    );
    let mut app = claims("idp-user-7f3a", "");
    app["customer_id"] = "cus_42".into();
    assert_eq!(
        check(&auth, &EC.sign(&app)).await,
        Ok(Caller::Customer("cus_42".into()))
    );
    assert_eq!(
        check(&auth, &EC.sign(&claims("idp-user-7f3a", ""))).await,
        Err(InvalidToken::MissingClaim("the customer claim").into())
    );
    app["customer_id"] = 42.into();
    assert_eq!(
        check(&auth, &EC.sign(&app)).await,
        Err(InvalidToken::Claims.into())
    );
    // Services are still named by `sub`.
    let service = check(&auth, &EC.sign(&claims("checkout", "orders:write")))
        .await
        .expect("service");
    assert!(matches!(service, Caller::Service { subject, .. } if subject == "checkout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_certificate_is_verified() {
    let idp = Idp::start(&[&EC]).await;
    // The public roots do not include the test CA.
    let source = JwksSource::new(JwksOptions::new(&idp.url)).expect("source");
    assert!(source.load().await.is_err());
    assert!(source.keys().keys.is_empty());
}

/// Through the real gRPC server, configured as `fulfilment serve` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_authenticated_with_jwks_keys_across_a_rotation() {
    let idp = Idp::start(&[&RSA]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, &PKI.ca).expect("write CA");
    let auth = AuthArgs {
        jwt_jwks_url: Some(idp.url.clone()),
        jwt_jwks_ca_file: Some(ca),
        jwt_jwks_min_refresh_secs: Some(1),
        jwt_issuer: Some(ISSUER.into()),
        jwt_audience: Some(AUDIENCE.into()),
        jwt_leeway_secs: 5,
        ..AuthArgs::default()
    }
    .load()
    .expect("auth configuration");
    auth.load_keys().await;
    let app = TestApp::spawn_secured(
        Backend::Sqlite,
        Security {
            auth,
            ..Security::default()
        },
    )
    .await
    .expect("app");

    let admin = RSA.sign(&claims("ops", "orders:admin"));
    let order = app
        .client
        .clone()
        .create_order(bearer(new_order("alice"), &admin))
        .await
        .expect("create")
        .into_inner();
    let get = |token: String| {
        let mut client = app.client.clone();
        let order_id = order.order_id.clone();
        async move {
            client
                .get_order(bearer(pb::GetOrderRequest { order_id }, &token))
                .await
        }
    };
    get(RSA.sign(&claims("alice", ""))).await.expect("RS256");

    idp.serve(&[&RSA, &EC]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    get(EC.sign(&claims("alice", "")))
        .await
        .expect("ES256 after rotation");
    assert_eq!(idp.hits(), 2);

    for token in [
        STRANGER.sign(&claims("alice", "")),
        EC.sign(&{
            let mut c = claims("alice", "");
            c["aud"] = "another-api".into();
            c
        }),
    ] {
        let status = get(token).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(&status), "TOKEN_INVALID");
    }
    let bob = get(EC.sign(&claims("bob", "")))
        .await
        .expect_err("not bob's");
    assert_eq!(bob.code(), Code::PermissionDenied);
}
