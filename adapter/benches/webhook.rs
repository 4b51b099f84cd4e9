//! Hot functions of the webhook path: signature checks and normalisation of
//! a realistic (fixture-sized) Stripe event. `cargo bench -p adapter`.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use adapter::normalize::{Context, normalize};
use adapter::secret::Secret;
use adapter::verify::{sign, standard, stripe};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fulfil_proto::Provider;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

fn stripe_event() -> Vec<u8> {
    let mut object: Value =
        serde_json::from_str(include_str!("../testdata/stripe/payment_intent.json"))
            .expect("fixture");
    object["amount_received"] = json!(3900);
    object["currency"] = json!("eur");
    object["status"] = json!("succeeded");
    object["metadata"] = json!({ "order_id": "ord_bench" });
    let mut event: Value =
        serde_json::from_str(include_str!("../testdata/stripe/event.json")).expect("fixture");
    event["type"] = json!("payment_intent.succeeded");
    event["data"] = json!({ "object": object });
    serde_json::to_vec(&event).expect("json")
}

fn benches(c: &mut Criterion) {
    let body = stripe_event();
    let at = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let t = 1_764_000_000;
    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Bytes(body.len() as u64));

    let mut headers = HeaderMap::new();
    let header = sign::stripe_header("whsec_current", t, &body);
    headers.insert(
        "stripe-signature",
        HeaderValue::from_str(&header).expect("header"),
    );
    let one = [Secret::new("whsec_current")];
    group.bench_function("stripe_verify", |b| {
        b.iter(|| {
            stripe::verify(
                black_box(&headers),
                black_box(&body),
                &one,
                stripe::DEFAULT_TOLERANCE,
                at,
            )
        })
    });
    // Rotation: the matching secret is the last of three.
    let three = [
        Secret::new("whsec_a"),
        Secret::new("whsec_b"),
        Secret::new("whsec_current"),
    ];
    group.bench_function("stripe_verify_rotation_3_secrets", |b| {
        b.iter(|| {
            stripe::verify(
                black_box(&headers),
                black_box(&body),
                &three,
                stripe::DEFAULT_TOLERANCE,
                at,
            )
        })
    });

    let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut sw = HeaderMap::new();
    for (name, value) in sign::standard_headers(key, "msg_bench", t, &body).expect("sign") {
        sw.insert(name, HeaderValue::from_str(&value).expect("header"));
    }
    let keys = [standard::StandardKey::parse(&Secret::new(key)).expect("key")];
    group.bench_function("standard_verify", |b| {
        b.iter(|| {
            standard::verify(
                black_box(&sw),
                black_box(&body),
                &keys,
                standard::DEFAULT_TOLERANCE,
                at,
            )
        })
    });

    let ctx = Context::new("stripe", Provider::Stripe);
    group.bench_function("stripe_normalize", |b| {
        b.iter(|| normalize(black_box(&ctx), black_box(&body)))
    });
    group.finish();
}

criterion_group!(webhook, benches);
criterion_main!(webhook);
