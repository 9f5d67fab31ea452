//! Behaviour 3 of the runtime, against the real broker: an incoming
//! delivery is acked only once the broker has confirmed every message its
//! handler published, acks and confirms are pipelined, and a message the
//! broker nacks is published again while the ack keeps waiting.
//!
//! The runtime's [`TraceEvent`] hook records, in one task and in order, each
//! confirm it applies and each ack it sends; `probe::trace::replay` replays
//! that record and fails on any ack sent before a confirm it depends on.

mod probe;

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::channel::{BasicGetArguments, QueueDeclareArguments, QueuePurgeArguments};
use bus_core::{Value, commands_queue};
use bus_service::TraceEvent;
use bus_test_support::amqp_props::from_amqprs;
use bus_test_support::{QueueCleanup, amqp_url, unique};
use probe::trace::{recording, replay, snapshot, wait_for_trace};
use probe::{Fanout, Probe, WAIT, builder, queue_row, start, stop};

#[tokio::test]
async fn deliveries_are_acked_only_after_their_outputs_are_confirmed_and_pipelined() {
    const COMMANDS: usize = 200;
    const COPIES: usize = 2;
    let svc = unique("ack");
    // A durable queue for the outputs: the broker confirms persistent
    // messages to it only once they are on disk, so confirms take a while
    // and the ack really has to wait for them.
    let sink = unique("ack-sink");
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands_queue(&svc), sink.clone()]);
    let event = format!("{svc}.Out");
    let probe = Probe::open().await;
    probe
        .declare_bound(
            QueueDeclareArguments::durable_client_named(&sink),
            "events",
            &event,
        )
        .await;

    let (trace, observer) = recording();
    let handle = start(
        builder(&svc)
            .command_keys([format!("{svc}.Do")])
            .prefetch(20)
            .observe(observer),
        Fanout {
            event: event.clone(),
            copies: COPIES,
        },
    )
    .await;

    let reply_to = format!("{}.Reply", unique("nobody"));
    for i in 0..COMMANDS {
        let payload = Value::map([("i", Value::from(i as i64))]);
        probe
            .send_command(
                &format!("{svc}.Do"),
                &payload,
                &unique("conv"),
                &reply_to,
                &i.to_string(),
            )
            .await;
    }
    wait_for_trace(&trace, "every ack", |t| replay(t).acked.len() == COMMANDS).await;
    stop(handle).await;

    let trace = snapshot(&trace);
    let result = replay(&trace);
    let finished: Vec<&Vec<u64>> = trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::HandlerFinished { outputs, .. } => Some(outputs),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), COMMANDS, "each command handled once");
    assert!(
        finished.iter().all(|outputs| outputs.len() == COPIES),
        "each handler's outputs are tied to its delivery"
    );
    assert!(
        result.waited_for_confirms > 0,
        "some acks had to wait for confirms: {result:?}"
    );
    assert!(
        result.pipelined > 0,
        "the next delivery was handled while an earlier one waited: {result:?}"
    );
    let rows = queue_row(&sink, &["messages"]).expect("sink listed");
    assert_eq!(rows["messages"], (COMMANDS * COPIES) as u64);
    probe.close().await;
    eprintln!(
        "acked {}, pipelined {}, waited for confirms {}, multiple acks {}",
        result.acked.len(),
        result.pipelined,
        result.waited_for_confirms,
        result.multiple_acks
    );
}

#[tokio::test]
async fn a_nacked_output_is_published_again_and_the_ack_waits_for_it() {
    let svc = unique("ack-nack");
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands_queue(&svc)]);
    let event = format!("{svc}.Full");
    let probe = Probe::open().await;

    // A queue that holds one message and makes the broker nack publishes
    // beyond that, bound to the event the handler publishes.
    let full = probe.declare_rejecting("events", &event, 1).await;
    probe
        .publish(
            "",
            &full,
            &bus_core::Properties::default(),
            b"filler".to_vec(),
        )
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while probe.message_count(&full).await < 1 {
        assert!(tokio::time::Instant::now() < deadline, "filler queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (trace, observer) = recording();
    let handle = start(
        builder(&svc)
            .command_keys([format!("{svc}.Do")])
            .retry_delay(Duration::from_millis(300))
            .observe(observer),
        Fanout {
            event: event.clone(),
            copies: 1,
        },
    )
    .await;
    let conversation = unique("conv");
    let payload = Value::map([("kept", Value::from("until confirmed"))]);
    probe
        .send_command(
            &format!("{svc}.Do"),
            &payload,
            &conversation,
            &format!("{}.Reply", unique("nobody")),
            "1",
        )
        .await;

    // Nacked, published again after the delay, nacked again.
    let nacks = |t: &[TraceEvent]| {
        t.iter()
            .filter(|e| matches!(e, TraceEvent::BrokerNacked { .. }))
            .count()
    };
    wait_for_trace(&trace, "two broker nacks", |t| nacks(t) >= 2).await;
    let seen = snapshot(&trace);
    let (tag, id) = seen
        .iter()
        .find_map(|e| match e {
            TraceEvent::HandlerFinished {
                delivery_tag,
                outputs,
                ..
            } => Some((*delivery_tag, outputs.clone())),
            _ => None,
        })
        .expect("handler finished");
    assert_eq!(id.len(), 1, "one output");
    let id = id[0];
    let sequences: BTreeSet<u64> = seen
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Published { id: i, seq } if *i == id => Some(*seq),
            _ => None,
        })
        .collect();
    assert!(
        sequences.len() >= 2,
        "the same message went out again under a new sequence number: {sequences:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, TraceEvent::Acked { .. })),
        "no ack while the output is refused"
    );
    let commands = queue_row(&commands_queue(&svc), &["messages_unacknowledged"]).unwrap();
    assert_eq!(
        commands["messages_unacknowledged"], 1,
        "the broker still holds the command unacked"
    );

    probe
        .channel()
        .queue_purge(QueuePurgeArguments::new(&full))
        .await
        .unwrap();
    wait_for_trace(&trace, "the ack", |t| {
        t.iter()
            .any(|e| matches!(e, TraceEvent::Acked { delivery_tag, .. } if *delivery_tag == tag))
    })
    .await;
    stop(handle).await;

    let trace = snapshot(&trace);
    replay(&trace);
    let position = |pick: &dyn Fn(&TraceEvent) -> bool| {
        trace.iter().rposition(pick).expect("event in the trace")
    };
    let last_nack = position(&|e| matches!(e, TraceEvent::BrokerNacked { id: i } if *i == id));
    let confirm = position(&|e| matches!(e, TraceEvent::Confirmed { id: i } if *i == id));
    let ack =
        position(&|e| matches!(e, TraceEvent::Acked { delivery_tag, .. } if *delivery_tag == tag));
    assert!(
        last_nack < confirm && confirm < ack,
        "nack, confirm, then ack"
    );

    // The message finally in the queue is the republished output.
    assert_eq!(probe.message_count(&full).await, 1);
    let got = probe
        .channel()
        .basic_get(BasicGetArguments::new(&full).no_ack(true).finish())
        .await
        .unwrap()
        .expect("a message");
    let (_, properties, body) = got;
    let properties = from_amqprs(&properties);
    assert_eq!(
        properties
            .headers
            .get("conversation_id")
            .and_then(Value::as_str),
        Some(conversation.as_str())
    );
    assert_eq!(bus_core::Codec::Cbor.decode_value(&body).unwrap(), payload);
    probe.close().await;
}
