//! `bus monitor` and `bus logger` end to end, as child processes that stop
//! by themselves (`--count`, `--timeout`): what they show, in both output
//! modes, their filters, `--save`, and their reconnection.

mod common;

use std::time::Duration;

use bus_core::{GelfRecord, LogLevel, LogSource, Properties, Value};
use bus_test_support::{QueueCleanup, amqp_url, rabbitmqctl, unique};
use common::broker::{Amqp, props};
use common::child::{Stream, Watched};
use common::ndjson;

const WAIT: Duration = Duration::from_secs(20);

fn cbor(value: &Value) -> Vec<u8> {
    bus_core::Codec::Cbor.encode_value(value).unwrap()
}

/// Starts `bus` with `args` and waits until it is subscribed.
fn watching(args: &[&str]) -> Watched {
    let mut child = Watched::bus(args);
    child.wait_for(Stream::Err, "watching", WAIT);
    child
}

#[tokio::test]
async fn the_monitor_shows_every_kind() {
    let amqp = Amqp::bus().await;
    let p = unique("mon");
    let child = watching(&[
        "--color",
        "never",
        "monitor",
        "--events",
        &format!("{p}.#"),
        "--commands",
        &format!("{p}.#"),
        "--configurations",
        &format!("{p}.Config"),
        "--count",
        "4",
        "--timeout",
        "20",
    ]);
    let payload = cbor(&Value::map([("message", Value::from("hi"))]));
    amqp.publish(
        "events",
        &format!("{p}.Happened"),
        &props("application/cbor", Some("c-ev")),
        &payload,
    )
    .await;
    let mut command = props("application/cbor", Some("c-cmd"));
    command.reply_to = Some(format!("{p}.Reply"));
    command.correlation_id = Some("corr-1".into());
    command.app_id = Some("tests".into());
    amqp.publish("commands", &format!("{p}.Do"), &command, &payload)
        .await;
    let mut result = props("application/json", Some("c-cmd"));
    result.headers.insert("status".into(), Value::from("error"));
    result.correlation_id = Some("corr-1".into());
    amqp.publish(
        "commands",
        &format!("{p}.Reply"),
        &result,
        br#"{"reason": "no"}"#,
    )
    .await;
    amqp.publish(
        "configurations",
        &format!("{p}.Config"),
        &props("application/json", Some("")),
        br#"{"k": 1}"#,
    )
    .await;

    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    for needle in [
        format!("event {p}.Happened\n  conversation_id  c-ev\n"),
        format!(
            "command {p}.Do\n  conversation_id  c-cmd\n  correlation_id   corr-1\n  reply_to         {p}.Reply\n"
        ),
        format!("result error {p}.Reply\n"),
        format!("configuration {p}.Config\n"),
        "app_id=tests".to_owned(),
        "delivery_mode=2".to_owned(),
        "      \"message\": \"hi\"".to_owned(),
        "      \"reason\": \"no\"".to_owned(),
    ] {
        assert!(out.contains(&needle), "{needle:?} not in:\n{out}");
    }
    assert!(!out.contains('\u{1b}'), "no colour with --color never");
    amqp.close().await;
}

#[tokio::test]
async fn the_monitor_writes_ndjson_and_shows_invalid_messages() {
    let amqp = Amqp::bus().await;
    let p = unique("mon-json");
    let child = watching(&[
        "--json",
        "monitor",
        "--events",
        &format!("{p}.#"),
        "--count",
        "3",
        "--timeout",
        "20",
    ]);
    let mut good = props("application/cbor", Some("c-1"));
    good.headers.insert("x-extra".into(), Value::from(5));
    amqp.publish(
        "events",
        &format!("{p}.Good"),
        &good,
        &cbor(&Value::from(vec![Value::Bytes(vec![1, 2])])),
    )
    .await;
    amqp.publish(
        "events",
        &format!("{p}.NoConversation"),
        &props("application/json", None),
        b"{}",
    )
    .await;
    amqp.publish(
        "events",
        &format!("{p}.Garbled"),
        &props("application/cbor", Some("c-3")),
        &[0xff, 0x00],
    )
    .await;
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let records = ndjson(&out);
    assert_eq!(records.len(), 3, "{out}");
    let good = &records[0];
    assert_eq!(good["kind"], "event");
    assert_eq!(good["routing_key"], format!("{p}.Good"));
    assert_eq!(good["conversation_id"], "c-1");
    assert_eq!(good["headers"], serde_json::json!({"x-extra": 5}));
    assert_eq!(good["payload"], serde_json::json!([{"$bytes": "AQI="}]));
    assert_eq!(good["delivery_mode"], 2);
    assert_eq!(good["redelivered"], false);
    for key in [
        "correlation_id",
        "reply_to",
        "status",
        "timestamp",
        "app_id",
        "user_id",
        "expiration",
        "message_id",
    ] {
        assert!(good.get(key).is_some(), "{key} missing from {good}");
    }
    assert_eq!(records[1]["kind"], "invalid");
    assert!(
        records[1]["invalid"]
            .as_str()
            .unwrap()
            .contains("conversation_id")
    );
    assert_eq!(records[2]["kind"], "event");
    assert!(
        records[2]["payload_error"]
            .as_str()
            .unwrap()
            .contains("CBOR")
    );
    assert_eq!(records[2]["body"]["$bytes"], "/wA=");
    amqp.close().await;
}

#[tokio::test]
async fn filter_fields_keep_matching_payloads_only() {
    let amqp = Amqp::bus().await;
    let p = unique("mon-filter");
    let child = watching(&[
        "--json",
        "monitor",
        "--events",
        &format!("{p}.#"),
        "--filter-fields",
        "client_id=123",
        "kind=vip",
        "--count",
        "1",
        "--timeout",
        "20",
    ]);
    let event = |client: i64, kind: &str| {
        cbor(&Value::map([
            ("client_id", Value::from(client)),
            ("kind", Value::from(kind)),
        ]))
    };
    let key = format!("{p}.Order");
    let pr = props("application/cbor", Some("c"));
    amqp.publish("events", &key, &pr, &event(124, "vip")).await;
    amqp.publish("events", &key, &pr, &event(123, "basic"))
        .await;
    amqp.publish("events", &key, &pr, &cbor(&Value::from("not a map")))
        .await;
    amqp.publish("events", &key, &pr, &event(123, "vip")).await;
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let records = ndjson(&out);
    assert_eq!(records.len(), 1, "{out}");
    assert_eq!(
        records[0]["payload"],
        serde_json::json!({"client_id": 123, "kind": "vip"})
    );
    amqp.close().await;
}

#[tokio::test]
async fn save_writes_one_file_per_payload_and_never_overwrites() {
    let amqp = Amqp::bus().await;
    let p = unique("mon-save");
    let key = format!("{p}.Saved");
    let dir = tempfile::tempdir().unwrap();
    // Already there: must survive.
    std::fs::write(dir.path().join(format!("{key}.c-1.cbor")), b"keep me").unwrap();

    for json in [false, true] {
        let mut args = vec![
            "monitor",
            "--events",
            key.as_str(),
            "--save",
            "--count",
            "2",
            "--timeout",
            "20",
        ];
        if json {
            args.insert(0, "--json");
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bus"));
        cmd.args(&args)
            .current_dir(dir.path())
            .env("AMQP_URL", amqp_url());
        let mut child = Watched::spawn(cmd);
        child.wait_for(Stream::Err, "watching", WAIT);
        let pr = props("application/cbor", Some("c-1"));
        amqp.publish(
            "events",
            &key,
            &pr,
            &cbor(&Value::map([("n", Value::from(1))])),
        )
        .await;
        amqp.publish(
            "events",
            &key,
            &pr,
            &cbor(&Value::map([("n", Value::from(2))])),
        )
        .await;
        let (status, out, err) = child.finish(WAIT);
        assert_eq!(status.code(), Some(0), "{out}\n{err}");
        if json {
            assert!(out.contains("\"saved_as\""), "{out}");
        } else {
            assert!(out.contains("  payload          saved as "), "{out}");
        }
    }
    let read = |name: String| std::fs::read(dir.path().join(name)).unwrap();
    assert_eq!(read(format!("{key}.c-1.cbor")), b"keep me");
    let second = bus_core::Codec::Cbor
        .decode_value(&read(format!("{key}.c-1.2.cbor")))
        .unwrap();
    assert_eq!(second, Value::map([("n", Value::from(1))]));
    let third = bus_core::Codec::Cbor
        .decode_value(&read(format!("{key}.c-1.3.cbor")))
        .unwrap();
    assert_eq!(third, Value::map([("n", Value::from(2))]));
    assert_eq!(read(format!("{key}.c-1.json")), br#"{"n":1}"#);
    assert_eq!(read(format!("{key}.c-1.2.json")), br#"{"n":2}"#);
    amqp.close().await;
}

#[tokio::test]
async fn the_monitor_never_takes_messages_from_a_service() {
    let amqp = Amqp::bus().await;
    let p = unique("mon-share");
    let key = format!("{p}.Happened");
    let queue = format!("{p}.events");
    let _cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    amqp.queue(&queue).await;
    amqp.bind(&queue, "events", &key).await;
    let child = watching(&[
        "--json",
        "monitor",
        "--events",
        &key,
        "--count",
        "1",
        "--timeout",
        "20",
    ]);
    amqp.publish("events", &key, &props("application/json", Some("c")), b"{}")
        .await;
    let (status, out, _) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0));
    assert_eq!(out.lines().count(), 1);
    amqp.wait_count(&queue, 1).await;
    amqp.close().await;
}

#[tokio::test]
async fn timeouts_and_signals_end_the_live_views() {
    let p = unique("quiet");
    // --timeout alone is the normal end.
    let child = Watched::bus(&["monitor", "--events", &format!("{p}.#"), "--timeout", "0.5"]);
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    // --count not reached by --timeout is a timeout.
    let child = Watched::bus(&[
        "logger",
        "--filter",
        &format!("{p}.*"),
        "--count",
        "1",
        "--timeout",
        "0.5",
    ]);
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(2), "{out}\n{err}");
    assert!(out.is_empty());
    // SIGTERM (or Ctrl-C) is the normal way to stop watching.
    let child = watching(&["logger", "--filter", &format!("{p}.*")]);
    child.terminate();
    let (status, _, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{err}");
}

#[tokio::test]
async fn the_monitor_reconnects_after_a_connection_loss() {
    let amqp = Amqp::bus().await;
    let p = unique("mon-reconnect");
    let key = format!("{p}.Happened");
    let mut child = watching(&[
        "--json",
        "monitor",
        "--events",
        &key,
        "--count",
        "1",
        "--timeout",
        "60",
    ]);
    let suffix = format!(":{}", child.id());
    let (pid, _) = rabbitmqctl::list_connections_with_names()
        .unwrap()
        .into_iter()
        .find(|(_, name)| name.starts_with("bus-monitor@") && name.ends_with(&suffix))
        .expect("the monitor's connection");
    rabbitmqctl::close_connection(&pid, "bus-cli reconnection test").unwrap();
    let lost = child.wait_for(Stream::Err, "connection lost", WAIT);
    assert!(lost.contains("bus-cli reconnection test"), "{lost}");
    child.wait_for(Stream::Err, "reconnected; watching", WAIT);
    amqp.publish(
        "events",
        &key,
        &props("application/json", Some("after")),
        b"{}",
    )
    .await;
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("\"conversation_id\":\"after\""), "{out}");
    amqp.close().await;
}

fn gelf(service: &str, level: LogLevel, short: &str, full: &str) -> Vec<u8> {
    let source = LogSource {
        service: service.into(),
        hostname: "box".into(),
        pid: 42,
    };
    GelfRecord::new(&source, level, short, full, "conv-log", 1_700_000_000.25).to_bytes()
}

#[tokio::test]
async fn the_logger_shows_records_at_the_level_and_worse() {
    let amqp = Amqp::bus().await;
    let svc = unique("logsvc");
    let child = watching(&[
        "--color",
        "never",
        "logger",
        "--filter",
        &format!("{svc}.*"),
        "--level",
        "WARNING",
        "--count",
        "2",
        "--timeout",
        "20",
    ]);
    let none = Properties::default();
    for (level, short) in [
        (LogLevel::Info, "just info"),
        (LogLevel::Debug, "just debug"),
        (LogLevel::Error, "it broke"),
        (LogLevel::Warning, "careful"),
    ] {
        let key = format!("{svc}.{}", level.name());
        amqp.publish(
            "logs",
            &key,
            &none,
            &gelf(&svc, level, short, "line 1\nline 2"),
        )
        .await;
    }
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let expected = format!(
        "2023-11-14T22:13:20.250Z ERROR     {svc}@box it broke [conv-log]\n    line 1\n    line 2\n\
         2023-11-14T22:13:20.250Z WARNING   {svc}@box careful [conv-log]\n    line 1\n    line 2"
    );
    assert_eq!(out, expected);
    amqp.close().await;
}

#[tokio::test]
async fn the_logger_writes_ndjson() {
    let amqp = Amqp::bus().await;
    let svc = unique("logjson");
    let child = watching(&[
        "--json",
        "logger",
        "--filter",
        &format!("{svc}.#"),
        "--count",
        "2",
        "--timeout",
        "20",
    ]);
    let none = Properties::default();
    amqp.publish(
        "logs",
        &format!("{svc}.INFO"),
        &none,
        &gelf(&svc, LogLevel::Info, "hello", ""),
    )
    .await;
    amqp.publish("logs", &format!("{svc}.INFO"), &none, b"not gelf")
        .await;
    let (status, out, err) = child.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let records = ndjson(&out);
    assert_eq!(records[0]["kind"], "log");
    assert_eq!(records[0]["level"], "INFO");
    assert_eq!(records[0]["short_message"], "hello");
    assert_eq!(records[0]["host"], format!("{svc}@box"));
    assert_eq!(records[0]["conversation_id"], "conv-log");
    assert_eq!(records[0]["time"], "2023-11-14T22:13:20.250Z");
    assert_eq!(records[0]["payload"]["_worker_pid"], 42);
    assert_eq!(records[0]["routing_key"], format!("{svc}.INFO"));
    assert!(
        records[1]["invalid"]
            .as_str()
            .unwrap()
            .starts_with("not a GELF record")
    );
    amqp.close().await;
}
