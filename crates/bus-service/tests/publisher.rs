//! Behaviour 10, the publisher: a cheap-to-clone handle that publishes
//! events and configurations with confirms from plain tokio code. A
//! publish that returned `Ok` is on the broker, and `close()` is graceful:
//! whatever was published before it is confirmed, what comes after fails.

mod probe;

use std::collections::BTreeSet;
use std::pin::pin;
use std::time::Duration;

use amqprs::channel::QueueDeclareArguments;
use bus_service::bus_core::{CONVERSATION_ID_HEADER, Codec, Exchange, PERSISTENT, Value};
use bus_service::{PublishError, Publisher, ServiceState};
use bus_test_support::unique;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use probe::{Probe, WAIT, builder};

const TASKS: u32 = 8;
const EVENTS_PER_TASK: u32 = 25;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Sent {
    task: u32,
    n: u32,
}

fn publisher() -> Publisher {
    builder(&unique("publisher"))
        .start_publisher()
        .expect("start publisher")
}

/// An exclusive queue of the probe's, bound to `exchange` with `pattern`.
async fn bound_queue(probe: &Probe, exchange: Exchange, pattern: &str) -> String {
    let queue = QueueDeclareArguments::exclusive_server_named();
    probe.declare_bound(queue, exchange.name(), pattern).await
}

#[tokio::test]
async fn clones_publish_events_and_configurations_concurrently_and_ok_means_on_the_broker() {
    let prefix = unique("published");
    let pattern = format!("{prefix}.#");
    let probe = Probe::open().await;
    // Bound before any service has declared the exchanges.
    probe.declare_bus_exchanges().await;
    let events = bound_queue(&probe, Exchange::Events, &pattern).await;
    let configurations = bound_queue(&probe, Exchange::Configurations, &pattern).await;
    // Used at once: what is published before the connection is up waits
    // for it.
    let publisher = publisher();

    let tasks = (0..TASKS).map(|task| {
        let (publisher, prefix) = (publisher.clone(), prefix.clone());
        tokio::spawn(async move {
            for n in 0..EVENTS_PER_TASK {
                let key = format!("{prefix}.task{task}");
                let conversation = format!("conversation-{task}");
                publisher
                    .publish_event(&key, &Sent { task, n }, &conversation)
                    .await
                    .expect("publish event");
            }
            let key = format!("{prefix}.settings{task}");
            publisher
                .publish_configuration(&key, &Sent { task, n: 0 })
                .await
                .expect("publish configuration");
        })
    });
    let joined = tokio::time::timeout(WAIT, join_all(tasks)).await;
    for task in joined.expect("every publish confirmed in time") {
        task.expect("task");
    }

    // Confirmed means routed and queued: no waiting for the broker here.
    assert_eq!(probe.message_count(&events).await, TASKS * EVENTS_PER_TASK);
    assert_eq!(probe.message_count(&configurations).await, TASKS);

    let mut seen = BTreeSet::new();
    let mut events = probe.consume(&events).await;
    for _ in 0..TASKS * EVENTS_PER_TASK {
        let message = events.next("an event").await;
        let sent: Sent = message.payload();
        assert_eq!(message.routing_key, format!("{prefix}.task{}", sent.task));
        assert_eq!(message.properties.delivery_mode, Some(PERSISTENT));
        assert_eq!(
            message.properties.content_type.as_deref(),
            Some(Codec::Cbor.content_type())
        );
        assert_eq!(
            message.properties.headers.get(CONVERSATION_ID_HEADER),
            Some(&Value::from(format!("conversation-{}", sent.task)))
        );
        assert!(seen.insert(sent), "{sent:?} published once");
    }
    let mut configurations = probe.consume(&configurations).await;
    let mut tasks_configured = BTreeSet::new();
    for _ in 0..TASKS {
        let message = configurations.next("a configuration").await;
        assert_eq!(message.properties.delivery_mode, Some(PERSISTENT));
        tasks_configured.insert(message.payload::<Sent>().task);
    }
    assert_eq!(tasks_configured, (0..TASKS).collect());

    publisher.close().await.expect("close");
    assert_eq!(publisher.health().state(), ServiceState::Stopped);
    probe.close().await;
}

#[tokio::test]
async fn close_waits_for_the_confirms_of_earlier_publishes_and_later_ones_fail() {
    const COUNT: u32 = 50;
    let prefix = unique("closing");
    let probe = Probe::open().await;
    // Bound before any service has declared the exchanges.
    probe.declare_bus_exchanges().await;
    let events = bound_queue(&probe, Exchange::Events, &format!("{prefix}.#")).await;
    let publisher = publisher();
    assert!(
        publisher.health().wait_for(ServiceState::Ready, WAIT).await,
        "publisher connected"
    );

    let key = format!("{prefix}.event");
    let publishes = (0..COUNT).map(|n| {
        let (publisher, key) = (publisher.clone(), key.clone());
        async move { publisher.publish_event(&key, &n, "closing").await }
    });
    // Unconstrained: tokio's cooperative budget must not make the first
    // poll stop part way through.
    let mut publishes = pin!(tokio::task::unconstrained(join_all(publishes)));
    // One poll hands every message to the publisher; none is confirmed
    // yet, as nothing has waited for the broker.
    assert!(futures_util::poll!(&mut publishes).is_pending());
    tokio::time::timeout(WAIT, publisher.close())
        .await
        .expect("close in time")
        .expect("close");

    let results = tokio::time::timeout(Duration::from_secs(1), publishes)
        .await
        .expect("every publish has its outcome once closed");
    for (n, result) in results.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("publish {n} before close: {e}"));
    }
    assert_eq!(
        probe.message_count(&events).await,
        COUNT,
        "all of them on the broker"
    );

    let late = tokio::time::timeout(WAIT, publisher.publish_event(&key, &0, "late")).await;
    assert!(
        matches!(late, Ok(Err(PublishError::Stopped))),
        "a publish after close fails at once: {late:?}"
    );
    assert_eq!(probe.message_count(&events).await, COUNT);
    probe.close().await;
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_publisher() {
    let publisher = publisher();
    let health = publisher.health().clone();
    assert!(health.wait_for(ServiceState::Ready, WAIT).await, "ready");
    let clone = publisher.clone();
    drop(publisher);
    assert_eq!(health.state(), ServiceState::Ready, "a clone still owns it");
    drop(clone);
    assert!(
        health.wait_for(ServiceState::Stopped, WAIT).await,
        "the connection is closed when the last clone goes: {:?}",
        health.state()
    );
}
