//! Authorization of the gRPC API: every kind of caller against every RPC,
//! the token algorithms, streams, and the open mode.

mod common;

use std::time::Duration;

use common::security::{self, KEYS, Signer, bearer, claims, sign};
use common::{Backend, Security, TestApp, new_order, payment_event, reason};
use fulfil_proto::v1 as pb;
use fulfil_proto::v1::payment_event::Kind;
use tokio_stream::StreamExt;
use tonic::Code;

/// A server requiring tokens from the test issuer.
async fn secured(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_secured(
        backend,
        Security {
            auth: security::authenticator(),
            ..Security::default()
        },
    )
    .await
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Authorization off: no token needed.
    Open,
    NoToken,
    Garbage,
    Expired,
    WrongIssuer,
    WrongAudience,
    UnknownKey,
    AlgConfusion,
    /// App client `alice` (no scopes).
    Alice,
    /// `orders:read`, RS256 with kid.
    Reader,
    /// `orders:write`, EdDSA.
    Writer,
    /// `orders:admin`, HS256.
    Admin,
    /// `payment_events:write`, RS256 without kid.
    Adapter,
}

const SECURED: [Who; 12] = [
    Who::NoToken,
    Who::Garbage,
    Who::Expired,
    Who::WrongIssuer,
    Who::WrongAudience,
    Who::UnknownKey,
    Who::AlgConfusion,
    Who::Alice,
    Who::Reader,
    Who::Writer,
    Who::Admin,
    Who::Adapter,
];

fn token(who: Who) -> Option<String> {
    let with = |key: &str, value: serde_json::Value| {
        let mut c = claims("alice", "");
        c[key] = value;
        c
    };
    let (claims, signer) = match who {
        Who::Open | Who::NoToken => return None,
        Who::Garbage => return Some("not-a.jwt.at-all".to_owned()),
        Who::Expired => (with("exp", (security::now() - 120).into()), Signer::Hs256),
        Who::WrongIssuer => (
            with("iss", "https://someone-else.test/".into()),
            Signer::Hs256,
        ),
        Who::WrongAudience => (with("aud", "another-api".into()), Signer::Hs256),
        Who::UnknownKey => (claims("svc", "orders:admin"), Signer::Stranger),
        Who::AlgConfusion => (
            claims("svc", "orders:admin"),
            Signer::RsaPublicKeyAsHmacSecret,
        ),
        Who::Alice => (claims("alice", "openid profile"), Signer::Hs256),
        Who::Reader => (claims("reporting", "orders:read"), Signer::Rs256),
        Who::Writer => (claims("checkout", "orders:write"), Signer::EdDsa),
        Who::Admin => (claims("ops", "orders:admin"), Signer::Hs256),
        Who::Adapter => (
            claims("adapter", "payment_events:write"),
            Signer::Rs256NoKid,
        ),
    };
    Some(sign(signer, &claims))
}

/// The calls, each with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Create,
    GetOwn,
    GetOther,
    GetMissing,
    ListMine,
    ListOwnNamed,
    ListOther,
    Cancel,
    Fulfil,
    WatchOwn,
    WatchOther,
    WatchMissing,
    WatchAllMine,
    WatchAllOther,
    Record,
    ListEvents,
    Reapply,
    EntitlementsMine,
    EntitlementsOther,
}

const RPCS: [Rpc; 19] = [
    Rpc::Create,
    Rpc::GetOwn,
    Rpc::GetOther,
    Rpc::GetMissing,
    Rpc::ListMine,
    Rpc::ListOwnNamed,
    Rpc::ListOther,
    Rpc::Cancel,
    Rpc::Fulfil,
    Rpc::WatchOwn,
    Rpc::WatchOther,
    Rpc::WatchMissing,
    Rpc::WatchAllMine,
    Rpc::WatchAllOther,
    Rpc::Record,
    Rpc::ListEvents,
    Rpc::Reapply,
    Rpc::EntitlementsMine,
    Rpc::EntitlementsOther,
];

/// The code each caller must get from each call.
fn expected(who: Who, rpc: Rpc) -> Code {
    use Rpc::*;
    let reads = matches!(
        rpc,
        GetOwn
            | GetOther
            | ListMine
            | ListOwnNamed
            | ListOther
            | WatchOwn
            | WatchOther
            | WatchAllMine
            | WatchAllOther
            | EntitlementsMine
    );
    let writes = matches!(rpc, Create | Cancel);
    match who {
        Who::NoToken
        | Who::Garbage
        | Who::Expired
        | Who::WrongIssuer
        | Who::WrongAudience
        | Who::UnknownKey
        | Who::AlgConfusion => Code::Unauthenticated,
        Who::Alice => match rpc {
            GetOwn | ListMine | ListOwnNamed | WatchOwn | WatchAllMine | EntitlementsMine => {
                Code::Ok
            }
            _ => Code::PermissionDenied,
        },
        Who::Adapter => match rpc {
            Record => Code::Ok,
            _ => Code::PermissionDenied,
        },
        Who::Reader | Who::Writer | Who::Admin | Who::Open => {
            let level = match who {
                Who::Reader => 1,
                Who::Writer => 2,
                _ => 3,
            };
            match rpc {
                EntitlementsOther => Code::Ok,
                GetMissing | WatchMissing => Code::NotFound,
                _ if reads => Code::Ok,
                _ if writes && level >= 2 => Code::Ok,
                // Not paid (or already cancelled): past authorization.
                Fulfil if level >= 2 => Code::FailedPrecondition,
                ListEvents | Reapply if level >= 3 => Code::Ok,
                Record if who == Who::Open => Code::Ok,
                _ => Code::PermissionDenied,
            }
        }
    }
}

/// The ErrorInfo reason a refused call must carry.
fn expected_reason(who: Who, rpc: Rpc) -> &'static str {
    match who {
        Who::NoToken => "TOKEN_MISSING",
        Who::Expired => "TOKEN_EXPIRED",
        Who::Garbage
        | Who::WrongIssuer
        | Who::WrongAudience
        | Who::UnknownKey
        | Who::AlgConfusion => "TOKEN_INVALID",
        Who::Alice
            if matches!(
                rpc,
                Rpc::GetOther
                    | Rpc::GetMissing
                    | Rpc::ListOther
                    | Rpc::WatchOther
                    | Rpc::WatchMissing
                    | Rpc::WatchAllOther
                    | Rpc::EntitlementsOther
            ) =>
        {
            "CUSTOMER_MISMATCH"
        }
        _ => "SCOPE_INSUFFICIENT",
    }
}

/// Orders the matrix works on, created with an admin token.
struct Fixture {
    alice_order: String,
    bob_order: String,
    target: String,
}

async fn fixture(app: &TestApp, admin: Option<&str>) -> Fixture {
    let mut ids = Vec::new();
    for customer in ["alice", "bob", "bob"] {
        let request = new_order(customer);
        let request = match admin {
            Some(token) => bearer(request, token),
            None => tonic::Request::new(request),
        };
        let order = app
            .client
            .clone()
            .create_order(request)
            .await
            .expect("create fixture order")
            .into_inner();
        ids.push(order.order_id);
    }
    Fixture {
        alice_order: ids[0].clone(),
        bob_order: ids[1].clone(),
        target: ids[2].clone(),
    }
}

fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    match token {
        Some(token) => bearer(message, token),
        None => tonic::Request::new(message),
    }
}

/// Makes one call; a stream counts as answered once its first message
/// arrives.
async fn invoke(
    app: &TestApp,
    fixture: &Fixture,
    rpc: Rpc,
    token: Option<&str>,
    n: usize,
) -> Result<(), tonic::Status> {
    let mut orders = app.client.clone();
    let mut events = app.events.clone();
    let mut entitlements = app.entitlements.clone();
    let get = |order_id: &str| pb::GetOrderRequest {
        order_id: order_id.to_owned(),
    };
    let list = |customer_id: &str| pb::ListOrdersRequest {
        customer_id: customer_id.to_owned(),
        ..Default::default()
    };
    let watch = |order_id: &str| pb::WatchOrderRequest {
        order_id: order_id.to_owned(),
    };
    let watch_all = |customer_id: &str| pb::WatchOrdersRequest {
        customer_id: customer_id.to_owned(),
        ..Default::default()
    };
    let entitled = |customer_id: &str| pb::ListEntitlementsRequest {
        customer_id: customer_id.to_owned(),
        active_only: false,
    };
    match rpc {
        Rpc::Create => orders
            .create_order(request(new_order("carol"), token))
            .await
            .map(drop),
        Rpc::GetOwn => orders
            .get_order(request(get(&fixture.alice_order), token))
            .await
            .map(drop),
        Rpc::GetOther => orders
            .get_order(request(get(&fixture.bob_order), token))
            .await
            .map(drop),
        Rpc::GetMissing => orders
            .get_order(request(get("no-such-order"), token))
            .await
            .map(drop),
        Rpc::ListMine => orders.list_orders(request(list(""), token)).await.map(drop),
        Rpc::ListOwnNamed => orders
            .list_orders(request(list("alice"), token))
            .await
            .map(drop),
        Rpc::ListOther => orders
            .list_orders(request(list("bob"), token))
            .await
            .map(drop),
        Rpc::Cancel => orders
            .cancel_order(request(
                pb::CancelOrderRequest {
                    order_id: fixture.target.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::Fulfil => orders
            .fulfil_order(request(
                pb::FulfilOrderRequest {
                    order_id: fixture.target.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::WatchOwn | Rpc::WatchOther | Rpc::WatchMissing => {
            let order_id = match rpc {
                Rpc::WatchOwn => fixture.alice_order.as_str(),
                Rpc::WatchOther => fixture.bob_order.as_str(),
                _ => "no-such-order",
            };
            let mut stream = orders
                .watch_order(request(watch(order_id), token))
                .await?
                .into_inner();
            first(&mut stream).await
        }
        Rpc::WatchAllMine | Rpc::WatchAllOther => {
            let customer = if rpc == Rpc::WatchAllMine { "" } else { "bob" };
            let mut stream = orders
                .watch_orders(request(watch_all(customer), token))
                .await?
                .into_inner();
            first(&mut stream).await
        }
        Rpc::Record => {
            let event = payment_event(
                &format!("evt_matrix_{n}"),
                Kind::PaymentSucceeded,
                "unknown-order",
                &format!("pi_matrix_{n}"),
                1,
            );
            events
                .record_payment_event(request(
                    pb::RecordPaymentEventRequest { event: Some(event) },
                    token,
                ))
                .await
                .map(drop)
        }
        Rpc::ListEvents => events
            .list_payment_events(request(pb::ListPaymentEventsRequest::default(), token))
            .await
            .map(drop),
        Rpc::Reapply => events
            .reapply_unmatched_events(request(pb::ReapplyUnmatchedEventsRequest {}, token))
            .await
            .map(drop),
        Rpc::EntitlementsMine => entitlements
            .list_entitlements(request(entitled("alice"), token))
            .await
            .map(drop),
        Rpc::EntitlementsOther => entitlements
            .list_entitlements(request(entitled("bob"), token))
            .await
            .map(drop),
    }
}

async fn first<M>(stream: &mut tonic::Streaming<M>) -> Result<(), tonic::Status> {
    match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(tonic::Status::internal("stream ended without a message")),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(tonic::Status::deadline_exceeded("no first message")),
    }
}

async fn run_matrix(app: &TestApp, callers: &[Who]) {
    let admin = token(Who::Admin);
    let fixture = fixture(app, admin.as_deref()).await;
    let mut failures = Vec::new();
    let mut n = 0;
    for &who in callers {
        let token = token(who);
        for rpc in RPCS {
            n += 1;
            let outcome = invoke(app, &fixture, rpc, token.as_deref(), n).await;
            let want = expected(who, rpc);
            let got = outcome.as_ref().err().map_or(Code::Ok, tonic::Status::code);
            if got != want {
                failures.push(format!("{who:?} {rpc:?}: want {want:?}, got {outcome:?}"));
                continue;
            }
            if let Err(status) = &outcome
                && matches!(got, Code::Unauthenticated | Code::PermissionDenied)
            {
                let want_reason = expected_reason(who, rpc);
                let got_reason = reason(status);
                if got_reason != want_reason {
                    failures.push(format!(
                        "{who:?} {rpc:?}: want reason {want_reason}, got {got_reason}"
                    ));
                }
                let message = status.message();
                if let Some(token) = &token {
                    assert!(!message.contains(token.as_str()), "token echoed: {message}");
                }
                assert!(!message.contains(&KEYS.hs256_secret));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn every_caller_gets_exactly_its_rights(app: TestApp) {
    run_matrix(&app, &SECURED).await;
}

async fn app_clients_list_and_watch_only_their_own_orders(app: TestApp) {
    let admin = token(Who::Admin).expect("admin token");
    let alice = token(Who::Alice).expect("alice token");
    let create = |customer: &'static str| {
        let mut client = app.client.clone();
        let admin = admin.clone();
        async move {
            client
                .create_order(bearer(new_order(customer), &admin))
                .await
                .expect("create")
                .into_inner()
        }
    };
    create("alice").await;
    create("bob").await;
    create("alice").await;

    let listed = app
        .client
        .clone()
        .list_orders(bearer(pb::ListOrdersRequest::default(), &alice))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.orders.len(), 2);
    assert!(listed.orders.iter().all(|o| o.customer_id == "alice"));
    // An empty customer means "mine" for entitlements too.
    app.entitlements
        .clone()
        .list_entitlements(bearer(pb::ListEntitlementsRequest::default(), &alice))
        .await
        .expect("own entitlements");

    // A watch of "everything" is alice's orders only, while bob's change too.
    let mut stream = app
        .client
        .clone()
        .watch_orders(bearer(pb::WatchOrdersRequest::default(), &alice))
        .await
        .expect("watch")
        .into_inner();
    let bob = create("bob").await;
    app.client
        .clone()
        .cancel_order(bearer(
            pb::CancelOrderRequest {
                order_id: bob.order_id.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("cancel bob's");
    let last = create("alice").await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(&last.order_id) {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("alice's change arrives")
            .expect("stream open")
            .expect("message");
        if let Some(pb::watch_orders_response::Event::Change(change)) = message.event {
            let order = change.order.expect("order");
            assert_eq!(
                order.customer_id, "alice",
                "another customer's change leaked"
            );
            seen.push(order.order_id);
        }
    }
}

async fn rs256_eddsa_and_hs256_tokens_verify_and_strangers_do_not(app: TestApp) {
    let order = {
        let admin = token(Who::Admin).expect("admin");
        app.client
            .clone()
            .create_order(bearer(new_order("dora"), &admin))
            .await
            .expect("create")
            .into_inner()
    };
    let get = |signer: Signer| {
        let mut client = app.client.clone();
        let order_id = order.order_id.clone();
        async move {
            let token = sign(signer, &claims("dora", ""));
            client
                .get_order(bearer(pb::GetOrderRequest { order_id }, &token))
                .await
        }
    };
    for signer in [
        Signer::Hs256,
        Signer::Rs256,
        Signer::Rs256NoKid,
        Signer::EdDsa,
    ] {
        let answer = get(signer).await;
        assert!(answer.is_ok(), "{signer:?}: {answer:?}");
    }
    for signer in [Signer::Stranger, Signer::RsaPublicKeyAsHmacSecret] {
        let status = get(signer).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{signer:?}");
        assert_eq!(reason(&status), "TOKEN_INVALID");
    }
    // "none" is not an algorithm anyone accepts.
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims("dora", "orders:admin").to_string())
        )
    };
    let status = app
        .client
        .clone()
        .get_order(bearer(
            pb::GetOrderRequest {
                order_id: order.order_id.clone(),
            },
            &unsigned,
        ))
        .await
        .expect_err("unsigned");
    assert_eq!(status.code(), Code::Unauthenticated);
}

storage_tests!(
    spawn = crate::secured;
    every_caller_gets_exactly_its_rights,
    app_clients_list_and_watch_only_their_own_orders,
    rs256_eddsa_and_hs256_tokens_verify_and_strangers_do_not,
);

/// With authorization off (local use) every call is open, without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authorization_everything_is_open() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    run_matrix(&app, &[Who::Open]).await;
}

/// Probes and grpcurl discovery need no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_stay_open() {
    let app = secured(Backend::Sqlite).await.expect("app");
    let channel = common::connect(app.addr, None).await.expect("connect");
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "{health:?}");
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    assert!(matches!(answers.next().await, Some(Ok(_))));
}

/// A stream ends with UNAUTHENTICATED when the token it started with
/// expires, so a lapsed app client stops seeing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_their_token_expires() {
    let app = secured(Backend::Sqlite).await.expect("app");
    let mut short = claims("alice", "");
    short["exp"] = (security::now() + 2).into();
    let token = sign(Signer::Hs256, &short);
    let mut stream = app
        .client
        .clone()
        .watch_orders(bearer(pb::WatchOrdersRequest::default(), &token))
        .await
        .expect("watch starts")
        .into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect("an error, not a clean end");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_EXPIRED");
}
