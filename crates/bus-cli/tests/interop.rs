//! Cross-checks with the reference Python tools (eventail 2.3.6): `bus
//! send` against an eventail service (and `bus logger` reading its GELF
//! logs), and eventail's `monitor.py` seeing what `bus publish` sent.
//!
//! The tools live in a venv at `<workspace>/target/pyref`. These tests fail,
//! saying how to create it, when it is missing: a skipped cross-check would
//! look green while checking nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bus_test_support::{QueueCleanup, amqp_url, unique};
use common::child::{Stream, Watched};
use common::{assert_code, bus, records, run};

const WAIT: Duration = Duration::from_secs(30);

/// The venv's directory, or a failure that says how to create it.
fn pyref() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyref");
    let python = dir.join("bin/python");
    assert!(
        python.exists(),
        "the reference Python tools are missing ({} not found). Create them, from the \
         workspace root, with:\n    python3 -m venv target/pyref && \
         target/pyref/bin/pip install eventail==2.3.6",
        python.display()
    );
    dir
}

fn python(script: PathBuf, args: &[&str]) -> Command {
    let mut cmd = Command::new(pyref().join("bin/python"));
    cmd.arg(script).args(args).env("PYTHONUNBUFFERED", "1");
    cmd
}

#[tokio::test]
async fn bus_send_talks_to_an_eventail_service() {
    let name = unique("pyecho");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/echo_service.py");
    let mut service = Watched::spawn(python(script, &[&amqp_url(), &name]));
    service.wait_for(Stream::Out, "ready", WAIT);

    let mut logger = Watched::bus(&[
        "logger",
        "--filter",
        &format!("{name}.*"),
        "--count",
        "1",
        "--timeout",
        "30",
        "--color",
        "never",
    ]);
    logger.wait_for(Stream::Err, "watching", WAIT);

    let mut cmd = bus();
    cmd.args([
        "--json",
        "send",
        &format!("{name}.Echo"),
        "--data",
        r#"{"n": [1, "two"]}"#,
    ])
    .args(["--conversation-id", "conv-py"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let r = &records(&out)[0];
    assert_eq!(r["status"], "success");
    assert_eq!(r["conversation_id"], "conv-py");
    assert_eq!(r["content_type"], "application/cbor");
    assert_eq!(
        r["payload"],
        serde_json::json!({"echo": {"n": [1, "two"]}, "conversation_id": "conv-py"})
    );

    // JSON on the wire: eventail decodes it by content type.
    let mut cmd = bus();
    cmd.args([
        "--json",
        "send",
        &format!("{name}.Echo"),
        "--data",
        "[true]",
        "--codec",
        "json",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(
        records(&out)[0]["payload"]["echo"],
        serde_json::json!([true])
    );

    let mut cmd = bus();
    cmd.args(["send", &format!("{name}.Fail"), "--data", "{}"]);
    let out = run(cmd).await;
    assert_code(&out, 1);
    assert!(common::stdout(&out).contains("\"reason\": \"refused\""));

    let (status, out, err) = logger.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains(&format!(" INFO      {name}@")), "{out}");
    assert!(
        out.contains(" echoing [conv-py]\n    {'n': [1, 'two']}"),
        "{out}"
    );
    service.terminate();
}

#[tokio::test]
async fn eventail_monitor_sees_what_bus_publishes() {
    let key = format!("{}.Happened", unique("pymon"));
    let monitor = pyref().join("bin/monitor.py");
    let mut watcher = Watched::spawn(python(monitor, &[&amqp_url(), "--events", &key]));
    watcher.wait_for(Stream::Out, "Started", WAIT);

    let mut cmd = bus();
    cmd.args([
        "publish",
        &key,
        "--data",
        r#"{"n": 42, "s": "é"}"#,
        "--conversation-id",
        "conv-mon",
    ]);
    assert_code(&run(cmd).await, 0);

    watcher.wait_for(Stream::Out, &format!("Got an Event {key}"), WAIT);
    watcher.wait_for(Stream::Out, "Conversation ID: conv-mon", WAIT);
    watcher.wait_for(Stream::Out, "{'n': 42, 's': 'é'}", WAIT);
    watcher.terminate();
}
