//! Behaviour 1 of the runtime, against the real broker: what a service
//! declares. The four exchanges; the durable shared queues
//! `<svc>.events` and `<svc>.commands`, only when keys are given, bound
//! with exactly those keys; the exclusive server-named configuration queue;
//! exclusive-queues mode; the prefetch; extra queue arguments.

mod probe;

use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{ExchangeDeclareArguments, QueueDeclareArguments};
use amqprs::{FieldTable, FieldValue};
use bus_core::{Exchange, Value, commands_queue, events_queue};
use bus_service::{Context, HandlerResult, Message, Outcome, Service, ServiceState};
use bus_test_support::{QueueCleanup, Vhost, amqp_url, rabbitmqctl, unique};
use probe::{
    NOT_FOUND, PRECONDITION_FAILED, Probe, RESOURCE_LOCKED, WAIT, bound_queues, builder, queue_row,
    queue_rows, recorder, start, start_in_state, stop, wait_for_queue_row,
};
use tokio::sync::Semaphore;

fn payload() -> Value {
    Value::map([("n", Value::from(1))])
}

/// `(name, type, durable, auto_delete)` of the non-default exchanges of
/// `vhost`: the only way to see the service declare the four exchanges,
/// which every other test shares, is a fresh vhost.
fn exchanges(vhost: &Vhost) -> Vec<(String, String, bool, bool)> {
    let out = rabbitmqctl::run(&[
        "-q",
        "list_exchanges",
        "-p",
        vhost.name(),
        "name",
        "type",
        "durable",
        "auto_delete",
        "--formatter",
        "json",
    ])
    .expect("list_exchanges");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    let mut exchanges: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["type"].as_str().unwrap_or_default().to_owned(),
                r["durable"].as_bool().unwrap_or_default(),
                r["auto_delete"].as_bool().unwrap_or_default(),
            )
        })
        .filter(|(name, ..)| !name.is_empty() && !name.starts_with("amq."))
        .collect();
    exchanges.sort();
    exchanges
}

#[tokio::test]
async fn the_four_exchanges_are_declared_durable_topic() {
    let vhost = Vhost::create("bus-topology").expect("vhost");
    assert_eq!(exchanges(&vhost), vec![], "a fresh vhost has none");

    let svc = unique("topo-exchanges");
    let handle = start(
        bus_service::ServiceBuilder::new(&svc)
            .url(vhost.url())
            .event_keys([format!("{svc}.happened")]),
        recorder().0,
    )
    .await;

    let mut expected: Vec<_> = Exchange::ALL
        .iter()
        .map(|e| (e.name().to_owned(), "topic".to_owned(), true, false))
        .collect();
    expected.sort();
    assert_eq!(exchanges(&vhost), expected);

    // What another eventail participant does: declare them the same way.
    let probe = Probe::open_at(vhost.url()).await;
    for exchange in Exchange::ALL {
        let same = ExchangeDeclareArguments::new(exchange.name(), "topic")
            .durable(true)
            .finish();
        assert_eq!(probe.try_declare_exchange(same).await, Ok(()));
        let passive = ExchangeDeclareArguments::new(exchange.name(), "topic")
            .passive(true)
            .finish();
        assert_eq!(probe.try_declare_exchange(passive).await, Ok(()));
        let transient = ExchangeDeclareArguments::new(exchange.name(), "topic");
        assert_eq!(
            probe.try_declare_exchange(transient).await,
            Err(PRECONDITION_FAILED),
            "{exchange} is durable"
        );
    }
    probe.close().await;
    stop(handle).await;
}

#[tokio::test]
async fn shared_queues_are_durable_and_bound_with_exactly_the_given_keys() {
    let svc = unique("topo-shared");
    let _cleanup = QueueCleanup::new(&amqp_url(), [events_queue(&svc), commands_queue(&svc)]);
    let (service, mut handled) = recorder();
    let handle = start(
        builder(&svc)
            .event_keys([format!("{svc}.happened"), format!("{svc}.wild.*")])
            .command_keys([format!("{svc}.Do")]),
        service,
    )
    .await;

    let probe = Probe::open().await;
    let rows = queue_rows(&["durable", "exclusive", "auto_delete"], |name| {
        name == events_queue(&svc) || name == commands_queue(&svc)
    });
    assert_eq!(rows.len(), 2, "both queues exist: {rows:?}");
    for row in &rows {
        assert_eq!(row["durable"], true, "{row}");
        assert_eq!(row["exclusive"], false, "{row}");
        assert_eq!(row["auto_delete"], false, "{row}");
    }
    for queue in [events_queue(&svc), commands_queue(&svc)] {
        let same = QueueDeclareArguments::durable_client_named(&queue);
        assert_eq!(probe.try_declare_queue(same).await, Ok(()), "{queue}");
        let transient = QueueDeclareArguments::new(&queue);
        assert_eq!(
            probe.try_declare_queue(transient).await,
            Err(PRECONDITION_FAILED),
            "{queue} is durable"
        );
    }
    let (wild, command) = (format!("{svc}.wild.*"), format!("{svc}.Do"));
    assert_eq!(
        bound_queues(&[("events", &wild), ("commands", &command)]),
        [[events_queue(&svc)], [commands_queue(&svc)]]
    );

    // Unbound keys first: the events queue is FIFO, so had they been routed
    // they would be handled before the bound ones published after them.
    let conversation = unique("conv");
    for event in ["other", "wild.one.two", "happened", "wild.one"] {
        probe
            .publish_event(&format!("{svc}.{event}"), &payload(), &conversation)
            .await;
    }
    let reply_to = format!("{}.Reply", unique("nobody"));
    probe
        .send_command(
            &format!("{svc}.Do"),
            &payload(),
            &conversation,
            &reply_to,
            "1",
        )
        .await;
    let mut events = Vec::new();
    let mut commands = Vec::new();
    while events.len() + commands.len() < 3 {
        let msg = handled.next("the bound messages").await;
        let route = (msg.meta().exchange.clone(), msg.routing_key().to_owned());
        match route.0.as_str() {
            "events" => events.push(route.1),
            _ => commands.push(route.1),
        }
    }
    assert_eq!(
        events,
        [format!("{svc}.happened"), format!("{svc}.wild.one")]
    );
    assert_eq!(commands, [format!("{svc}.Do")]);

    probe.close().await;
    stop(handle).await;
    assert!(handled.so_far().is_empty());
}

#[tokio::test]
async fn a_queue_is_declared_only_when_it_has_keys() {
    let events_only = unique("topo-events-only");
    let commands_only = unique("topo-commands-only");
    let _cleanup = QueueCleanup::new(
        &amqp_url(),
        [
            events_queue(&events_only),
            commands_queue(&events_only),
            events_queue(&commands_only),
            commands_queue(&commands_only),
        ],
    );
    let a = start(
        builder(&events_only).event_keys([format!("{events_only}.happened")]),
        recorder().0,
    )
    .await;
    let b = start(
        builder(&commands_only).command_keys([format!("{commands_only}.Do")]),
        recorder().0,
    )
    .await;

    let probe = Probe::open().await;
    assert!(probe.queue_exists(&events_queue(&events_only)).await);
    assert!(!probe.queue_exists(&commands_queue(&events_only)).await);
    assert!(!probe.queue_exists(&events_queue(&commands_only)).await);
    assert!(probe.queue_exists(&commands_queue(&commands_only)).await);

    probe.close().await;
    stop(a).await;
    stop(b).await;
}

#[tokio::test]
async fn the_configuration_queue_is_exclusive_and_server_named() {
    let svc = unique("topo-config");
    let config_key = format!("{svc}.settings");
    let handle = start_in_state(
        builder(&svc).config_keys([config_key.clone()]),
        recorder().0,
        ServiceState::Configuring,
    )
    .await;

    let queues = bound_queues(&[("configurations", &config_key)]).remove(0);
    assert_eq!(
        queues.len(),
        1,
        "one queue bound for {config_key}: {queues:?}"
    );
    let queue = &queues[0];
    assert!(queue.starts_with("amq.gen-"), "server-named: {queue}");
    let row = queue_row(queue, &["durable", "exclusive"]).expect("the queue is listed");
    assert_eq!(row["exclusive"], true, "{row}");
    assert_eq!(row["durable"], false, "{row}");

    let probe = Probe::open().await;
    assert_eq!(
        probe
            .try_declare_queue(QueueDeclareArguments::new(queue).passive(true).finish())
            .await,
        Err(RESOURCE_LOCKED),
        "another connection cannot use it"
    );
    // No shared queue for a service with configuration keys only.
    assert!(!probe.queue_exists(&events_queue(&svc)).await);
    assert!(!probe.queue_exists(&commands_queue(&svc)).await);

    stop(handle).await;
    assert!(
        queue_row(queue, &[]).is_none(),
        "the configuration queue goes with its connection"
    );
    probe.close().await;
}

#[tokio::test]
async fn exclusive_queues_mode_leaves_no_shared_queue_behind() {
    let svc = unique("topo-exclusive");
    let _cleanup = QueueCleanup::new(&amqp_url(), [events_queue(&svc), commands_queue(&svc)]);
    let event_key = format!("{svc}.happened");
    let command_key = format!("{svc}.Do");
    let (service, mut handled) = recorder();
    let handle = start(
        builder(&svc)
            .exclusive_queues()
            .event_keys([event_key.clone()])
            .command_keys([command_key.clone()]),
        service,
    )
    .await;

    let probe = Probe::open().await;
    assert!(!probe.queue_exists(&events_queue(&svc)).await);
    assert!(!probe.queue_exists(&commands_queue(&svc)).await);
    let bound = bound_queues(&[("events", &event_key), ("commands", &command_key)]);
    let queues: Vec<String> = bound.concat();
    assert_eq!(queues.len(), 2, "one queue per key: {bound:?}");
    let rows = queue_rows(&["exclusive"], |name| queues.iter().any(|q| q == name));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        assert!(name.starts_with("amq.gen-"), "server-named: {name}");
        assert_eq!(row["exclusive"], true, "{row}");
    }

    let conversation = unique("conv");
    probe
        .publish_event(&event_key, &payload(), &conversation)
        .await;
    assert_eq!(handled.next("the event").await.routing_key(), event_key);

    stop(handle).await;
    let left = queue_rows(&[], |name| queues.iter().any(|q| q == name));
    assert!(left.is_empty(), "gone with the connection: {left:?}");
    assert!(!probe.queue_exists(&events_queue(&svc)).await);
    probe.close().await;
}

/// Blocks every command until the test releases it.
struct Blocking {
    gate: Arc<Semaphore>,
    started: Arc<Semaphore>,
}

impl Service for Blocking {
    async fn handle_command(&self, _ctx: Context, _msg: Message) -> HandlerResult {
        self.started.add_permits(1);
        self.gate.acquire().await.expect("gate open").forget();
        Ok(Outcome::Done)
    }
}

/// Sends 6 commands to a service whose handler blocks, and returns the
/// number of unacked deliveries the broker reports once it settles.
async fn unacked_while_blocked(prefetch: Option<u16>) -> u64 {
    let svc = unique("topo-prefetch");
    let queue = commands_queue(&svc);
    let _cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(Semaphore::new(0));
    let mut b = builder(&svc).command_keys([format!("{svc}.Do")]);
    if let Some(prefetch) = prefetch {
        b = b.prefetch(prefetch);
    }
    let handle = start(
        b,
        Blocking {
            gate: Arc::clone(&gate),
            started: Arc::clone(&started),
        },
    )
    .await;

    let probe = Probe::open().await;
    let reply_to = format!("{}.Reply", unique("nobody"));
    for i in 0..6 {
        probe
            .send_command(
                &format!("{svc}.Do"),
                &payload(),
                &unique("conv"),
                &reply_to,
                &i.to_string(),
            )
            .await;
    }
    tokio::time::timeout(WAIT, started.acquire())
        .await
        .expect("first handler started")
        .expect("open")
        .forget();
    let columns = ["messages_ready", "messages_unacknowledged"];
    let all_queued = |r: &serde_json::Value| {
        r["messages_ready"].as_u64().unwrap_or(0)
            + r["messages_unacknowledged"].as_u64().unwrap_or(0)
            == 6
            && r["messages_unacknowledged"].as_u64().unwrap_or(0) > 0
    };
    // The broker sends up to the prefetch, then no more while the handler
    // blocks: wait until two readings agree.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut row = wait_for_queue_row(&queue, &columns, all_queued).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = queue_row(&queue, &columns).expect("listed");
        if again == row {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "settles: {again}");
        row = again;
    }

    gate.add_permits(6);
    wait_for_queue_row(&queue, &columns, |r| {
        r["messages_ready"] == 0 && r["messages_unacknowledged"] == 0
    })
    .await;
    probe.close().await;
    stop(handle).await;
    row["messages_unacknowledged"].as_u64().expect("a count")
}

#[tokio::test]
async fn prefetch_is_configurable() {
    assert_eq!(unacked_while_blocked(Some(2)).await, 2);
}

#[tokio::test]
async fn prefetch_defaults_to_eventails_three() {
    assert_eq!(unacked_while_blocked(None).await, 3);
}

#[tokio::test]
async fn extra_queue_arguments_apply_to_the_shared_queues() {
    let svc = unique("topo-args");
    let _cleanup = QueueCleanup::new(&amqp_url(), [events_queue(&svc), commands_queue(&svc)]);
    let handle = start(
        builder(&svc)
            .queue_argument("x-max-length", 1000)
            .event_keys([format!("{svc}.happened")])
            .command_keys([format!("{svc}.Do")]),
        recorder().0,
    )
    .await;

    let probe = Probe::open().await;
    for queue in [events_queue(&svc), commands_queue(&svc)] {
        // rabbitmqctl lists arguments as [name, AMQP type, value].
        let row = queue_row(&queue, &["arguments"]).expect("listed");
        let arguments = row["arguments"].as_array().expect("a list");
        assert_eq!(arguments.len(), 1, "{queue}: {row}");
        assert_eq!(arguments[0][0], "x-max-length", "{queue}: {row}");
        assert_eq!(arguments[0][2], 1000, "{queue}: {row}");
        // An eventail service (pika writes small integers as signed 32-bit)
        // declaring the same queue is accepted: the broker compares values.
        let mut pika_args = FieldTable::new();
        pika_args.insert(
            "x-max-length".try_into().expect("name"),
            FieldValue::I(1000),
        );
        assert_eq!(
            probe
                .try_declare_queue(
                    QueueDeclareArguments::durable_client_named(&queue)
                        .arguments(pika_args)
                        .finish()
                )
                .await,
            Ok(()),
            "{queue}: the same argument as pika writes it"
        );
        assert_eq!(
            probe
                .try_declare_queue(QueueDeclareArguments::durable_client_named(&queue))
                .await,
            Err(PRECONDITION_FAILED),
            "{queue}: declaring without the argument is refused"
        );
    }
    probe.close().await;
    stop(handle).await;
}

#[tokio::test]
async fn quorum_queues_can_be_asked_for() {
    let svc = unique("topo-quorum");
    let queue = commands_queue(&svc);
    let _cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    let command = format!("{svc}.Do");
    let (service, mut handled) = recorder();
    let handle = start(
        builder(&svc)
            .queue_argument("x-queue-type", "quorum")
            .command_keys([command.clone()]),
        service,
    )
    .await;

    let row = queue_row(&queue, &["type", "durable"]).expect("listed");
    assert_eq!(row["type"], "quorum", "{row}");
    assert_eq!(row["durable"], true, "{row}");

    let probe = Probe::open().await;
    let reply_to = format!("{}.Reply", unique("nobody"));
    probe
        .send_command(&command, &payload(), &unique("conv"), &reply_to, "1")
        .await;
    assert_eq!(handled.next("the command").await.routing_key(), command);
    probe.close().await;
    stop(handle).await;
}

#[tokio::test]
async fn the_probe_reports_missing_queues() {
    // Guards the helper the tests above rely on: a passive declare of a
    // queue that was never declared is NOT_FOUND, not a success.
    let probe = Probe::open().await;
    assert!(!probe.queue_exists(&unique("never-declared")).await);
    assert_eq!(
        probe
            .try_declare_queue(
                QueueDeclareArguments::new(&unique("never-declared"))
                    .passive(true)
                    .finish()
            )
            .await,
        Err(NOT_FOUND)
    );
    probe.close().await;
}
