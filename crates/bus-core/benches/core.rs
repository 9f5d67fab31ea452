//! Micro-benchmarks of the protocol's per-message work: classifying a
//! delivery, and encoding and decoding payloads with both codecs, typed
//! (serde structs) and dynamic (`Value`).
//!
//! `cargo bench -p bus-core`; results are summarised in
//! `docs/performance.md`. Under `cargo test --all-targets` each benchmark
//! runs once, as a smoke test.

use std::hint::black_box;

use bus_core::{
    Codec, DeliveryInfo, Envelope, MessageKind, OutgoingMessage, Properties, Value, classify,
};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// A typical business payload: about 200 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Invoice {
    id: u64,
    customer: String,
    email: String,
    amount_cents: i64,
    currency: String,
    paid: bool,
    tags: Vec<String>,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
    price_cents: i64,
}

/// A larger payload: about 10 KB of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Batch {
    batch_id: String,
    invoices: Vec<Invoice>,
}

fn invoice(id: u64) -> Invoice {
    Invoice {
        id,
        customer: format!("Customer number {id}"),
        email: format!("customer{id}@example.com"),
        amount_cents: 12_345 + id as i64,
        currency: "EUR".into(),
        paid: id % 2 == 0,
        tags: vec!["priority".into(), "export".into()],
        lines: vec![
            Line {
                sku: "SKU-0001".into(),
                quantity: 2,
                price_cents: 4_999,
            },
            Line {
                sku: "SKU-0042".into(),
                quantity: 1,
                price_cents: 2_347,
            },
        ],
    }
}

fn batch() -> Batch {
    Batch {
        batch_id: "batch-2024-06-01".into(),
        invoices: (0..48).map(invoice).collect(),
    }
}

/// The properties of a command as a client sends it.
fn command_properties() -> (String, Properties) {
    let msg = OutgoingMessage::command(
        "pong.EchoMessage",
        Codec::Cbor,
        Vec::new(),
        "6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f",
        "ping.EchoReturn",
        "0b9e4c1a-7d2f-4e6a-8c5b-3f1e2d4c6b8a",
    )
    .expect("valid routing keys");
    (msg.routing_key, msg.properties)
}

fn classification(c: &mut Criterion) {
    let (routing_key, properties) = command_properties();
    assert_eq!(
        classify("commands", &routing_key, &properties),
        Ok(MessageKind::Command)
    );
    let mut group = c.benchmark_group("classify");
    group.bench_function("classify/command", |b| {
        b.iter(|| {
            classify(
                black_box("commands"),
                black_box(&routing_key),
                black_box(&properties),
            )
        })
    });
    group.bench_function("envelope/command", |b| {
        b.iter(|| {
            Envelope::from_delivery(
                DeliveryInfo {
                    exchange: black_box("commands"),
                    routing_key: black_box(&routing_key),
                    delivery_tag: 1,
                    redelivered: false,
                },
                black_box(&properties),
            )
        })
    });
    group.finish();
}

/// Encode and decode `value` (typed and as a dynamic `Value`) with both codecs.
fn codec_group<T>(c: &mut Criterion, name: &str, value: &T)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let mut group = c.benchmark_group(name);
    for codec in [Codec::Cbor, Codec::Json] {
        let body = codec.encode(value).expect("encodable");
        let dynamic = codec.decode_value(&body).expect("decodable");
        assert_eq!(&codec.decode::<T>(&body).expect("decodable"), value);
        assert_eq!(codec.encode_value(&dynamic).expect("encodable"), body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let size = format!("{codec}/{}B", body.len());
        group.bench_with_input(BenchmarkId::new("encode-typed", &size), value, |b, v| {
            b.iter(|| codec.encode(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new("decode-typed", &size), &body, |b, body| {
            b.iter(|| codec.decode::<T>(black_box(body)))
        });
        group.bench_with_input(
            BenchmarkId::new("encode-value", &size),
            &dynamic,
            |b, v: &Value| b.iter(|| codec.encode_value(black_box(v))),
        );
        group.bench_with_input(BenchmarkId::new("decode-value", &size), &body, |b, body| {
            b.iter(|| codec.decode_value(black_box(body)))
        });
        // The runtime's well-formedness check before any handler runs.
        group.bench_with_input(BenchmarkId::new("check", &size), &body, |b, body| {
            b.iter(|| codec.decode::<IgnoredAny>(black_box(body)))
        });
    }
    group.finish();
}

fn codecs(c: &mut Criterion) {
    codec_group(c, "payload-200B", &invoice(7));
    codec_group(c, "payload-10KB", &batch());
}

// What `criterion_group!` and `criterion_main!` expand to, written out:
// the macros' generated function has no doc comment, which the workspace
// lints refuse.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    classification(&mut c);
    codecs(&mut c);
    c.final_summary();
}
