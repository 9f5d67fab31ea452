//! Scenario 2: events with payload fidelity, in CBOR and in JSON, both
//! directions. The payload (`fixtures.rs` / `python/fixtures.py`) has
//! unicode text and emoji, nested and empty maps and lists, integers at the
//! limits of i64 and u64 and negative ones, floats large, small, whole and
//! signed, booleans and null; the CBOR one adds byte strings, -2^64,
//! infinities and NaN. Each side compares what it got with its own literal.

use bus_core::{Codec, OutgoingMessage, Value};
use bus_service::{Context, HandlerResult, Message, Outcome, Service, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use tokio::sync::mpsc;

use crate::fixtures::{difference, payload_for};
use crate::process::{Proc, WAIT, tagged};
use crate::services::{start, stop};
use crate::tools::{python_service, suite_python};

const CONVERSATION: &str = "conv-fixtures-é";

/// The routing key of the fixture event for `codec`.
fn key(service: &str, codec: Codec) -> String {
    match codec {
        Codec::Cbor => format!("{service}.Cbor"),
        Codec::Json => format!("{service}.Json"),
    }
}

pub(crate) async fn rust_to_python() {
    let name = unique("py-fixtures");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::events_queue(&name)]);
    let mut receiver = python_service("fixture_receiver.py", &[&name]).await;

    let publisher = ServiceBuilder::new(&unique("rs-fixtures"))
        .url(&amqp_url())
        .start_publisher()
        .expect("start the publisher");
    for codec in [Codec::Cbor, Codec::Json] {
        let key = key(&name, codec);
        let body = codec
            .encode_value(&payload_for(&key))
            .expect("encode the fixture");
        let event = OutgoingMessage::event(&key, codec, body, CONVERSATION).expect("event");
        tokio::time::timeout(WAIT, publisher.publish(event))
            .await
            .expect("confirmed in time")
            .expect("published");
    }

    for codec in [Codec::Cbor, Codec::Json] {
        let key = key(&name, codec);
        let verdict = receiver
            .wait_line(crate::process::Stream::Out, &key, WAIT, |line| {
                ["MATCH", "MISMATCH"].into_iter().find_map(|tag| {
                    tagged(line, tag)
                        .filter(|v| v["key"] == key.as_str())
                        .map(|v| (tag, v))
                })
            })
            .await;
        assert_eq!(
            verdict.0, "MATCH",
            "{codec:?}: Python got another value: {}",
            verdict.1
        );
        assert_eq!(verdict.1["conversation_id"], CONVERSATION);
    }

    publisher.close().await.expect("close the publisher");
    receiver.stop_cleanly().await;
}

/// What the Rust receiver got: routing key, codec, conversation id, payload.
type Received = (String, Codec, String, Result<Value, String>);

/// Hands every event it receives to the scenario.
struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
}

impl Service for Receiver {
    async fn handle_event(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let value = msg.value().map_err(|e| e.to_string());
        let _ = self.tx.send((
            msg.routing_key().to_owned(),
            msg.codec(),
            msg.conversation_id().to_owned(),
            value,
        ));
        Ok(Outcome::Done)
    }
}

pub(crate) async fn python_to_rust() {
    let name = unique("rs-fixtures");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::events_queue(&name)]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let builder = ServiceBuilder::new(&name)
        .url(&amqp_url())
        .event_keys([key(&name, Codec::Cbor), key(&name, Codec::Json)]);
    let receiver = start(builder, Receiver { tx }).await;

    let mut publisher = Proc::spawn(
        "fixture_publisher.py",
        suite_python("fixture_publisher.py", &amqp_url(), &[&name, CONVERSATION]),
    );
    publisher.wait_for("PUBLISHED").await;

    for codec in [Codec::Cbor, Codec::Json] {
        let (key, got_codec, conversation, value) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {WAIT:?}\n{}", publisher.transcript()))
            .expect("the receiver is running");
        // eventail publishes in order on one channel.
        assert_eq!(key, self::key(&name, codec));
        assert_eq!(got_codec, codec, "{key}: content type");
        assert_eq!(conversation, CONVERSATION);
        let value = value.unwrap_or_else(|e| panic!("{key}: cannot decode: {e}"));
        if let Some(found) = difference(&value, &payload_for(&key), "$") {
            panic!("{key}: Rust got another value: {found}");
        }
    }

    publisher.stop_cleanly().await;
    stop(receiver).await;
}
