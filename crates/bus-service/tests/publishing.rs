//! Behaviour 2 of the runtime, against the real broker: what a service
//! publishes. Persistent messages, CBOR by default and JSON on request, the
//! `conversation_id` header always, `status` on results, `reply_to` and
//! `correlation_id` on commands; eventail's `mandatory` defaults, per-call
//! overrides, and returned messages reaching `Service::handle_returned`.

mod probe;

use std::time::Duration;

use bus_core::{Codec, OutgoingMessage, PERSISTENT, Value, commands_queue};
use bus_service::{Context, HandlerResult, Message, Outcome, Returned, Service};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use probe::{Probe, Received, WAIT, builder, start, stop};
use tokio::sync::mpsc;

/// On `<svc>.Do`, publishes one message of each kind, all derived from
/// the command's payload.
struct Emitter {
    svc: String,
    peer: String,
}

fn derived(payload: &Value) -> Value {
    Value::map([
        ("echo", payload.get("text").cloned().unwrap_or(Value::Null)),
        ("n", Value::from(42)),
        ("ratio", Value::from(0.5)),
        ("list", Value::from(vec![Value::Bool(true), Value::Null])),
    ])
}

impl Service for Emitter {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        let out = derived(&msg.value()?);
        let conversation = ctx.conversation_id().to_owned();
        let (svc, peer) = (&self.svc, &self.peer);
        ctx.publish_event(&format!("{svc}.Done"), &out, &conversation)
            .await?;
        ctx.send_command(
            &format!("{peer}.Ask"),
            &out,
            &conversation,
            &format!("{svc}.Answer"),
            "corr-ask",
        )
        .await?;
        ctx.reply_success(&out).await?;
        ctx.return_error(&format!("{peer}.Failed"), &out, &conversation, "corr-err")
            .await?;
        ctx.publish_configuration(&format!("{svc}.Settings"), &out)
            .await?;
        Ok(Outcome::Done)
    }
}

fn assert_business(msg: &Received, codec: Codec, conversation: &str, expected: &Value) {
    let what = &msg.routing_key;
    assert_eq!(
        msg.properties.delivery_mode,
        Some(PERSISTENT),
        "{what} persistent"
    );
    assert_eq!(
        msg.properties.content_type.as_deref(),
        Some(codec.content_type()),
        "{what} content type"
    );
    assert_eq!(
        msg.conversation_id(),
        Some(conversation),
        "{what} conversation_id"
    );
    let decoded = codec.decode_value(&msg.body).expect("decodes as announced");
    assert_eq!(&decoded, expected, "{what} payload");
}

async fn publishes_with(codec: Codec) {
    let svc = unique("pub");
    let peer = unique("peer");
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands_queue(&svc)]);
    let mut b = builder(&svc).command_keys([format!("{svc}.Do")]);
    if codec == Codec::Json {
        b = b.json();
    }
    let probe = Probe::open().await;
    let reply_to = format!("{}.Reply", unique("probe"));
    let mut events = probe.listen("events", &[format!("{svc}.Done")]).await;
    let mut commands = probe
        .listen(
            "commands",
            &[
                format!("{peer}.Ask"),
                format!("{peer}.Failed"),
                reply_to.clone(),
            ],
        )
        .await;
    let mut configurations = probe
        .listen("configurations", &[format!("{svc}.Settings")])
        .await;
    let handle = start(
        b,
        Emitter {
            svc: svc.clone(),
            peer: peer.clone(),
        },
    )
    .await;

    let conversation = unique("conv");
    let payload = Value::map([("text", Value::from("héllo"))]);
    probe
        .send_command(
            &format!("{svc}.Do"),
            &payload,
            &conversation,
            &reply_to,
            "corr-do",
        )
        .await;
    let expected = derived(&payload);

    let event = events.next("the event").await;
    assert_eq!(event.exchange, "events");
    assert_business(&event, codec, &conversation, &expected);
    assert_eq!(event.status(), None, "no status on events");

    let mut on_commands = Vec::new();
    for _ in 0..3 {
        on_commands.push(commands.next("a command or result").await);
    }
    on_commands.sort_by(|a, b| a.routing_key.cmp(&b.routing_key));
    let find = |key: &str| {
        on_commands
            .iter()
            .find(|m| m.routing_key == key)
            .unwrap_or_else(|| panic!("{key} published"))
    };

    let command = find(&format!("{peer}.Ask"));
    assert_business(command, codec, &conversation, &expected);
    assert_eq!(
        command.properties.reply_to.as_deref(),
        Some(format!("{svc}.Answer").as_str())
    );
    assert_eq!(
        command.properties.correlation_id.as_deref(),
        Some("corr-ask")
    );
    assert_eq!(command.status(), None, "no status on commands");

    let success = find(&reply_to);
    assert_business(success, codec, &conversation, &expected);
    assert_eq!(success.status(), Some("success"));
    assert_eq!(
        success.properties.correlation_id.as_deref(),
        Some("corr-do"),
        "a reply carries the command's correlation id"
    );
    assert_eq!(success.properties.reply_to, None);

    let error = find(&format!("{peer}.Failed"));
    assert_business(error, codec, &conversation, &expected);
    assert_eq!(error.status(), Some("error"));
    assert_eq!(error.properties.correlation_id.as_deref(), Some("corr-err"));

    let configuration = configurations.next("the configuration").await;
    assert_business(&configuration, codec, "", &expected);

    probe.close().await;
    stop(handle).await;
}

#[tokio::test]
async fn messages_are_persistent_cbor_with_the_protocol_headers() {
    publishes_with(Codec::Cbor).await;
}

#[tokio::test]
async fn json_is_used_when_asked() {
    publishes_with(Codec::Json).await;
}

/// Hands every returned message to the test.
struct Returns(mpsc::UnboundedSender<Returned>);

impl Service for Returns {
    async fn handle_returned(&self, _ctx: Context, returned: Returned) {
        let _ = self.0.send(returned);
    }
}

#[tokio::test]
async fn mandatory_follows_eventails_defaults_and_returns_reach_the_hook() {
    let svc = unique("pub-returns");
    let (tx, mut returns) = mpsc::unbounded_channel();
    let handle = start(builder(&svc), Returns(tx)).await;
    let ctx = handle.context();
    // Keys no queue is bound to.
    let nowhere = |what: &str| format!("{}.{what}", unique("nowhere"));
    let (event, command, result) = (nowhere("Event"), nowhere("Command"), nowhere("Result"));
    let (mandatory_event, optional_command) = (nowhere("Event"), nowhere("Command"));
    let (configuration, last) = (nowhere("Settings"), nowhere("Last"));
    let payload = Value::map([("k", Value::from("v"))]);
    let body = Codec::Cbor.encode_value(&payload).expect("encode");

    ctx.publish_event(&event, &payload, "conv-event")
        .await
        .unwrap();
    ctx.send_command(&command, &payload, "conv-command", "x.Reply", "corr-1")
        .await
        .unwrap();
    ctx.return_success(&result, &payload, "conv-result", "corr-2")
        .await
        .unwrap();
    let msg = OutgoingMessage::event(&mandatory_event, Codec::Cbor, body.clone(), "conv-3")
        .unwrap()
        .with_mandatory(true);
    ctx.publish(msg).await.unwrap();
    let msg = OutgoingMessage::command(
        &optional_command,
        Codec::Cbor,
        body,
        "conv-4",
        "x.Reply",
        "corr-4",
    )
    .unwrap()
    .with_mandatory(false);
    ctx.publish(msg).await.unwrap();
    ctx.publish_configuration(&configuration, &payload)
        .await
        .unwrap();
    ctx.send_command(&last, &payload, "conv-last", "x.Reply", "corr-last")
        .await
        .unwrap();

    let mut returned = Vec::new();
    loop {
        let r = tokio::time::timeout(WAIT, returns.recv())
            .await
            .expect("the last command comes back")
            .expect("service running");
        let done = r.routing_key == last;
        returned.push(r);
        if done {
            break;
        }
    }
    // The broker returns a message before confirming it, and the messages
    // above went out in order on one channel: once everything is confirmed,
    // every return has reached the service.
    let deadline = tokio::time::Instant::now() + WAIT;
    while handle.health().counters().pending_confirms > 0 {
        assert!(tokio::time::Instant::now() < deadline, "confirms arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(r) = returns.try_recv() {
        returned.push(r);
    }

    let mut keys: Vec<&str> = returned.iter().map(|r| r.routing_key.as_str()).collect();
    keys.sort_unstable();
    let mut expected = vec![
        command.as_str(),
        result.as_str(),
        mandatory_event.as_str(),
        last.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly the mandatory messages come back");

    let by_key = |key: &str| returned.iter().find(|r| r.routing_key == key).unwrap();
    let r = by_key(&command);
    assert_eq!(r.reply_code, 312, "NO_ROUTE");
    assert_eq!(r.exchange, "commands");
    assert_eq!(r.conversation_id(), Some("conv-command"));
    assert_eq!(r.correlation_id(), Some("corr-1"));
    assert_eq!(r.properties.reply_to.as_deref(), Some("x.Reply"));
    assert_eq!(r.payload::<Value>().unwrap(), payload);
    let r = by_key(&result);
    assert_eq!(r.exchange, "commands");
    assert_eq!(r.correlation_id(), Some("corr-2"));
    assert_eq!(
        r.properties.headers.get("status").and_then(Value::as_str),
        Some("success")
    );
    assert_eq!(by_key(&mandatory_event).exchange, "events");

    stop(handle).await;
}
