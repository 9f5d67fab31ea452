//! Scenario 3: logs. A Python service's GELF records shown by `bus logger`
//! (level, service, host, conversation id, additional fields); a Rust
//! service's records shown by eventail's `logger.py` with exactly the
//! fields, in the same order and of the same JSON types, as a Python
//! service's record of the same call.

use bus_service::{CallOptions, Client, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::{Value as Json, json};

use crate::process::{Proc, Stream, WAIT, ndjson, run_expecting};
use crate::services::{start_echo, stop};
use crate::tools::{bus, bus_logger_for_one, eventail, python_service};

pub(crate) async fn python_to_bus_logger() {
    let name = unique("py-logs");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
    let service = python_service("echo_service.py", &[&name]).await;

    let filter = format!("{name}.INFO");
    let json_logger = bus_logger_for_one(&filter, true).await;
    let text_logger = bus_logger_for_one(&filter, false).await;

    let echo = format!("{name}.Echo");
    let mut send = bus(&["send", &echo, "--data", r#"{"n": [1, "two"]}"#]);
    send.args(["--conversation-id", "conv-logs"]);
    run_expecting("bus send", send, 0).await;

    let json_out = json_logger.finish(WAIT).await;
    assert_eq!(json_out.status.code(), Some(0), "{}", json_out.transcript());
    let records = ndjson(&json_out.out);
    let record = &records[0];
    assert_eq!(record["kind"], "log");
    assert_eq!(record["routing_key"], filter.as_str());
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["service"], name.as_str());
    let host = record["host"].as_str().unwrap_or_default();
    assert!(
        host.strip_prefix(&format!("{name}@"))
            .is_some_and(|h| !h.is_empty()),
        "host {host:?}"
    );
    assert_eq!(record["conversation_id"], "conv-logs");
    assert_eq!(record["short_message"], "echoing");
    assert_eq!(record["full_message"], "{'n': [1, 'two']}");
    let gelf = &record["payload"];
    assert_eq!(gelf["level"], 6);
    assert_eq!(gelf["_levelname"], "INFO");
    assert_eq!(gelf["_client"], 7);
    assert_eq!(gelf["_command"], echo.as_str());
    assert_eq!(gelf["_worker_pid"], service.id());

    let text_out = text_logger.finish(WAIT).await;
    assert_eq!(text_out.status.code(), Some(0), "{}", text_out.transcript());
    for expected in [
        format!(" INFO      {name}@"),
        " echoing [conv-logs]\n    {'n': [1, 'two']}".to_owned(),
        r#""_client":7"#.to_owned(),
    ] {
        assert!(
            text_out.out.contains(&expected),
            "{expected:?} not shown\n{}",
            text_out.transcript()
        );
    }

    service.stop_cleanly().await;
}

/// The JSON type of a GELF field, as a Python reader would see it.
fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// The GELF record `logger.py` printed as `[KEY] {json}`.
async fn gelf_record(logger: &mut Proc, key: &str) -> Json {
    let prefix = format!("[{key}] ");
    let line = logger
        .wait_line(Stream::Out, &prefix, WAIT, |l| {
            l.strip_prefix(&prefix).map(str::to_owned)
        })
        .await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

pub(crate) async fn rust_to_logger_py() {
    let python = unique("py-gelf");
    let rust = unique("rs-gelf");
    let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&python)]);
    let (python_key, rust_key) = (format!("{python}.INFO"), format!("{rust}.INFO"));
    let mut logger = Proc::spawn(
        "logger.py",
        eventail(
            "logger.py",
            &amqp_url(),
            &["--filter", &python_key, &rust_key],
        ),
    );
    logger.wait_for("connected!").await;
    let py_service = python_service("echo_service.py", &[&python]).await;
    let (rs_service, _rs_cleanup) = start_echo(&rust, &amqp_url()).await;

    // The same call to each: both log INFO "echoing" with the same fields.
    let client = Client::connect(
        ServiceBuilder::new(&unique("rs-client")).url(&amqp_url()),
        WAIT,
    )
    .await
    .expect("connect the client");
    for service in [&python, &rust] {
        let options = CallOptions {
            timeout: WAIT,
            conversation_id: Some("conv-gelf".into()),
        };
        client
            .call_with(&format!("{service}.Echo"), &json!({"n": 1}), options)
            .await
            .expect("the Echo call");
    }
    client.close().await.expect("close the client");

    let py_record = gelf_record(&mut logger, &python_key).await;
    let rs_record = gelf_record(&mut logger, &rust_key).await;

    let fields = |r: &Json| -> Vec<(String, &'static str)> {
        r.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), json_type(v))).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        fields(&rs_record),
        fields(&py_record),
        "the Rust record's fields (in order, with their types) differ from eventail's\nRust:   {rs_record}\nPython: {py_record}"
    );
    let python_host = py_record["host"].as_str().unwrap_or_default();
    let hostname = python_host
        .split_once('@')
        .map(|(_, h)| h)
        .unwrap_or_default();
    let expected = [
        ("version", json!("1.1")),
        ("short_message", json!("echoing")),
        ("level", json!(6)),
        ("_levelname", json!("INFO")),
        ("host", json!(format!("{rust}@{hostname}"))),
        ("_conversation_id", json!("conv-gelf")),
        ("_logical_service", json!(rust)),
        ("_client", json!(7)),
        ("_command", json!(format!("{rust}.Echo"))),
    ];
    for (field, value) in expected {
        assert_eq!(rs_record[field], value, "{field} of {rs_record}");
    }
    assert_eq!(rs_record["_worker_pid"], std::process::id());

    stop(rs_service).await;
    py_service.stop_cleanly().await;
    logger.terminate();
}
