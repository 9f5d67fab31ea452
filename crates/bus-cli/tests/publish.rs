//! `bus publish` and `bus config` end to end: what reaches a queue, the
//! confirm, `--mandatory` returns and broker nacks.

mod common;

use amqprs::{FieldTable, FieldValue};
use bus_core::{Codec, Value};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use common::broker::Amqp;
use common::{assert_code, assert_error, bus, records, run, stdout};

/// A queue bound to `exchange` with `key`, deleted at the end.
async fn bound_queue(amqp: &Amqp, exchange: &str, key: &str) -> (String, QueueCleanup) {
    let queue = unique("bus-cli-publish");
    let cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    amqp.bus_exchanges().await;
    amqp.queue(&queue).await;
    amqp.bind(&queue, exchange, key).await;
    (queue, cleanup)
}

#[tokio::test]
async fn an_event_reaches_its_queue_persistent_with_its_conversation() {
    let amqp = Amqp::open().await;
    let key = format!("{}.Happened", unique("ev"));
    let (queue, _cleanup) = bound_queue(&amqp, "events", &key).await;

    let mut cmd = bus();
    cmd.args([
        "publish",
        &key,
        "--data",
        r#"{"id": 7}"#,
        "--conversation-id",
        "c-pub-1",
    ])
    .args(["--color", "never"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("published event {key}\n")),
        "{text}"
    );
    assert!(text.contains("  conversation_id  c-pub-1\n"), "{text}");
    assert!(text.contains("confirmed by the broker"), "{text}");

    amqp.wait_count(&queue, 1).await;
    let got = amqp.get(&queue).await.unwrap();
    assert_eq!(got.exchange, "events");
    assert_eq!(got.routing_key, key);
    assert_eq!(got.properties.delivery_mode, Some(2));
    assert_eq!(
        got.properties.content_type.as_deref(),
        Some("application/cbor")
    );
    assert_eq!(
        got.properties.headers.get("conversation_id"),
        Some(&Value::from("c-pub-1"))
    );
    assert_eq!(
        Codec::Cbor.decode_value(&got.body).unwrap(),
        Value::map([("id", Value::from(7))])
    );
    amqp.close().await;
}

#[tokio::test]
async fn a_fresh_conversation_id_is_printed_and_sent() {
    let amqp = Amqp::open().await;
    let key = format!("{}.Happened", unique("ev"));
    let (queue, _cleanup) = bound_queue(&amqp, "events", &key).await;
    let mut cmd = bus();
    cmd.args([
        "--json", "publish", &key, "--data", "[1]", "--codec", "json",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let r = &records(&out)[0];
    assert_eq!(r["kind"], "event");
    assert_eq!(r["exchange"], "events");
    assert_eq!(r["delivery_mode"], 2);
    assert_eq!(r["routing_key"], key.as_str());
    assert_eq!(r["confirmed"], true);
    assert_eq!(r["content_type"], "application/json");
    assert_eq!(r["payload"], serde_json::json!([1]));
    let printed = r["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(printed.len(), 36, "a UUID: {printed}");

    amqp.wait_count(&queue, 1).await;
    let got = amqp.get(&queue).await.unwrap();
    assert_eq!(
        got.properties.headers.get("conversation_id"),
        Some(&Value::from(printed.as_str()))
    );
    assert_eq!(
        got.properties.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(got.body, b"[1]");
    amqp.close().await;
}

#[tokio::test]
async fn mandatory_reports_an_event_nobody_receives() {
    let key = format!("{}.Unheard", unique("ev"));
    let mut cmd = bus();
    cmd.args(["publish", &key, "--data", "{}", "--mandatory"]);
    let out = run(cmd).await;
    assert_error(&out, 3, &format!("no queue is bound for event {key}"));
    assert!(
        stdout(&out).contains("returned: no queue is bound"),
        "{}",
        stdout(&out)
    );

    // Bound: routed, exit 0.
    let amqp = Amqp::open().await;
    let (queue, _cleanup) = bound_queue(&amqp, "events", &key).await;
    let mut cmd = bus();
    cmd.args(["--json", "publish", &key, "--data", "{}", "--mandatory"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(records(&out)[0]["routed"], true);
    amqp.wait_count(&queue, 1).await;
    amqp.close().await;
}

#[tokio::test]
async fn a_nack_from_the_broker_exits_75() {
    // A full queue that rejects publishes makes the broker nack.
    let amqp = Amqp::bus().await;
    let key = format!("{}.Refused", unique("ev"));
    let queue = unique("bus-cli-full");
    let _cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    let mut args = FieldTable::new();
    args.insert("x-max-length".try_into().unwrap(), FieldValue::l(0));
    args.insert(
        "x-overflow".try_into().unwrap(),
        FieldValue::S("reject-publish".try_into().unwrap()),
    );
    amqp.queue_with(&queue, args).await;
    amqp.bind(&queue, "events", &key).await;
    let mut cmd = bus();
    cmd.args(["publish", &key, "--data", "{}"]);
    let out = run(cmd).await;
    assert_error(&out, 75, &format!("the broker refused events {key} (nack)"));
    amqp.close().await;
}

#[tokio::test]
async fn a_configuration_goes_to_configurations_without_a_conversation() {
    let amqp = Amqp::open().await;
    let key = format!("{}.Settings", unique("cfg"));
    let (queue, _cleanup) = bound_queue(&amqp, "configurations", &key).await;
    let mut cmd = bus();
    cmd.args([
        "config",
        &key,
        "--data",
        r#"{"timeout": 30}"#,
        "--color",
        "never",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert!(stdout(&out).starts_with(&format!("published configuration {key}\n")));
    amqp.wait_count(&queue, 1).await;
    let got = amqp.get(&queue).await.unwrap();
    assert_eq!(got.exchange, "configurations");
    assert_eq!(
        got.properties.headers.get("conversation_id"),
        Some(&Value::from(""))
    );
    assert_eq!(got.properties.delivery_mode, Some(2));
    assert_eq!(
        Codec::Cbor.decode_value(&got.body).unwrap(),
        Value::map([("timeout", Value::from(30))])
    );

    let mut cmd = bus();
    cmd.args(["--json", "config", &key, "--data", "{}"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(records(&out)[0]["kind"], "configuration");
    amqp.close().await;
}

#[tokio::test]
async fn colour_follows_the_terminal_no_color_and_the_flag() {
    let key = format!("{}.Coloured", unique("ev"));
    let coloured = |out: &std::process::Output| stdout(out).contains('\u{1b}');
    // CLICOLOR_FORCE stands for a terminal here.
    let mut cmd = bus();
    cmd.env("CLICOLOR_FORCE", "1")
        .args(["publish", &key, "--data", "{}"]);
    assert!(coloured(&run(cmd).await));
    let mut cmd = bus();
    cmd.env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .args(["publish", &key, "--data", "{}"]);
    assert!(!coloured(&run(cmd).await));
    let mut cmd = bus();
    cmd.env("NO_COLOR", "1")
        .args(["--color", "always", "publish", &key, "--data", "{}"]);
    assert!(coloured(&run(cmd).await));
    // Piped, by default: plain.
    let mut cmd = bus();
    cmd.args(["publish", &key, "--data", "{}"]);
    assert!(!coloured(&run(cmd).await));
}
