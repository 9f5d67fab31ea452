//! Behaviour 6 of the runtime, against the real broker: logs on the bus.
//! GELF records with eventail's fields go to the `logs` exchange under
//! `<svc>.<LEVEL>`, with no properties at all (so not persistent), from a
//! second channel without publisher confirms.
//!
//! The `tracing` layer that forwards to the bus needs a global subscriber,
//! which a test binary can install only once: it is in `bus_log_layer.rs`.

mod probe;

use std::sync::{Arc, Mutex};

use amqprs::BasicProperties;
use bus_core::{GelfRecord, LogLevel, LogSource};
use bus_service::TraceEvent;
use bus_test_support::{rabbitmqctl, unique};
use probe::{Probe, builder, recorder, start, stop};
use serde_json::json;

/// `(channel number, confirm mode)` of the channels of the connection
/// named `name`.
fn channels_of(name: &str) -> Vec<(u64, bool)> {
    let connections = rabbitmqctl::list_connections_with_names().expect("list_connections");
    let (pid, _) = connections
        .iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("connection {name} listed: {connections:?}"));
    let out = rabbitmqctl::run(&[
        "-q",
        "list_channels",
        "--no-table-headers",
        "connection",
        "number",
        "confirm",
    ])
    .expect("list_channels");
    let mut channels: Vec<(u64, bool)> = out
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let (connection, number, confirm) = (cols.next()?, cols.next()?, cols.next()?);
            let number: u64 = number.parse().expect("a channel number");
            (connection == pid).then_some((number, confirm == "true"))
        })
        .collect();
    channels.sort_unstable();
    channels
}

#[tokio::test]
async fn log_records_are_gelf_on_the_logs_exchange_without_properties_nor_confirms() {
    let svc = unique("logs");
    let connection = unique("logs-connection");
    let probe = Probe::open().await;
    let mut logs = probe.listen("logs", &[format!("{svc}.*")]).await;
    let published = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&published);
    let handle = start(
        builder(&svc)
            .connection_name(&connection)
            .observe(move |event| {
                if matches!(event, TraceEvent::Published { .. }) {
                    *counter.lock().unwrap() += 1;
                }
            }),
        recorder().0,
    )
    .await;
    let ctx = handle.context();

    for level in LogLevel::ALL {
        ctx.log(
            level,
            &format!("short {level}"),
            &format!("full {level}"),
            "conv-logs",
            [("client", json!(7)), ("_already", json!("x"))],
        )
        .expect("logged");
    }
    assert!(
        ctx.log(LogLevel::Info, "s", "", "", [("id", json!(1))])
            .is_err(),
        "GELF reserves id"
    );

    let source = LogSource {
        service: svc.clone(),
        hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        pid: std::process::id(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for level in LogLevel::ALL {
        let record = logs.next(&format!("the {level} record")).await;
        assert_eq!(record.exchange, "logs");
        assert_eq!(record.routing_key, format!("{svc}.{}", level.name()));
        assert_eq!(
            format!("{:?}", record.raw),
            format!("{:?}", BasicProperties::default()),
            "no properties: not persistent, no content type, no headers"
        );
        let got = serde_json::Value::Object(record.gelf());
        let timestamp = got["timestamp"].as_f64().expect("a float timestamp");
        assert!((timestamp - now).abs() < 60.0, "timestamp {timestamp}");
        let mut expected = GelfRecord::new(
            &source,
            level,
            format!("short {level}"),
            format!("full {level}"),
            "conv-logs",
            timestamp,
        );
        expected.add_field("client", json!(7)).unwrap();
        expected.add_field("_already", json!("x")).unwrap();
        assert_eq!(got, expected.to_json(), "eventail's fields and values");
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        let expected_json = expected.to_json();
        let expected_keys: Vec<&String> = expected_json.as_object().unwrap().keys().collect();
        assert_eq!(keys, expected_keys, "eventail's field order");
    }

    assert_eq!(
        channels_of(&connection),
        [(1, true), (2, false)],
        "a confirm channel for messages, a plain one for logs"
    );
    assert_eq!(
        *published.lock().unwrap(),
        0,
        "logs do not go through the confirmed outbox"
    );
    stop(handle).await;
    probe.close().await;
}
