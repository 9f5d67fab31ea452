//! Scenario 1: commands and results, success and error, both directions.
//!
//! - eventail's `send_command.py` → the `pong` example, and → a Rust
//!   service that answers with an error result;
//! - the `ping` example → a Python `pong` service;
//! - `bus send` and the Rust `Client` → a Python service.

use std::time::Duration;

use bus_core::{Status, Value};
use bus_service::{CallOptions, Client, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::json;

use crate::broker::{Amqp, fixed_names};
use crate::process::{Proc, WAIT, ndjson, payload_file, run_expecting};
use crate::services::{start_echo, stop};
use crate::tools::{bus, eventail, example, python_service, suite_python};

/// `send_command.py` prints these when the result carries its ids back.
const IDS_OK: [&str; 2] = ["Correlation ID is O.K.", "Conversation ID is O.K."];

pub(crate) async fn send_command_py_to_rust() {
    let fixed = fixed_names().await;
    let url = fixed.url.as_str();
    let pong = Proc::spawn("the pong example", example("pong", &[url]));
    Amqp::open_at(url)
        .await
        .wait_consumers("pong.commands", 1)
        .await;
    let failing = unique("rs-echo");
    let (echo, _cleanup) = start_echo(&failing, url).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let message = payload_file(&dir, "message.json", &json!({"message": "hi"}));
    let ok = run_expecting(
        "send_command.py pong.EchoMessage",
        eventail("send_command.py", url, &["pong.EchoMessage", &message]),
        0,
    )
    .await;
    for line in IDS_OK.iter().chain(&["Success!", "{'echo': 'HI'}"]) {
        assert!(
            ok.out.contains(line),
            "{line:?} not printed\n{}",
            ok.transcript()
        );
    }

    let anything = payload_file(&dir, "anything.json", &json!({"why": "test"}));
    let command = format!("{failing}.Fail");
    let error = run_expecting(
        "send_command.py <rust service>.Fail",
        eventail("send_command.py", url, &[&command, &anything]),
        0,
    )
    .await;
    for line in IDS_OK.iter().chain(&["Error!", "{'reason': 'refused'}"]) {
        assert!(
            error.out.contains(line),
            "{line:?} not printed\n{}",
            error.transcript()
        );
    }

    stop(echo).await;
    let pong = pong.stop().await;
    assert!(
        pong.status.success() && pong.out.contains("Bye!"),
        "{}",
        pong.transcript()
    );
}

pub(crate) async fn ping_example_to_python_pong() {
    let fixed = fixed_names().await;
    let url = fixed.url.as_str();
    let mut pong = Proc::spawn("pong_service.py", suite_python("pong_service.py", url, &[]));
    pong.wait_for("READY").await;
    let ping_name = unique("ping");
    let mut ping = Proc::spawn("the ping example", example("ping", &[&ping_name, url]));

    // ping sends "hello" first, and shows the echoes of its batch.
    ping.wait_for("got echo: HELLO").await;
    let handled = pong
        .wait_tagged("HANDLED", |h| h["message"] == "hello")
        .await;
    assert_eq!(handled["reply_to"], format!("{ping_name}.EchoReturn"));
    assert_eq!(handled["correlation_id"], "0");

    ping.stop_cleanly().await;
    pong.stop_cleanly().await;
}

pub(crate) async fn bus_send_to_python() {
    let name = unique("py-echo");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
    let mut service = python_service("echo_service.py", &[&name]).await;
    let echo = format!("{name}.Echo");

    let data = r#"{"n": [1, "two"], "s": "é"}"#;
    let mut cmd = bus(&["--json", "send", &echo, "--data", data]);
    cmd.args(["--conversation-id", "conv-py"]);
    let sent = run_expecting("bus send (CBOR)", cmd, 0).await;
    let result = &ndjson(&sent.out)[0];
    assert_eq!(result["status"], "success");
    assert_eq!(result["conversation_id"], "conv-py");
    assert_eq!(result["content_type"], "application/cbor");
    assert_eq!(
        result["payload"],
        json!({"echo": {"n": [1, "two"], "s": "é"}, "conversation_id": "conv-py"})
    );
    let handled = service
        .wait_tagged("HANDLED", |h| h["conversation_id"] == "conv-py")
        .await;
    assert_eq!(handled["correlation_id"], result["correlation_id"]);
    assert_eq!(handled["reply_to"], result["routing_key"]);

    // JSON on the wire: eventail decodes it by content type, and answers
    // in its own codec.
    let sent = run_expecting(
        "bus send (JSON)",
        bus(&[
            "--json",
            "send",
            &echo,
            "--data",
            "[true, null]",
            "--codec",
            "json",
        ]),
        0,
    )
    .await;
    assert_eq!(ndjson(&sent.out)[0]["payload"]["echo"], json!([true, null]));

    let failed = run_expecting(
        "bus send (error)",
        bus(&["--json", "send", &format!("{name}.Fail"), "--data", "{}"]),
        1,
    )
    .await;
    let result = &ndjson(&failed.out)[0];
    assert_eq!(result["status"], "error");
    assert_eq!(result["payload"], json!({"reason": "refused"}));

    service.stop_cleanly().await;
}

pub(crate) async fn rust_client_to_python() {
    let name = unique("py-echo");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
    let mut service = python_service("echo_service.py", &[&name]).await;
    let options = |conversation: &str| CallOptions {
        timeout: WAIT,
        conversation_id: Some(conversation.to_owned()),
    };
    let payload = json!({"n": 1, "s": "é", "list": [1.5, false]});

    for json_codec in [false, true] {
        let mut builder = ServiceBuilder::new(&unique("rs-client")).url(&amqp_url());
        if json_codec {
            builder = builder.json();
        }
        let client = Client::connect(builder, WAIT)
            .await
            .expect("connect the client");
        let conversation = format!("conv-client-{json_codec}");
        let reply = client
            .call_with(&format!("{name}.Echo"), &payload, options(&conversation))
            .await
            .expect("the Echo call");
        assert_eq!(reply.status, Status::Success);
        assert_eq!(reply.conversation_id, conversation);
        let expected = json!({"echo": payload, "conversation_id": conversation});
        assert_eq!(reply.value().expect("decode"), Value::from_json(expected));
        let handled = service
            .wait_tagged("HANDLED", |h| h["conversation_id"] == conversation.as_str())
            .await;
        assert_eq!(handled["reply_to"], client.reply_to());
        assert_eq!(handled["correlation_id"], reply.correlation_id.as_str());

        let reply = client
            .call_with(&format!("{name}.Fail"), &payload, options("conv-fail"))
            .await
            .expect("the Fail call");
        assert_eq!(reply.status, Status::Error);
        assert_eq!(
            reply.value().expect("decode"),
            Value::from_json(json!({"reason": "refused"}))
        );
        tokio::time::timeout(Duration::from_secs(60), client.close())
            .await
            .expect("the client closes")
            .expect("the client closes cleanly");
    }

    service.stop_cleanly().await;
}
