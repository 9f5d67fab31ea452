//! The conformance suite: each behaviour is written once, generic over the
//! transport, and runs on the test kit's in-memory bus (`testkit_*`) and on
//! RabbitMQ (`broker_*`). A `testkit_` test failing where its `broker_` twin
//! passes means the in-memory bus drifted from RabbitMQ.
//!
//! The behaviours use only what both transports offer: the runtime's API
//! and raw AMQP through the probe. Setups that cannot be written the same
//! way on both are methods of [`Transport`].
#![cfg(feature = "testing")]

mod probe;
#[path = "conformance/raw.rs"]
mod raw;
#[path = "conformance/transport.rs"]
mod transport;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_core::{Codec, Properties, Status, Value, commands_queue};
use bus_service::{
    CallError, Client, Context, HandlerError, Outcome, Router, ServiceBuilder, ServiceHandle,
    ServiceState, TraceEvent,
};
use bus_test_support::unique;
use futures_util::future::join_all;
use probe::trace::{Trace, recording, replay, snapshot, wait_for_trace};
use probe::{Answer, Fanout, Listener, Probe, WAIT, start, start_in_state, stop};
use raw::{Arg, Raw};
use tokio::sync::mpsc;
use transport::{Memory, Rabbit, Transport};

/// Instantiates each behaviour on both transports, under the two names.
macro_rules! conformance {
    ($($behaviour:ident: $testkit:ident, $broker:ident;)*) => {$(
        #[tokio::test]
        async fn $testkit() {
            $behaviour(Memory::start().await).await;
        }

        #[tokio::test]
        async fn $broker() {
            $behaviour(Rabbit::start().await).await;
        }
    )*};
}

conformance! {
    topic_wildcards: testkit_topic_wildcards, broker_topic_wildcards;
    load_balancing: testkit_load_balancing, broker_load_balancing;
    retry_once_then_dead_letter:
        testkit_retry_once_then_dead_letter, broker_retry_once_then_dead_letter;
    ack_after_confirm: testkit_ack_after_confirm, broker_ack_after_confirm;
    nacked_output_republished:
        testkit_nacked_output_republished, broker_nacked_output_republished;
    configuration_phase: testkit_configuration_phase, broker_configuration_phase;
    results_to_reply_to: testkit_results_to_reply_to, broker_results_to_reply_to;
    unroutable_returns: testkit_unroutable_returns, broker_unroutable_returns;
    redelivered_after_connection_loss:
        testkit_redelivered_after_connection_loss, broker_redelivered_after_connection_loss;
    queue_redeclaration: testkit_queue_redeclaration, broker_queue_redeclaration;
    ack_nack_requeue: testkit_ack_nack_requeue, broker_ack_nack_requeue;
    unopened_channel: testkit_unopened_channel, broker_unopened_channel;
    crossing_channel_close: testkit_crossing_channel_close, broker_crossing_channel_close;
    requeue_position: testkit_requeue_position, broker_requeue_position;
    dead_twice: testkit_dead_twice, broker_dead_twice;
    requeue_after_delete: testkit_requeue_after_delete, broker_requeue_after_delete;
    interrupted_content: testkit_interrupted_content, broker_interrupted_content;
    silent_client_dropped: testkit_silent_client_dropped, broker_silent_client_dropped;
}

/// An event route that reports the routing key of what it handles.
fn report(
    keys: &mpsc::UnboundedSender<String>,
) -> impl Fn(Context, Value) -> std::future::Ready<()> + Send + Sync + 'static {
    let keys = keys.clone();
    move |ctx, _| {
        let _ = keys.send(ctx.routing_key().unwrap_or_default().to_owned());
        std::future::ready(())
    }
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .expect("sender alive")
}

/// `*` is exactly one word, `#` zero or more, anywhere in the pattern; a
/// message matching two bindings of a queue is delivered once.
async fn topic_wildcards<T: Transport>(mut t: T) {
    let svc = t.service_name("routing");
    let p = unique("rt");
    let (tx, mut handled) = mpsc::unbounded_channel();
    let router = Router::new()
        .event(&format!("{p}.*.created"), report(&tx))
        .event(&format!("{p}.audit.#"), report(&tx))
        .event(&format!("{p}.#.done"), report(&tx))
        .event(&format!("{p}.end"), report(&tx));
    // One handler at a time keeps the order of the deliveries.
    let handle = start(t.builder(&svc).concurrency(1), router).await;
    let probe = t.probe().await;

    let cases = [
        ("order.created", true),
        ("order.line.created", false),
        ("created", false),
        ("audit", true),
        ("audit.login", true),
        ("audit.login.failed.twice", true),
        ("auditing.login", false),
        ("done", true),
        ("a.b.c.done", true),
        ("done.late", false),
        ("audit.created", true),
    ];
    for (suffix, _) in cases {
        probe
            .publish_event(&format!("{p}.{suffix}"), &Value::Null, "conv")
            .await;
    }
    let others = format!("{}.order.created", unique("rt"));
    probe.publish_event(&others, &Value::Null, "conv").await;
    probe
        .publish_event(&format!("{p}.end"), &Value::Null, "conv")
        .await;

    let sentinel = format!("{p}.end");
    let expected: Vec<String> = cases
        .iter()
        .filter(|(_, routed)| *routed)
        .map(|(suffix, _)| format!("{p}.{suffix}"))
        .chain([sentinel.clone()])
        .collect();
    // The sentinel is published last: once it is handled, every event
    // before it has been routed or dropped.
    let mut got = Vec::new();
    while got.last() != Some(&sentinel) {
        got.push(next(&mut handled, "the next routed event").await);
    }
    assert_eq!(got, expected);
    stop(handle).await;
    assert!(handled.try_recv().is_err(), "nothing after the sentinel");
    probe.close().await;
}

/// Two instances of a service share its queue: both take part, and each
/// command is handled exactly once.
async fn load_balancing<T: Transport>(mut t: T) {
    const COMMANDS: u64 = 40;
    let svc = t.service_name("balanced");
    let handled: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let instance = |number: u64| {
        let handled = Arc::clone(&handled);
        Router::new().command("Work", move |ctx: Context, n: u64| {
            let handled = Arc::clone(&handled);
            async move {
                handled.lock().unwrap().push((number, n));
                // Long enough for the next commands to go to the other one.
                tokio::time::sleep(Duration::from_millis(5)).await;
                ctx.reply_success(&number).await?;
                Ok::<(), HandlerError>(())
            }
        })
    };
    let first = start(t.builder(&svc), instance(1)).await;
    let second = start(t.builder(&svc), instance(2)).await;
    let client = Client::connect(t.builder(&unique("lb-client")), WAIT)
        .await
        .expect("client");

    let command = format!("{svc}.Work");
    let (client_ref, command_ref) = (&client, &command);
    let calls =
        (0..COMMANDS).map(|n| async move { (n, client_ref.call(command_ref, &n, WAIT).await) });
    let mut answered_by = BTreeMap::new();
    for (n, reply) in join_all(calls).await {
        let reply = reply.unwrap_or_else(|e| panic!("command {n}: {e}"));
        assert_eq!(reply.status, Status::Success);
        answered_by.insert(n, reply.payload::<u64>().expect("instance number"));
    }

    let handled = handled.lock().unwrap().clone();
    let mut by = BTreeMap::new();
    for (number, n) in &handled {
        assert_eq!(
            answered_by[n], *number,
            "command {n} answered by its handler"
        );
        *by.entry(*number).or_insert(0) += 1;
    }
    assert_eq!(handled.len() as u64, COMMANDS, "each command handled once");
    assert!(by.len() == 2, "both instances take part: {by:?}");
    client.close().await.expect("close client");
    stop(first).await;
    stop(second).await;
}

/// A failing handler is retried once (redelivered), then the message goes
/// to the queue's dead-letter exchange with RabbitMQ's `x-death` headers.
async fn retry_once_then_dead_letter<T: Transport>(mut t: T) {
    let svc = t.service_name("retry");
    let probe = t.probe().await;
    let dlx = unique("dlx");
    probe.declare_exchange(&dlx, "fanout").await;
    let mut dead_letters = probe.listen(&dlx, &[""]).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let router = Router::new().command("Do", move |ctx: Context, _: Value| {
        let redelivered = ctx.delivery().expect("a delivery").redelivered();
        let _ = tx.send(redelivered);
        std::future::ready(Err::<(), _>(HandlerError::msg("refused")))
    });
    let builder = t
        .builder(&svc)
        .queue_argument("x-dead-letter-exchange", dlx.as_str());
    let handle = start(builder, router).await;

    let command = format!("{svc}.Do");
    let conversation = unique("conv");
    let payload = Value::map([("n", Value::from(7i64))]);
    probe
        .send_command(&command, &payload, &conversation, "nobody.Reply", "1")
        .await;
    assert!(!next(&mut seen, "the first delivery").await);
    assert!(next(&mut seen, "the redelivery").await, "redelivered");

    let dead = dead_letters.next("the dead letter").await;
    assert_eq!(
        (dead.exchange.as_str(), dead.routing_key.as_str()),
        (dlx.as_str(), command.as_str())
    );
    assert_eq!(dead.conversation_id(), Some(conversation.as_str()));
    assert_eq!(dead.value(), payload);
    let queue = commands_queue(&svc);
    let death = dead.x_death();
    let field = |name: &str| death.get(name).cloned();
    assert_eq!(field("reason"), Some(Value::from("rejected")));
    assert_eq!(field("queue"), Some(Value::from(queue.as_str())));
    assert_eq!(field("exchange"), Some(Value::from("commands")));
    assert_eq!(field("count").and_then(|c| c.as_i64()), Some(1));
    assert_eq!(
        field("routing-keys"),
        Some(Value::Array(vec![Value::from(command.as_str())]))
    );
    for (header, value) in [
        ("x-first-death-queue", queue.as_str()),
        ("x-first-death-exchange", "commands"),
        ("x-first-death-reason", "rejected"),
    ] {
        assert_eq!(dead.header(header), Some(value), "{header}");
    }

    let late = dead_letters.drain_for(Duration::from_millis(300)).await;
    assert!(late.is_empty(), "one dead letter: {late:?}");
    assert!(seen.try_recv().is_err(), "handled twice, no more");
    let counters = handle.health().counters();
    assert_eq!((counters.failed, counters.dead_lettered), (2, 1));
    stop(handle).await;
    probe.close().await;
}

/// A [`Fanout`] service publishing `copies` events per command, traced,
/// with a listener for its events.
struct FanoutBench {
    svc: String,
    probe: Probe,
    outputs: Listener,
    trace: Trace,
    handle: ServiceHandle,
}

impl FanoutBench {
    async fn start<T: Transport>(
        t: &mut T,
        prefix: &str,
        copies: usize,
        tune: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
    ) -> FanoutBench {
        let svc = t.service_name(prefix);
        let event = format!("{svc}.Out");
        let probe = t.probe().await;
        let outputs = probe.listen("events", std::slice::from_ref(&event)).await;
        let (trace, observer) = recording();
        let builder = t
            .builder(&svc)
            .command_keys([format!("{svc}.Do")])
            .observe(observer);
        let handle = start(tune(builder), Fanout { event, copies }).await;
        FanoutBench {
            svc,
            probe,
            outputs,
            trace,
            handle,
        }
    }

    fn event(&self) -> String {
        format!("{}.Out", self.svc)
    }
}

/// Sends `count` commands `<svc>.Do`, each with a fresh conversation.
async fn send_commands(probe: &Probe, svc: &str, count: usize) {
    for i in 0..count {
        let payload = Value::map([("i", Value::from(i as i64))]);
        let correlation = i.to_string();
        probe
            .send_command(
                &format!("{svc}.Do"),
                &payload,
                &unique("conv"),
                "nobody.Reply",
                &correlation,
            )
            .await;
    }
}

/// Deliveries are acked only after the broker confirmed everything their
/// handlers published, and every output reaches the broker.
async fn ack_after_confirm<T: Transport>(mut t: T) {
    const COMMANDS: usize = 50;
    const COPIES: usize = 2;
    let FanoutBench {
        svc,
        probe,
        mut outputs,
        trace,
        handle,
    } = FanoutBench::start(&mut t, "ack", COPIES, |b| b.prefetch(10)).await;

    send_commands(&probe, &svc, COMMANDS).await;
    wait_for_trace(&trace, "every ack", |t| replay(t).acked.len() == COMMANDS).await;
    stop(handle).await;

    let trace = snapshot(&trace);
    let result = replay(&trace);
    let finished: Vec<usize> = trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::HandlerFinished { outputs, .. } => Some(outputs.len()),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [COPIES; COMMANDS], "each command handled once");
    assert!(
        result.waited_for_confirms > 0,
        "some acks had to wait for confirms, so the replay checked them: {result:?}"
    );
    for i in 0..COMMANDS * COPIES {
        outputs.next(&format!("output {i}")).await;
    }
    probe.close().await;
}

/// An output the broker nacks is published again after the retry delay,
/// and its delivery's ack waits until the broker confirms it. A nacked
/// message still reached the queues that took it, as RabbitMQ does.
async fn nacked_output_republished<T: Transport>(mut t: T) {
    let bench = FanoutBench::start(&mut t, "ack-nack", 1, |b| {
        b.retry_delay(Duration::from_millis(300))
    })
    .await;
    let event = bench.event();
    let FanoutBench {
        svc,
        probe,
        mut outputs,
        trace,
        handle,
    } = bench;

    let refusal = t.refuse_publishes(&probe, &event, 2).await;
    send_commands(&probe, &svc, 1).await;
    let nacks = |t: &[TraceEvent]| {
        t.iter()
            .filter(|e| matches!(e, TraceEvent::BrokerNacked { .. }))
            .count()
    };
    wait_for_trace(&trace, "two broker nacks", |t| nacks(t) >= 2).await;
    t.accept_publishes(&probe, refusal).await;
    let acked = |t: &[TraceEvent]| t.iter().any(|e| matches!(e, TraceEvent::Acked { .. }));
    wait_for_trace(&trace, "the ack", acked).await;
    stop(handle).await;

    let trace = snapshot(&trace);
    replay(&trace);
    let id = trace
        .iter()
        .find_map(|e| match e {
            TraceEvent::HandlerFinished { outputs, .. } => Some(outputs.clone()),
            _ => None,
        })
        .expect("handler finished");
    assert_eq!(id.len(), 1, "one output");
    let id = id[0];
    let attempts = trace
        .iter()
        .filter(|e| matches!(e, TraceEvent::Published { id: i, .. } if *i == id))
        .count();
    assert!(attempts >= 3, "published again after each nack: {attempts}");
    let position = |pick: &dyn Fn(&TraceEvent) -> bool| {
        trace.iter().rposition(pick).expect("event in the trace")
    };
    let last_nack = position(&|e| matches!(e, TraceEvent::BrokerNacked { id: i } if *i == id));
    let confirm = position(&|e| matches!(e, TraceEvent::Confirmed { id: i } if *i == id));
    let ack = position(&|e| matches!(e, TraceEvent::Acked { .. }));
    assert!(
        last_nack < confirm && confirm < ack,
        "nack, confirm, then ack"
    );

    for attempt in 0..attempts {
        let output = outputs.next(&format!("attempt {attempt}")).await;
        assert_eq!(output.value().get("i").and_then(Value::as_i64), Some(0));
    }
    let extra = outputs.drain_for(Duration::from_millis(200)).await;
    assert!(extra.is_empty(), "one copy per attempt: {extra:?}");
    probe.close().await;
}

/// The number of ready messages and of consumers of `queue`.
async fn queue_counts(probe: &Probe, queue: &str) -> (u32, u32) {
    let (_, messages, consumers) = probe
        .channel()
        .queue_declare(
            amqprs::channel::QueueDeclareArguments::new(queue)
                .passive(true)
                .finish(),
        )
        .await
        .expect("passive declare")
        .expect("declare-ok");
    (messages, consumers)
}

/// What a configurable service went through.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Configured(bool),
    Ready,
    Command,
}

/// A command sent before the service is configured waits in its queue,
/// which nobody consumes, until a configuration handler says "configured".
async fn configuration_phase<T: Transport>(mut t: T) {
    let svc = t.service_name("config");
    let probe = t.probe().await;
    let (reply_to, mut replies) = probe.listen_for_results("probe").await;
    let (tx, mut steps) = mpsc::unbounded_channel();
    let (on_config, on_ready) = (tx.clone(), tx.clone());
    let router = Router::new()
        .configuration(&format!("{svc}.config.*"), move |_ctx, done: bool| {
            let _ = on_config.send(Step::Configured(done));
            std::future::ready(Ok(done))
        })
        .on_ready(move |_ctx| {
            let _ = on_ready.send(Step::Ready);
            std::future::ready(())
        })
        .command("Do", move |ctx: Context, _: Value| {
            let _ = tx.send(Step::Command);
            async move { ctx.reply_success(&"done").await }
        });
    let handle = start_in_state(t.builder(&svc), router, ServiceState::Configuring).await;

    let conversation = unique("conv");
    probe
        .send_command(
            &format!("{svc}.Do"),
            &Value::Null,
            &conversation,
            &reply_to,
            "c-1",
        )
        .await;
    let queue = commands_queue(&svc);
    let deadline = tokio::time::Instant::now() + WAIT;
    while queue_counts(&probe, &queue).await != (1, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command waits in its queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let config = |name: &str, done: bool| {
        let body = Codec::Cbor
            .encode_value(&Value::Bool(done))
            .expect("encode");
        bus_core::OutgoingMessage::configuration(&format!("{svc}.config.{name}"), Codec::Cbor, body)
            .expect("valid")
    };
    probe.send(&config("partial", false)).await;
    assert_eq!(next(&mut steps, "a step").await, Step::Configured(false));
    assert_eq!(handle.health().state(), ServiceState::Configuring);
    assert_eq!(queue_counts(&probe, &queue).await, (1, 0), "still waiting");
    assert!(replies.drain_for(Duration::ZERO).await.is_empty());

    probe.send(&config("complete", true)).await;
    assert_eq!(next(&mut steps, "a step").await, Step::Configured(true));
    let mut after = vec![
        next(&mut steps, "a step").await,
        next(&mut steps, "a step").await,
    ];
    after.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(after, [Step::Command, Step::Ready]);
    let reply = replies.next("the reply to the early command").await;
    assert_eq!(reply.status(), Some("success"));
    assert_eq!(reply.conversation_id(), Some(conversation.as_str()));
    stop(handle).await;
    probe.close().await;
}

/// Results go to the `commands` exchange under the caller's `reply_to`,
/// with the status, the command's correlation id and its conversation id.
async fn results_to_reply_to<T: Transport>(mut t: T) {
    let svc = t.service_name("reply");
    let probe = t.probe().await;
    let (reply_to, mut replies) = probe.listen_for_results("caller").await;
    let router = Router::new().command("Echo", |ctx: Context, text: String| async move {
        if text == "fail" {
            ctx.reply_error(&text).await
        } else {
            ctx.reply_success(&text).await
        }
    });
    let handle = start(t.builder(&svc), router).await;

    let command = format!("{svc}.Echo");
    for (text, status) in [("hello", "success"), ("fail", "error")] {
        let conversation = unique("conv");
        let correlation = unique("corr");
        probe
            .send_command(
                &command,
                &Value::from(text),
                &conversation,
                &reply_to,
                &correlation,
            )
            .await;
        let reply = replies.next("the result").await;
        assert_eq!(reply.exchange, "commands");
        assert_eq!(reply.routing_key, reply_to);
        assert_eq!(reply.status(), Some(status));
        assert_eq!(
            reply.properties.correlation_id.as_deref(),
            Some(correlation.as_str())
        );
        assert_eq!(reply.conversation_id(), Some(conversation.as_str()));
        assert_eq!(reply.payload::<String>(), text);
    }
    stop(handle).await;
    probe.close().await;
}

/// A call nobody listens to fails as unroutable; a raw mandatory message
/// with no queue to go to is returned before its confirm, a routed one is
/// only confirmed.
async fn unroutable_returns<T: Transport>(t: T) {
    let probe = t.probe().await;
    let client = Client::connect(t.builder(&unique("caller")), WAIT)
        .await
        .expect("client");
    let nobody = format!("{}.Nobody", unique("ghost"));
    match client.call(&nobody, &Value::Null, WAIT).await {
        Err(CallError::Unroutable { command }) => assert_eq!(command, nobody),
        other => panic!("expected unroutable, got {other:?}"),
    }
    client.close().await.expect("close client");

    let properties = Properties::default();
    let no_queue = unique("no-queue");
    for (exchange, key) in [("commands", nobody.as_str()), ("", no_queue.as_str())] {
        let answers = probe
            .publish_mandatory(exchange, key, &properties, b"lost".to_vec())
            .await;
        assert_eq!(
            answers,
            [Answer::Returned(312, key.to_owned()), Answer::Acked],
            "{exchange:?}"
        );
    }
    let somebody = format!("{}.Somebody", unique("host"));
    let mut listener = probe
        .listen("events", std::slice::from_ref(&somebody))
        .await;
    let answers = probe
        .publish_mandatory("events", &somebody, &properties, b"kept".to_vec())
        .await;
    assert_eq!(answers, [Answer::Acked]);
    assert_eq!(listener.next("the routed message").await.body, b"kept");
    probe.close().await;
}

/// A delivery left unacked when the connection closes comes again, flagged
/// redelivered, once the service has reconnected.
async fn redelivered_after_connection_loss<T: Transport>(mut t: T) {
    let svc = t.service_name("redeliver");
    let probe = t.probe().await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let router = Router::new().command("Hold", move |ctx: Context, n: i64| {
        let redelivered = ctx.delivery().expect("a delivery").redelivered();
        let _ = tx.send((n, redelivered));
        // Left unacked the first time, acked when it comes again.
        std::future::ready(if redelivered {
            Outcome::Done
        } else {
            Outcome::Deferred
        })
    });
    let handle = start(t.builder(&svc), router).await;
    probe
        .send_command(
            &format!("{svc}.Hold"),
            &Value::from(5i64),
            &unique("conv"),
            "nobody.Reply",
            "1",
        )
        .await;
    assert_eq!(next(&mut seen, "the delivery").await, (5, false));

    t.close_connections(&svc).await;
    assert_eq!(next(&mut seen, "the redelivery").await, (5, true));
    assert!(handle.health().counters().reconnections >= 1);
    assert!(handle.health().wait_for(ServiceState::Ready, WAIT).await);
    stop(handle).await;
    let again = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await;
    assert!(
        matches!(again, Ok(None) | Err(_)),
        "handled twice only: {again:?}"
    );
}

/// Declaring an existing queue again succeeds only with equivalent
/// properties and arguments; another connection's exclusive queue is
/// locked; a passive declare finds what exists. This is how the runtime
/// learns that a service queue was declared differently.
async fn queue_redeclaration<T: Transport>(mut t: T) {
    use amqprs::channel::QueueDeclareArguments as Declare;
    use amqprs::{FieldTable, FieldValue};
    use probe::{NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED};

    let svc = t.service_name("declare");
    let queue = commands_queue(&svc);
    let probe = t.probe().await;
    let with = |key: &str, value: &str| {
        let mut arguments = FieldTable::new();
        arguments.insert(
            key.try_into().unwrap(),
            FieldValue::S(value.try_into().unwrap()),
        );
        Declare::durable_client_named(&queue)
            .arguments(arguments)
            .finish()
    };
    let cases = [
        (
            "the first declare",
            Declare::durable_client_named(&queue),
            Ok(()),
        ),
        (
            "the same again",
            Declare::durable_client_named(&queue),
            Ok(()),
        ),
        (
            "not durable",
            Declare::new(&queue),
            Err(PRECONDITION_FAILED),
        ),
        (
            "auto-delete",
            Declare::durable_client_named(&queue)
                .auto_delete(true)
                .finish(),
            Err(PRECONDITION_FAILED),
        ),
        (
            "with a dead-letter exchange",
            with("x-dead-letter-exchange", "dlx"),
            Err(PRECONDITION_FAILED),
        ),
        (
            "with an argument RabbitMQ ignores",
            with("x-bus-unknown", "1"),
            Ok(()),
        ),
        (
            "exclusive",
            Declare::durable_client_named(&queue)
                .exclusive(true)
                .finish(),
            Err(RESOURCE_LOCKED),
        ),
        (
            "passive",
            Declare::new(&queue).passive(true).finish(),
            Ok(()),
        ),
        (
            "passive, missing",
            Declare::new(&unique("missing")).passive(true).finish(),
            Err(NOT_FOUND),
        ),
    ];
    for (case, declare, expected) in cases {
        assert_eq!(probe.try_declare_queue(declare).await, expected, "{case}");
    }

    let other = t.probe().await;
    let (private, _, _) = other
        .channel()
        .queue_declare(Declare::exclusive_server_named())
        .await
        .expect("declare")
        .expect("declare-ok");
    let passive = Declare::new(&private).passive(true).finish();
    assert_eq!(probe.try_declare_queue(passive).await, Err(RESOURCE_LOCKED));
    other.close().await;
    probe.close().await;
}

/// Acks and nacks at the AMQP level, as the runtime and `bus resurrect`
/// use them: `multiple` settles everything up to its tag, a requeued
/// message comes back first and flagged redelivered, `multiple` with tag 0
/// settles everything outstanding, and an unknown tag closes the channel
/// with 406.
async fn ack_nack_requeue<T: Transport>(mut t: T) {
    use amqprs::channel::{BasicAckArguments, BasicGetArguments, BasicNackArguments};

    let (probe, queue) = filled_queue(&mut t, "acks", 4).await;
    let get = |no: u8| {
        let channel = probe.channel().clone();
        let queue = queue.clone();
        async move {
            let (ok, _, body) = channel
                .basic_get(BasicGetArguments::new(&queue))
                .await
                .expect("basic.get")
                .unwrap_or_else(|| panic!("message {no} is in the queue"));
            (ok.delivery_tag(), ok.redelivered(), body)
        }
    };
    let mut tags = Vec::new();
    for n in 1..=4u8 {
        let (tag, redelivered, body) = get(n).await;
        assert_eq!((body, redelivered), (vec![n], false));
        tags.push(tag);
    }
    let channel = probe.channel();
    // Settles 1 and 2; 3 goes back to the queue, first, redelivered.
    channel
        .basic_ack(BasicAckArguments::new(tags[1], true))
        .await
        .unwrap();
    channel
        .basic_nack(BasicNackArguments::new(tags[2], false, true))
        .await
        .unwrap();
    let (tag, redelivered, body) = get(3).await;
    assert_eq!(
        (body, redelivered),
        (vec![3], true),
        "the requeued message, flagged"
    );
    // Tag 0 with `multiple`: 4 and the redelivered 3, requeued together.
    channel
        .basic_nack(BasicNackArguments::new(0, true, true))
        .await
        .unwrap();
    let mut back = Vec::new();
    for n in 0..2u8 {
        let (_, redelivered, body) = get(n).await;
        assert!(redelivered);
        back.extend(body);
    }
    back.sort_unstable();
    assert_eq!(back, [3, 4], "everything outstanding came back");
    assert!(tag > tags[3], "delivery tags keep growing on a channel");
    // An unknown tag is a channel error.
    channel
        .basic_ack(BasicAckArguments::new(tag + 100, false))
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        while channel.is_open() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "an unknown delivery tag closes the channel");
}

/// A method on a channel the client never opened closes the connection
/// with 504 CHANNEL_ERROR, and has no effect: the queue is not declared,
/// the message not routed.
async fn unopened_channel<T: Transport>(mut t: T) {
    let svc = t.service_name("unopened");
    let queue = commands_queue(&svc);
    let probe = t.probe().await;
    let mut raw = Raw::open(t.url()).await;
    let durable = [Arg::U16(0), Arg::Short(&queue), Arg::U8(2), Arg::EmptyTable];
    raw.method(3, (50, 10), &durable).await;
    assert_eq!(raw.expect(0, (10, 50)).await.reply_code(), Some(504));
    assert!(!probe.queue_exists(&queue).await, "not declared");

    probe
        .channel()
        .queue_declare(amqprs::channel::QueueDeclareArguments::durable_client_named(&queue))
        .await
        .expect("declare");
    let mut raw = Raw::open(t.url()).await;
    raw.publish(3, "", &queue, b"lost").await;
    assert_eq!(raw.expect(0, (10, 50)).await.reply_code(), Some(504));
    assert_eq!(probe.message_count(&queue).await, 0, "not routed");
    probe.close().await;
}

/// After the broker closed a channel, it ignores what comes on it but a
/// `channel.close` (which crossed its own: it answers `close-ok`) and the
/// `close-ok`; then the channel can be opened again.
async fn crossing_channel_close<T: Transport>(t: T) {
    let mut raw = Raw::open(t.url()).await;
    raw.method(1, (20, 10), &[Arg::Short("")]).await;
    raw.expect(1, (20, 11)).await;
    let missing = unique("missing");
    raw.publish(1, &missing, "key", b"x").await;
    assert_eq!(raw.expect(1, (20, 40)).await.reply_code(), Some(404));
    // Ignored: the channel is closing.
    raw.publish(1, &missing, "key", b"x").await;
    let close = [Arg::U16(200), Arg::Short("bye"), Arg::U16(0), Arg::U16(0)];
    raw.method(1, (20, 40), &close).await;
    raw.expect(1, (20, 41)).await;
    raw.method(1, (20, 41), &[]).await;
    raw.method(1, (20, 10), &[Arg::Short("")]).await;
    raw.expect(1, (20, 11)).await;
}

/// A probe, and a new durable queue holding messages `[1]` to `[count]`.
async fn filled_queue<T: Transport>(t: &mut T, prefix: &str, count: u8) -> (Probe, String) {
    let queue = commands_queue(&t.service_name(prefix));
    let probe = t.probe().await;
    probe
        .channel()
        .queue_declare(amqprs::channel::QueueDeclareArguments::durable_client_named(&queue))
        .await
        .expect("declare");
    for n in 1..=count {
        probe
            .publish("", &queue, &Properties::default(), vec![n])
            .await;
    }
    (probe, queue)
}

/// The next message of `queue`, by `basic.get`: its delivery tag and body.
async fn get_one(probe: &Probe, queue: &str) -> (u64, Vec<u8>) {
    let (ok, _, body) = probe
        .channel()
        .basic_get(amqprs::channel::BasicGetArguments::new(queue))
        .await
        .expect("basic.get")
        .unwrap_or_else(|| panic!("a message in {queue}"));
    (ok.delivery_tag(), body)
}

async fn nack(probe: &Probe, tag: u64, requeue: bool) {
    probe
        .channel()
        .basic_nack(amqprs::channel::BasicNackArguments::new(
            tag, false, requeue,
        ))
        .await
        .expect("basic.nack");
}

/// A requeued message goes back to its place in the queue, not to its
/// head: nacked out of order, messages come again in publication order.
async fn requeue_position<T: Transport>(mut t: T) {
    let (probe, queue) = filled_queue(&mut t, "requeue", 3).await;
    let (first, _) = get_one(&probe, &queue).await;
    let (second, _) = get_one(&probe, &queue).await;
    nack(&probe, first, true).await;
    nack(&probe, second, true).await;
    let mut order = Vec::new();
    for _ in 1..=3 {
        let (tag, body) = get_one(&probe, &queue).await;
        order.extend(body);
        nack(&probe, tag, false).await;
    }
    assert_eq!(order, [1, 2, 3]);
    probe.close().await;
}

/// A message that dies twice in the same queue has one `x-death` entry for
/// it, with its count raised to 2 and the rest of the first death kept
/// (RabbitMQ 3.10), even when it came the second time by another exchange.
async fn dead_twice<T: Transport>(mut t: T) {
    use amqprs::channel::{BasicPublishArguments, QueueBindArguments, QueueDeclareArguments};
    use amqprs::{FieldTable, FieldValue};

    let svc = t.service_name("twice");
    let queue = commands_queue(&svc);
    let probe = t.probe().await;
    let dlx = unique("dlx");
    probe.declare_exchange(&dlx, "fanout").await;
    let mut dead = probe.listen(&dlx, &[""]).await;
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-dead-letter-exchange".try_into().unwrap(),
        FieldValue::S(dlx.as_str().try_into().unwrap()),
    );
    let declare = QueueDeclareArguments::durable_client_named(&queue)
        .arguments(arguments)
        .finish();
    probe
        .channel()
        .queue_declare(declare)
        .await
        .expect("declare");
    let via = unique("via");
    probe.declare_exchange(&via, "fanout").await;
    probe
        .channel()
        .queue_bind(QueueBindArguments::new(&queue, &via, ""))
        .await
        .expect("bind");

    probe
        .publish("", &queue, &Properties::default(), b"x".to_vec())
        .await;
    let (tag, _) = get_one(&probe, &queue).await;
    nack(&probe, tag, false).await;
    let first = dead.next("the first death").await;
    probe
        .channel()
        .basic_publish(
            first.raw.clone(),
            first.body.clone(),
            BasicPublishArguments::new(&via, "again"),
        )
        .await
        .expect("publish again");
    let (tag, _) = get_one(&probe, &queue).await;
    nack(&probe, tag, false).await;
    let second = dead.next("the second death").await;

    let deaths = match second.properties.headers.get("x-death") {
        Some(Value::Array(deaths)) => deaths.clone(),
        other => panic!("x-death: {other:?}"),
    };
    assert_eq!(
        deaths.len(),
        1,
        "one entry per queue and reason: {deaths:?}"
    );
    let field = |name: &str| deaths[0].get(name).cloned();
    assert_eq!(field("count").and_then(|c| c.as_i64()), Some(2));
    assert_eq!(field("queue"), Some(Value::from(queue.as_str())));
    assert_eq!(
        field("exchange"),
        Some(Value::from("")),
        "the first death's"
    );
    assert_eq!(
        field("routing-keys"),
        Some(Value::Array(vec![Value::from(queue.as_str())]))
    );
    assert_eq!(field("time"), first.x_death().get("time").cloned());
    probe.close().await;
}

/// A delivery whose queue was deleted is gone with it: requeued, it does
/// not reach a new queue declared under the same name.
async fn requeue_after_delete<T: Transport>(mut t: T) {
    use amqprs::channel::{QueueDeclareArguments, QueueDeleteArguments};

    let (probe, queue) = filled_queue(&mut t, "deleted", 1).await;
    let (tag, _) = get_one(&probe, &queue).await;
    let channel = probe.channel();
    channel
        .queue_delete(QueueDeleteArguments::new(&queue))
        .await
        .expect("delete");
    channel
        .queue_declare(QueueDeclareArguments::durable_client_named(&queue))
        .await
        .expect("declare again");
    nack(&probe, tag, true).await;
    assert_eq!(probe.message_count(&queue).await, 0);
    probe.close().await;
}

/// A message's content frames must follow its `basic.publish` at once and
/// add up to the announced size. A method or a second header in between is
/// a connection error (505); a body longer than announced is not routed
/// (RabbitMQ then goes silent on the connection; the in-memory bus closes
/// it with 501).
async fn interrupted_content<T: Transport>(mut t: T) {
    let (probe, queue) = filled_queue(&mut t, "content", 0).await;
    let header = |size: u64| {
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&size.to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        header
    };
    let publish = [Arg::U16(0), Arg::Short(""), Arg::Short(&queue), Arg::U8(0)];
    let qos = [Arg::U32(0), Arg::U16(5), Arg::U8(0)];
    for case in ["a method", "a second header", "a longer body"] {
        let mut raw = Raw::open(t.url()).await;
        raw.method(1, (20, 10), &[Arg::Short("")]).await;
        raw.expect(1, (20, 11)).await;
        raw.method(1, (60, 40), &publish).await;
        match case {
            "a method" => raw.method(1, (60, 10), &qos).await,
            "a second header" => {
                raw.frame(raw::HEADER, 1, &header(4)).await;
                raw.frame(raw::HEADER, 1, &header(4)).await;
            }
            _ => {
                raw.frame(raw::HEADER, 1, &header(2)).await;
                raw.frame(raw::BODY, 1, b"four").await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                assert_eq!(probe.message_count(&queue).await, 0, "{case}: not routed");
                continue;
            }
        }
        let close = raw.expect(0, (10, 50)).await;
        assert_eq!(close.reply_code(), Some(505), "{case}");
    }
    assert_eq!(probe.message_count(&queue).await, 0, "nothing routed");
    probe.close().await;
}

/// A client that asked for heartbeats and then goes silent is dropped once
/// they are missed, and what it had not acked goes back to the queue.
async fn silent_client_dropped<T: Transport>(mut t: T) {
    let (probe, queue) = filled_queue(&mut t, "silent", 1).await;
    let mut raw = Raw::open_with_heartbeat(t.url(), 1).await;
    raw.method(1, (20, 10), &[Arg::Short("")]).await;
    raw.expect(1, (20, 11)).await;
    raw.method(1, (60, 70), &[Arg::U16(0), Arg::Short(&queue), Arg::U8(0)])
        .await;
    raw.expect(1, (60, 71)).await;
    assert_eq!(probe.message_count(&queue).await, 0, "held unacked");
    // The client never sends a heartbeat: the broker ends the connection.
    while raw.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + WAIT;
    while probe.message_count(&queue).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requeued after the drop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    probe.close().await;
}
