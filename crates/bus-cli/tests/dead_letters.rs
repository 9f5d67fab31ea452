//! `bus inspect` and `bus resurrect` end to end, on real dead letters: a
//! service queue with a dead-letter policy, messages rejected into it.

mod common;

use amqprs::channel::ExchangeDeclareArguments;
use bus_core::{Codec, Value};
use bus_test_support::{Policy, QueueCleanup, amqp_url, unique};
use common::broker::{Amqp, props};
use common::{assert_code, bus, records, run, stderr, stdout};

/// A service queue whose rejected messages go to `dlq`.
struct DeadLetters {
    service_queue: String,
    dlq: String,
    prefix: String,
    _policy: Policy,
    _cleanup: QueueCleanup,
}

impl DeadLetters {
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }
}

/// Sets up the queues, then publishes one event per `(name, conversation)`
/// and dead-letters them all.
async fn dead_letters(amqp: &Amqp, events: &[(&str, &str)]) -> DeadLetters {
    let prefix = unique("dl");
    let service_queue = format!("{prefix}.events");
    let dlq = format!("{prefix}-dlq");
    let dlx = format!("{prefix}-dlx");
    let cleanup = QueueCleanup::new(&amqp_url(), [service_queue.clone(), dlq.clone()]);
    amqp.bus_exchanges().await;
    // Deleted with its last binding, when the dead-letter queue goes.
    amqp.channel
        .exchange_declare(
            ExchangeDeclareArguments::new(&dlx, "topic")
                .auto_delete(true)
                .finish(),
        )
        .await
        .unwrap();
    amqp.queue(&dlq).await;
    amqp.bind(&dlq, &dlx, "#").await;
    // The policy exists before the queue, so the queue has it from the start.
    let policy = Policy::set(
        &format!("^{service_queue}$"),
        &format!(r#"{{"dead-letter-exchange":"{dlx}"}}"#),
        "queues",
    )
    .unwrap();
    amqp.queue(&service_queue).await;
    amqp.bind(&service_queue, "events", &format!("{prefix}.#"))
        .await;
    let set = DeadLetters {
        service_queue,
        dlq,
        prefix,
        _policy: policy,
        _cleanup: cleanup,
    };
    for (name, conversation) in events {
        let body = Codec::Cbor
            .encode_value(&Value::map([("conversation", Value::from(*conversation))]))
            .unwrap();
        amqp.publish(
            "events",
            &set.key(name),
            &props("application/cbor", Some(conversation)),
            &body,
        )
        .await;
    }
    amqp.wait_count(&set.service_queue, events.len() as u32)
        .await;
    for _ in events {
        let got = amqp.get(&set.service_queue).await.unwrap();
        amqp.reject(got.delivery_tag).await;
    }
    amqp.wait_count(&set.dlq, events.len() as u32).await;
    set
}

#[tokio::test]
async fn inspect_shows_dead_letters_and_leaves_them() {
    let amqp = Amqp::open().await;
    let dl = dead_letters(
        &amqp,
        &[("Happened", "c-0"), ("Happened", "c-1"), ("Other", "c-2")],
    )
    .await;

    let mut cmd = bus();
    cmd.args(["--color", "never", "inspect", &dl.dlq]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    for needle in [
        format!("event {}\n  conversation_id  c-0\n", dl.key("Happened")),
        format!("event {}\n  conversation_id  c-2\n", dl.key("Other")),
        "\"x-death\": [".to_owned(),
        "\"reason\": \"rejected\"".to_owned(),
        format!("\"queue\": \"{}\"", dl.service_queue),
        "\"x-first-death-exchange\": \"events\"".to_owned(),
        "\"conversation\": \"c-1\"".to_owned(),
        "content_type=application/cbor delivery_mode=2".to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in:\n{text}");
    }
    assert!(stderr(&out).contains(&format!("3 of 3 message(s) shown and left in {}", dl.dlq)));
    // Still there, in order, and now marked redelivered.
    amqp.wait_count(&dl.dlq, 3).await;

    let mut cmd = bus();
    cmd.args(["--json", "inspect", &dl.dlq, "--count", "2"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let records = records(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["conversation_id"], "c-0");
    assert_eq!(records[0]["redelivered"], true, "inspected once already");
    assert_eq!(records[0]["headers"]["x-death"][0]["reason"], "rejected");
    assert_eq!(records[0]["headers"]["x-death"][0]["count"], 1);
    assert_eq!(
        records[1]["payload"],
        serde_json::json!({"conversation": "c-1"})
    );
    amqp.wait_count(&dl.dlq, 3).await;
    let first = amqp.get(&dl.dlq).await.unwrap();
    assert_eq!(
        first.properties.headers.get("conversation_id"),
        Some(&Value::from("c-0"))
    );
    amqp.requeue_all(first.delivery_tag).await;
    amqp.close().await;
}

#[tokio::test]
async fn inspect_saves_payloads_in_their_format() {
    let amqp = Amqp::open().await;
    let dl = dead_letters(&amqp, &[("Happened", "c-save")]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bus();
    cmd.args(["inspect", &dl.dlq, "--save"])
        .current_dir(dir.path());
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("saved as "), "{}", stdout(&out));
    let saved = std::fs::read(
        dir.path()
            .join(format!("{}.c-save.cbor", dl.key("Happened"))),
    )
    .unwrap();
    assert_eq!(
        Codec::Cbor.decode_value(&saved).unwrap(),
        Value::map([("conversation", Value::from("c-save"))])
    );
    amqp.wait_count(&dl.dlq, 1).await;
    amqp.close().await;
}

#[tokio::test]
async fn resurrect_moves_selected_dead_letters_back() {
    let amqp = Amqp::open().await;
    let dl = dead_letters(
        &amqp,
        &[("Happened", "c-0"), ("Other", "c-1"), ("Happened", "c-2")],
    )
    .await;

    // A dry run moves nothing.
    let mut cmd = bus();
    cmd.args([
        "--color",
        "never",
        "resurrect",
        &dl.dlq,
        "--filter",
        &dl.key("Happened"),
        "--dry-run",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("would move {} → events [c-0]", dl.key("Happened"))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "skipped    {} [c-1]: not selected by --filter",
            dl.key("Other")
        )),
        "{text}"
    );
    assert!(
        text.ends_with("would move 2, skipped 1, failed 0\n"),
        "{text}"
    );
    amqp.wait_count(&dl.dlq, 3).await;
    amqp.wait_count(&dl.service_queue, 0).await;

    // One at a time, only the selected key.
    let mut cmd = bus();
    cmd.args([
        "--color",
        "never",
        "resurrect",
        &dl.dlq,
        "--filter",
        &dl.key("Happened"),
        "--batch-size",
        "1",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert!(
        stdout(&out).ends_with("moved 2, skipped 1, failed 0\n"),
        "{}",
        stdout(&out)
    );
    amqp.wait_count(&dl.dlq, 1).await;
    amqp.wait_count(&dl.service_queue, 2).await;
    // Back as they were: routing key, properties, headers (x-death too).
    let back = amqp.get(&dl.service_queue).await.unwrap();
    assert_eq!(back.exchange, "events");
    assert_eq!(back.routing_key, dl.key("Happened"));
    assert_eq!(
        back.properties.headers.get("conversation_id"),
        Some(&Value::from("c-0"))
    );
    assert_eq!(
        back.properties.content_type.as_deref(),
        Some("application/cbor")
    );
    assert_eq!(back.properties.delivery_mode, Some(2));
    assert_eq!(
        back.properties.headers.get("x-first-death-exchange"),
        Some(&Value::from("events"))
    );
    assert!(
        matches!(back.properties.headers.get("x-death"), Some(Value::Array(deaths)) if deaths.len() == 1)
    );
    assert_eq!(
        Codec::Cbor.decode_value(&back.body).unwrap(),
        Value::map([("conversation", Value::from("c-0"))])
    );
    amqp.requeue_all(back.delivery_tag).await;

    // The rest, as NDJSON.
    let mut cmd = bus();
    cmd.args(["--json", "resurrect", &dl.dlq]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let records = records(&out);
    assert_eq!(records[0]["action"], "moved");
    assert_eq!(records[0]["routing_key"], dl.key("Other"));
    assert_eq!(records[0]["exchange"], "events");
    assert_eq!(records[0]["conversation_id"], "c-1");
    assert_eq!(
        records[1]["summary"],
        serde_json::json!({"dry_run": false, "moved": 1, "would_move": 0, "skipped": 0, "failed": 0})
    );
    amqp.wait_count(&dl.dlq, 0).await;
    amqp.wait_count(&dl.service_queue, 3).await;
    amqp.close().await;
}

#[tokio::test]
async fn resurrect_leaves_what_it_cannot_move() {
    let amqp = Amqp::bus().await;
    let dlq = unique("dl-odd");
    let _cleanup = QueueCleanup::new(&amqp_url(), [dlq.clone()]);
    amqp.queue(&dlq).await;
    let dead = |exchange: Option<&str>, conversation: &str| {
        let mut p = props("application/json", Some(conversation));
        if let Some(exchange) = exchange {
            p.headers
                .insert("x-first-death-exchange".into(), Value::from(exchange));
        }
        p
    };
    let ghost = unique("no-such-exchange");
    // Straight into the queue through the default exchange.
    amqp.publish("", &dlq, &dead(Some(&ghost), "c-ghost"), b"{}")
        .await;
    amqp.publish("", &dlq, &dead(None, "c-plain"), b"{}").await;
    amqp.publish("", &dlq, &dead(Some("events"), "c-unroutable"), b"{}")
        .await;
    // The last one's routing key is the queue name (default exchange):
    // republished to `events`, it finds no queue.
    amqp.wait_count(&dlq, 3).await;

    let mut cmd = bus();
    cmd.args(["--color", "never", "resurrect", &dlq]);
    let out = run(cmd).await;
    assert_code(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("exchange {ghost:?} does not exist")),
        "{text}"
    );
    assert!(
        text.contains("no x-first-death-exchange header: not a dead letter"),
        "{text}"
    );
    assert!(text.contains("unroutable: no queue is bound"), "{text}");
    assert!(text.ends_with("moved 0, skipped 1, failed 2\n"), "{text}");
    // All three are still there.
    amqp.wait_count(&dlq, 3).await;
    amqp.close().await;
}
