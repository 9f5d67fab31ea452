//! Behaviour 12: the examples `pong` and `ping` run as separate programs
//! against the broker, together and with this crate's client. (eventail's
//! `send_command.py` against `pong`, and `ping` against an eventail `pong`,
//! are scenarios of the interoperability suite, `tests/interop`.)
//!
//! `pong` has the fixed logical name `pong`, so every run of it shares the
//! queue `pong.commands`: this is the only test that runs it on the test
//! broker's vhost (`guide_examples.rs` runs one on a vhost of its own), and it
//! deletes that queue afterwards. It is one test rather than several so
//! that no two `pong`s of this binary run at once.

mod probe;
mod programs;

use std::time::{Duration, Instant};

use bus_service::bus_core::{Exchange, GelfRecord, LogLevel, Status};
use bus_service::{CallError, CallOptions, Client};
use bus_test_support::{QueueCleanup, amqp_url, rabbitmqctl, unique};
use serde_json::json;

use probe::{Listener, Probe, WAIT, builder, queue_row, wait_until_empty};
use programs::{Program, examples_dir};

/// Calls `pong.EchoMessage` until pong has declared its queue (the call is
/// unroutable before) and answered.
async fn call_pong(client: &Client, text: &str, conversation: &str) -> bus_service::Reply {
    let deadline = Instant::now() + WAIT;
    loop {
        let options = CallOptions {
            timeout: WAIT,
            conversation_id: Some(conversation.to_owned()),
        };
        match client
            .call_with("pong.EchoMessage", &json!({ "message": text }), options)
            .await
        {
            Ok(reply) => return reply,
            Err(CallError::Unroutable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("pong.EchoMessage: {error}"),
        }
    }
}

/// The first INFO record about `text` that pong logged on the bus.
async fn pong_log(logs: &mut Listener, text: &str) -> GelfRecord {
    let about =
        |body: &[u8]| GelfRecord::from_bytes(body).is_ok_and(|r| r.full_message.contains(text));
    let message = logs.next_where("pong's log", |m| about(&m.body)).await;
    assert_eq!(message.routing_key, "pong.INFO");
    GelfRecord::from_bytes(&message.body).expect("a GELF record")
}

/// pong answers the client and logs it; ping gets answers from it and acks them in batches, with a
/// single ping loop across a reconnection; both stop on SIGTERM.
#[tokio::test]
async fn pong_and_ping_on_the_bus_and_stopped_by_sigterm() {
    let url = amqp_url();
    // Another pong on the broker would answer some of the commands, and
    // lose its queue when this test deletes it.
    let consumers = queue_row("pong.commands", &["consumers"]).map(|row| row["consumers"].clone());
    assert!(
        consumers.is_none_or(|c| c == 0),
        "another pong consumes pong.commands; stop it, as this test runs its own"
    );
    let ping_name = unique("ping");
    let ping_queue = format!("{ping_name}.commands");
    let _cleanup = QueueCleanup::new(&url, ["pong.commands".to_owned(), ping_queue.clone()]);
    examples_dir();

    let probe = Probe::open().await;
    // Bound before pong has declared the exchanges.
    probe.declare_bus_exchanges().await;
    let mut logs = probe.listen(Exchange::Logs.name(), &["pong.INFO"]).await;
    let mut pong = Program::example("pong", &[&url]);
    let client = Client::connect(builder(&unique("examples")), WAIT)
        .await
        .expect("client");

    // pong answers and logs, as eventail's pong-pika.py does.
    let text = unique("Hello wörld");
    let conversation = unique("conversation");
    let reply = call_pong(&client, &text, &conversation).await;
    assert_eq!(reply.status, Status::Success);
    let payload: serde_json::Value = reply.payload().expect("payload");
    assert_eq!(payload, json!({ "echo": text.to_uppercase() }));
    assert_eq!(reply.conversation_id, conversation);
    assert_eq!(reply.meta.routing_key, client.reply_to());
    let record = pong_log(&mut logs, &text).await;
    assert_eq!(record.short_message, "Echoing");
    assert_eq!(record.full_message, format!("Sending back {text}"));
    assert_eq!(record.log_level(), LogLevel::Info);
    assert_eq!(record.conversation_id, conversation);
    assert_eq!(record.logical_service, "pong");
    client.close().await.expect("close client");

    // ping sends a command every second, one loop even across a reconnection.
    let mut commands = probe
        .listen(Exchange::Commands.name(), &["pong.EchoMessage"])
        .await;
    let mut ping = Program::example("ping", &[&ping_name, &url]);
    let ping_reply_to = format!("{ping_name}.EchoReturn");
    let mut next_ping = async || {
        let from_ping =
            |m: &probe::Received| m.properties.reply_to.as_ref() == Some(&ping_reply_to);
        let command = commands.next_where("a ping", from_ping).await;
        let id = command.properties.correlation_id.expect("correlation id");
        id.parse::<u64>().expect("ping numbers its commands")
    };
    let mut last = next_ping().await;
    let connections = rabbitmqctl::list_connections_with_names().expect("rabbitmqctl");
    let (pid, _) = connections
        .iter()
        .find(|(_, name)| name.starts_with(&format!("{ping_name}@")))
        .expect("ping's connection");
    rabbitmqctl::close_connection(pid, "the examples test makes ping reconnect")
        .expect("close ping's connection");
    for _ in 0..4 {
        let id = next_ping().await;
        // A command in flight during the reconnection may be sent twice,
        // but a second loop would start again from 0.
        assert!(id >= last, "ping command {id} after {last}: two ping loops");
        last = id;
    }

    // ping acks its results in batches: once pong is gone and the last
    // batch has expired, nothing is left in its queue.
    ping.wait_for_output("an echo", |out| out.contains("got echo: HELLO"))
        .await;
    let status = pong.terminate().await;
    assert!(status.success(), "pong exits with 0 on SIGTERM: {status}");
    assert!(pong.output().contains("Bye!"), "{}", pong.output());
    wait_until_empty(&ping_queue).await;
    let status = ping.terminate().await;
    assert!(status.success(), "ping exits with 0 on SIGTERM: {status}");
    let printed = ping.output();
    for echo in ["HELLO", "PROOF OF CONCEPT", "HOW ARE YOU?"] {
        assert!(
            printed.contains(&format!("got echo: {echo}\n")),
            "{printed}"
        );
    }
    probe.close().await;
}
