//! Behaviour 6 of the runtime, against the real broker: the `tracing` layer
//! forwards a service's tracing events at or above its level to the bus.
//!
//! A global subscriber can be installed once per process, so this binary
//! holds this one test: two layers, the default one (WARN) and one at INFO, each
//! connected to its own service.

mod probe;

use bus_service::BusLogLayer;
use bus_test_support::unique;
use probe::{Listener, Probe, builder, recorder, start, stop};
use serde_json::{Map, Value};
use tracing_subscriber::prelude::*;

/// The records of `listener` whose short message contains `marker`, up to
/// the one that starts with `last`.
async fn records_until(
    listener: &mut Listener,
    marker: &str,
    last: &str,
) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    loop {
        let record = listener.next("a forwarded record").await;
        let gelf = record.gelf();
        let short = gelf["short_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !short.contains(marker) {
            continue;
        }
        assert_eq!(
            record.routing_key,
            format!(
                "{}.{}",
                gelf["_logical_service"].as_str().unwrap(),
                gelf["_levelname"].as_str().unwrap()
            )
        );
        out.push(gelf);
        if short.starts_with(last) {
            return out;
        }
    }
}

fn levels_and_texts(records: &[Map<String, Value>]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            let short = r["short_message"].as_str().unwrap();
            let word = short.split(' ').next().unwrap().to_owned();
            (r["_levelname"].as_str().unwrap().to_owned(), word)
        })
        .collect()
}

#[tokio::test]
async fn tracing_events_at_or_above_the_level_reach_the_bus() {
    let warn_layer = BusLogLayer::default();
    let info_layer = BusLogLayer::new(tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(warn_layer.clone())
        .with(info_layer.clone())
        .init();

    let (warn_svc, info_svc) = (unique("layer-warn"), unique("layer-info"));
    let probe = Probe::open().await;
    let mut warn_logs = probe.listen("logs", &[format!("{warn_svc}.*")]).await;
    let mut info_logs = probe.listen("logs", &[format!("{info_svc}.*")]).await;
    let warn_handle = start(
        builder(&warn_svc).forward_tracing(&warn_layer),
        recorder().0,
    )
    .await;
    let info_handle = start(
        builder(&info_svc).forward_tracing(&info_layer),
        recorder().0,
    )
    .await;

    let marker = unique("marker");
    tracing::debug!("debug {marker}");
    tracing::info!(conversation_id = "conv-info", "info {marker}");
    tracing::warn!(conversation_id = "conv-warn", count = 2, "warn {marker}");
    tracing::error!(id = 5, "error {marker}");
    // Records of one service are published in order: once this one is in,
    // any earlier one that was forwarded is in too.
    tracing::error!("last {marker}");

    let at_warn = records_until(&mut warn_logs, &marker, "last").await;
    assert_eq!(
        levels_and_texts(&at_warn),
        [
            ("WARNING".into(), "warn".into()),
            ("ERROR".into(), "error".into()),
            ("ERROR".into(), "last".into()),
        ],
        "WARN and above only"
    );
    let at_info = records_until(&mut info_logs, &marker, "last").await;
    assert_eq!(
        levels_and_texts(&at_info),
        [
            ("INFO".into(), "info".into()),
            ("WARNING".into(), "warn".into()),
            ("ERROR".into(), "error".into()),
            ("ERROR".into(), "last".into()),
        ],
        "the level is configurable"
    );

    let warn = &at_warn[0];
    assert_eq!(warn["_logical_service"], warn_svc.as_str());
    assert_eq!(warn["level"], 4);
    assert_eq!(warn["_conversation_id"], "conv-warn");
    assert_eq!(warn["_count"], 2);
    assert_eq!(warn["_target"], "bus_log_layer");
    assert!(
        warn["full_message"].as_str().unwrap().contains("count=2"),
        "{warn:?}"
    );
    let error = &at_warn[1];
    assert_eq!(error["level"], 3);
    assert_eq!(error["_id_"], 5, "GELF's reserved id is renamed: {error:?}");
    assert_eq!(at_info[0]["_conversation_id"], "conv-info");
    assert_eq!(at_info[0]["level"], 6);

    stop(warn_handle).await;
    stop(info_handle).await;
    probe.close().await;
}
