//! Scenario 7: monitoring. eventail's `monitor.py` sees the traffic of
//! Rust programs (a command from the Rust `Client`, the Rust service's
//! event and result, an event from `bus publish`), and `bus monitor` sees
//! the traffic of a Python service (its event and its result).

use bus_service::{CallOptions, Client, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::{Value as Json, json};

use crate::process::{Proc, Stream, WAIT, run_expecting};
use crate::services::{start_echo, stop};
use crate::tools::{bus, bus_watching, eventail, python_service};

/// A Rust client: its reply key is known once it is connected, so the
/// monitors are started after it.
async fn client() -> Client {
    Client::connect(
        ServiceBuilder::new(&unique("rs-client")).url(&amqp_url()),
        WAIT,
    )
    .await
    .expect("connect the client")
}

/// Sends `<service>.Echo` `{"n": 42, "s": "é"}` with the conversation id
/// `conversation` from `client`, then closes it.
async fn echo_from_rust(client: Client, service: &str, conversation: &str) {
    let options = CallOptions {
        timeout: WAIT,
        conversation_id: Some(conversation.to_owned()),
    };
    client
        .call_with(
            &format!("{service}.Echo"),
            &json!({"n": 42, "s": "é"}),
            options,
        )
        .await
        .expect("the Echo call");
    client.close().await.expect("close the client");
}

pub(crate) async fn monitor_py_sees_rust() {
    let name = unique("rs-monitored");
    let (service, _cleanup) = start_echo(&name, &amqp_url()).await;
    let client = client().await;
    let reply_to = client.reply_to().to_owned();
    let patterns = format!("{name}.#");
    let mut monitor = Proc::spawn(
        "monitor.py",
        eventail(
            "monitor.py",
            &amqp_url(),
            &["--events", &patterns, "--commands", &patterns, &reply_to],
        ),
    );
    monitor.wait_for("Started").await;

    echo_from_rust(client, &name, "conv-monitored").await;
    let happened = format!("{name}.Happened");
    let mut publish = bus(&["publish", &happened, "--data", r#"{"n": 7, "s": "ü"}"#]);
    publish.args(["--conversation-id", "conv-published"]);
    run_expecting("bus publish", publish, 0).await;

    for expected in [
        format!("Got a Command {name}.Echo"),
        format!("Return to {reply_to}"),
        format!("Got a Result: {reply_to}"),
        "Status success".to_owned(),
        "Conversation ID: conv-monitored".to_owned(),
        "{'n': 42, 's': 'é'}".to_owned(),
        "{'conversation_id': 'conv-monitored', 'echo': {'n': 42, 's': 'é'}}".to_owned(),
        format!("Got an Event {name}.Echoed"),
        format!("Got an Event {happened}"),
        "Conversation ID: conv-published".to_owned(),
        "{'n': 7, 's': 'ü'}".to_owned(),
    ] {
        monitor.wait_for(&expected).await;
    }
    monitor.terminate();
    stop(service).await;
}

/// The record of `kind` with routing key `key` that `bus --json monitor`
/// printed.
async fn record(monitor: &mut Proc, kind: &str, key: &str) -> Json {
    let what = format!("{kind} {key}");
    monitor
        .wait_line(Stream::Out, &what, WAIT, |line| {
            let record: Json = serde_json::from_str(line).ok()?;
            (record["kind"] == kind && record["routing_key"] == key).then_some(record)
        })
        .await
}

pub(crate) async fn bus_monitor_sees_python() {
    let name = unique("py-monitored");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
    let service = python_service("echo_service.py", &[&name]).await;
    let client = client().await;
    let reply_to = client.reply_to().to_owned();
    let patterns = format!("{name}.#");
    let mut monitor = bus_watching(&[
        "--json",
        "monitor",
        "--events",
        &patterns,
        "--commands",
        &patterns,
        &reply_to,
        "--timeout",
        "120",
    ])
    .await;

    echo_from_rust(client, &name, "conv-monitored").await;

    let event = record(&mut monitor, "event", &format!("{name}.Echoed")).await;
    assert_eq!(event["conversation_id"], "conv-monitored");
    assert_eq!(event["content_type"], "application/cbor");
    assert_eq!(event["delivery_mode"], 2);
    assert_eq!(event["payload"], json!({"n": 42, "s": "é"}));
    let result = record(&mut monitor, "result", &reply_to).await;
    assert_eq!(result["status"], "success");
    assert_eq!(result["conversation_id"], "conv-monitored");
    assert_eq!(
        result["payload"],
        json!({"echo": {"n": 42, "s": "é"}, "conversation_id": "conv-monitored"})
    );
    let command = record(&mut monitor, "command", &format!("{name}.Echo")).await;
    assert_eq!(command["reply_to"], reply_to.as_str());
    assert_eq!(command["correlation_id"], result["correlation_id"]);

    monitor.terminate();
    service.stop_cleanly().await;
}
