//! Behaviour 4 of the runtime, against the real broker: eventail's failure
//! policy. A handler error or panic is retried once (ALERT log), then
//! dead-lettered (EMERGENCY "Giving up"); a message that breaks the protocol
//! or does not decode is dead-lettered at once with an EMERGENCY log; the
//! service keeps running throughout.
//!
//! Dead letters are observed as eventail's README recommends: a policy gives
//! the service's queues a dead-letter exchange, and a queue bound to it
//! receives them.

mod probe;

use bus_core::{Codec, PERSISTENT, Properties, Value, commands_queue, events_queue};
use bus_service::{Context, HandlerError, Router, ServiceHandle, ServiceState};
use bus_test_support::{Policy, QueueCleanup, amqp_url, unique};
use probe::{Listener, Probe, Received, builder, start, stop, text, wait_for_queue_row};
use serde::Deserialize;
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct Order {
    action: String,
}

/// What the handler saw: the action and whether it was a redelivery.
type Seen = mpsc::UnboundedReceiver<(String, bool)>;

/// A service whose command handler fails, panics or succeeds as told,
/// plus an event route, with its queues dead-lettering to a queue of the
/// test, and the logs of the service.
struct Bench {
    svc: String,
    probe: Probe,
    dead_letters: Listener,
    logs: Listener,
    seen: Seen,
    handle: ServiceHandle,
    _policy: Policy,
    _cleanup: QueueCleanup,
}

impl Bench {
    async fn start(prefix: &str) -> Bench {
        let svc = unique(prefix);
        let cleanup = QueueCleanup::new(&amqp_url(), [events_queue(&svc), commands_queue(&svc)]);
        let probe = Probe::open().await;
        let dlx = unique("dlx");
        // Auto-deleted with its last binding, the probe's queue below.
        probe.declare_exchange(&dlx, "fanout").await;
        let dead_letters = probe.listen(&dlx, &[""]).await;
        let logs = probe.listen("logs", &[format!("{svc}.*")]).await;
        let policy = Policy::set(
            &format!(r"^{svc}\.(events|commands)$"),
            &format!(r#"{{"dead-letter-exchange":"{dlx}"}}"#),
            "queues",
        )
        .expect("policy set");

        let (tx, seen) = mpsc::unbounded_channel();
        let events_tx = tx.clone();
        let router = Router::new()
            .command("Do", move |ctx: Context, order: Order| {
                let tx = tx.clone();
                async move {
                    let redelivered = ctx.delivery().expect("a delivery").redelivered();
                    let _ = tx.send((order.action.clone(), redelivered));
                    match order.action.as_str() {
                        "fail" => Err(HandlerError::msg("boom: the handler refused")),
                        "panic" => panic!("kaboom in the handler"),
                        _ => Ok(()),
                    }
                }
            })
            .event(&format!("{svc}.Happened"), move |_ctx, order: Order| {
                let _ = events_tx.send((order.action, false));
                async {}
            });
        let handle = start(builder(&svc), router).await;
        // Policies apply asynchronously.
        for queue in [events_queue(&svc), commands_queue(&svc)] {
            wait_for_queue_row(&queue, &["policy"], |r| r["policy"] == policy.name()).await;
        }
        Bench {
            svc,
            probe,
            dead_letters,
            logs,
            seen,
            handle,
            _policy: policy,
            _cleanup: cleanup,
        }
    }

    fn command(&self) -> String {
        format!("{}.Do", self.svc)
    }

    async fn send(&self, action: &str, conversation: &str) {
        let payload = Value::map([("action", Value::from(action))]);
        let reply_to = format!("{}.Reply", unique("nobody"));
        self.probe
            .send_command(&self.command(), &payload, conversation, &reply_to, "1")
            .await;
    }

    async fn next_seen(&mut self) -> (String, bool) {
        tokio::time::timeout(probe::WAIT, self.seen.recv())
            .await
            .expect("handler called in time")
            .expect("service running")
    }

    /// The next log record of the service: its level name and fields.
    async fn next_log(&mut self) -> (String, serde_json::Map<String, serde_json::Value>) {
        let record = self.logs.next("a log record").await;
        let gelf = record.gelf();
        let level = gelf["_levelname"].as_str().expect("levelname").to_owned();
        assert_eq!(record.routing_key, format!("{}.{level}", self.svc));
        (level, gelf)
    }

    async fn next_dead_letter(&mut self) -> Received {
        self.dead_letters.next("a dead letter").await
    }

    /// A good command is still handled, and the service is ready.
    async fn still_serves(&mut self) {
        self.send("ok", &unique("conv")).await;
        assert_eq!(self.next_seen().await, ("ok".to_owned(), false));
        assert_eq!(self.handle.health().state(), ServiceState::Ready);
    }

    async fn finish(self) {
        stop(self.handle).await;
        self.probe.close().await;
    }
}

/// Checks that `dead` was rejected from `queue` on its first delivery.
fn assert_dead_lettered_from(dead: &Received, queue: &str, routing_key: &str) {
    assert_eq!(dead.routing_key, routing_key);
    let death = dead.x_death();
    assert_eq!(
        death.get("reason").and_then(Value::as_str),
        Some("rejected")
    );
    assert_eq!(death.get("queue").and_then(Value::as_str), Some(queue));
    assert_eq!(death.get("count").and_then(Value::as_i64), Some(1));
}

async fn retried_once_then_dead_lettered(action: &str, error_text: &str) {
    let mut bench = Bench::start("fail-retry").await;
    let conversation = unique("conv");
    bench.send(action, &conversation).await;

    assert_eq!(bench.next_seen().await, (action.to_owned(), false));
    assert_eq!(
        bench.next_seen().await,
        (action.to_owned(), true),
        "requeued, then redelivered"
    );
    let command = bench.command();
    for attempt in ["first delivery", "redelivery"] {
        let (level, log) = bench.next_log().await;
        assert_eq!(level, "ALERT", "{attempt}: {log:?}");
        assert_eq!(log["level"], 1);
        assert_eq!(
            log["short_message"],
            format!("Unhandled error while processing message {command}")
        );
        let full = log["full_message"].as_str().unwrap();
        assert!(full.contains(error_text), "{attempt}: {full}");
        assert_eq!(log["_conversation_id"], conversation.as_str());
    }
    let (level, log) = bench.next_log().await;
    assert_eq!(level, "EMERGENCY", "{log:?}");
    assert_eq!(log["level"], 0);
    assert_eq!(log["short_message"], format!("Giving up on {command}"));
    assert!(log["full_message"].as_str().unwrap().contains(error_text));
    assert_eq!(log["_conversation_id"], conversation.as_str());

    let dead = bench.next_dead_letter().await;
    assert_dead_lettered_from(&dead, &commands_queue(&bench.svc), &command);
    assert_eq!(dead.conversation_id(), Some(conversation.as_str()));
    assert_eq!(text(&dead.value(), "action"), action);

    let counters = bench.handle.health().counters();
    assert_eq!((counters.failed, counters.dead_lettered), (2, 1));
    bench.still_serves().await;
    bench.finish().await;
}

#[tokio::test]
async fn a_failing_handler_is_retried_once_then_dead_lettered() {
    retried_once_then_dead_lettered("fail", "boom: the handler refused").await;
}

#[tokio::test]
async fn a_panicking_handler_is_treated_like_a_failing_one() {
    retried_once_then_dead_lettered("panic", "kaboom in the handler").await;
}

/// Properties of a command as a peer would send it, minus what a case removes.
fn command_properties(conversation: Option<&str>, reply_to: Option<&str>) -> Properties {
    let mut properties = Properties {
        content_type: Some(Codec::Cbor.content_type().to_owned()),
        delivery_mode: Some(PERSISTENT),
        reply_to: reply_to.map(str::to_owned),
        correlation_id: Some("1".to_owned()),
        ..Properties::default()
    };
    if let Some(c) = conversation {
        properties
            .headers
            .insert("conversation_id".to_owned(), Value::from(c));
    }
    properties
}

#[tokio::test]
async fn invalid_messages_are_dead_lettered_at_once() {
    let mut bench = Bench::start("fail-invalid").await;
    let svc = bench.svc.clone();
    let command = bench.command();
    let event = format!("{svc}.Happened");
    let reply_to = format!("{}.Reply", unique("nobody"));
    let cbor = |action: &str| {
        Codec::Cbor
            .encode_value(&Value::map([("action", Value::from(action))]))
            .unwrap()
    };
    let conversation = unique("conv");
    // (case, exchange, routing key, properties, body, queue, short log message)
    let cases = [
        (
            "command without conversation_id",
            "commands",
            command.clone(),
            command_properties(None, Some(&reply_to)),
            cbor("no-conversation"),
            commands_queue(&svc),
            format!("Missing headers on {command}"),
        ),
        (
            "event without conversation_id",
            "events",
            event.clone(),
            command_properties(None, None),
            cbor("no-conversation"),
            events_queue(&svc),
            format!("Missing headers on {event}"),
        ),
        (
            "CBOR garbage",
            "commands",
            command.clone(),
            command_properties(Some(&conversation), Some(&reply_to)),
            vec![0xff, 0xfe, 0x00, 0x1c],
            commands_queue(&svc),
            format!("Unable to decode payload for {command}; dead lettering."),
        ),
        (
            "payload that does not fit the handler's type",
            "commands",
            command.clone(),
            command_properties(Some(&conversation), Some(&reply_to)),
            Codec::Cbor
                .encode_value(&Value::map([("nope", Value::from(1))]))
                .unwrap(),
            commands_queue(&svc),
            format!("Unable to decode payload for {command}; dead lettering."),
        ),
        (
            "command with neither reply_to nor status",
            "commands",
            command.clone(),
            command_properties(Some(&conversation), None),
            cbor("no-reply-to"),
            commands_queue(&svc),
            format!(
                "message on commands with neither reply_to nor status: {command}; dead lettering."
            ),
        ),
    ];

    for (case, exchange, routing_key, properties, body, queue, short) in cases {
        bench
            .probe
            .publish(exchange, &routing_key, &properties, body.clone())
            .await;
        let dead = bench.next_dead_letter().await;
        assert_dead_lettered_from(&dead, &queue, &routing_key);
        assert_eq!(dead.body, body, "{case}");
        let (level, log) = bench.next_log().await;
        assert_eq!(level, "EMERGENCY", "{case}: {log:?}");
        assert_eq!(log["short_message"], short.as_str(), "{case}");
        let expected_conversation = properties
            .headers
            .get("conversation_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(
            log["_conversation_id"], expected_conversation,
            "{case}: {log:?}"
        );
    }

    assert!(
        bench.seen.try_recv().is_err(),
        "no handler saw an invalid message"
    );
    assert_eq!(bench.handle.health().counters().dead_lettered, 5);
    bench.still_serves().await;
    bench.finish().await;
}
