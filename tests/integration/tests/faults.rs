//! The fault-injection suite, part 1: faults that touch only the test's
//! own connections, queues and processes, so these tests run side by side
//! with every other test.
//!
//! Each test streams numbered commands to an echo service, injects one
//! fault, and counts the results: sent, received, unique, duplicates and
//! lost; lost must be 0. The counts and the measured times are printed
//! (`cargo test --test faults -- --nocapture` shows them); times are never
//! asserted. Broker-wide faults (broker restart, memory alarm) are in
//! `faults_global.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bus_core::Exchange;
use bus_integration_tests::child::{EchoOptions, EchoProcess};
use bus_integration_tests::echo::{Echo, Invocations, Work, work_key};
use bus_integration_tests::proxy::BlackHoleProxy;
use bus_integration_tests::rig::{Rig, close_connections_of};
use bus_integration_tests::states::{StateLog, wait_ready};
use bus_integration_tests::trace::Trace;
use bus_service::{ReconnectPolicy, ServiceState};
use bus_test_support::{Policy, Vhost, amqp_url, unique};

const FAULT_ECHO: &str = env!("CARGO_BIN_EXE_fault-echo");
/// Bounds the wait for every result after a fault.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long no result may arrive before the counts are taken.
const QUIET: Duration = Duration::from_secs(1);

fn ids(range: std::ops::Range<u64>) -> BTreeSet<u64> {
    range.collect()
}

/// Waits for every command sent to be answered, lets late duplicates land,
/// then prints the counts and asserts none was lost. Returns when the last
/// command was answered.
async fn count(rig: &Rig, sent: &BTreeSet<u64>, test: &str) -> Instant {
    let all = rig.collector.tally.wait_all(sent, ANSWER_TIMEOUT).await;
    let answered = Instant::now();
    rig.collector.tally.settle(QUIET).await;
    let counts = rig.collector.tally.counts(sent);
    counts.report_and_check(test);
    assert!(all, "{test}: not every command was answered");
    assert!(
        rig.sender.returned().is_empty(),
        "{test}: commands returned unroutable"
    );
    answered
}

/// Asserts that no delivery was acked before its outputs were confirmed.
fn check_trace(trace: &Trace, test: &str) {
    let (acks, violations) = trace.check_ack_after_confirm();
    println!("FAULT {test}: {acks} acks checked against publisher confirms");
    assert!(acks > 0, "{test}: no ack traced");
    assert!(violations.is_empty(), "{test}: {violations:?}");
}

/// The `Reconnecting` records the service logged on the bus, with causes.
async fn reconnect_logs(rig: &Rig, queue: &str) -> Vec<String> {
    rig.side
        .collect(queue, 1, Duration::from_secs(10))
        .await
        .into_iter()
        .filter(|g| g.short_message() == "Reconnecting")
        .map(|g| g.full_message())
        .collect()
}

/// a. The broker closes the service's connection (found by its name),
/// then the sender's, during a stream of commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_force_closed_by_the_broker() {
    let rig = Rig::new(&amqp_url(), "fault-a").await;
    let warnings = rig.side.logs_of(&rig.echo, "WARNING").await;
    let (echo, states, trace) = rig.start_traced_echo().await;

    let n = 300;
    let tally = &rig.collector.tally;
    let faults = async {
        let fault = Instant::now();
        assert_eq!(
            close_connections_of(&rig.echo).await,
            1,
            "exactly one connection named {}@<host>:<pid>",
            rig.echo
        );
        assert!(tally.wait_received(150, ANSWER_TIMEOUT).await);
        // The sender's commands in flight are published again.
        assert_eq!(close_connections_of(rig.sender.name()).await, 1);
        fault
    };
    let gap = Duration::from_millis(5);
    let fault = rig
        .stream_with_fault(n, gap, Work::numbered, 50, faults)
        .await;
    assert!(rig.sender.wait_confirmed(ANSWER_TIMEOUT).await);
    count(&rig, &ids(0..n), "a (connection force-closed)").await;
    states
        .outage_after(fault)
        .report("a (connection force-closed)");
    check_trace(&trace, "a");

    assert_eq!(echo.health().counters().reconnections, 1);
    assert_eq!(rig.sender.handle().health().counters().reconnections, 1);
    let causes = reconnect_logs(&rig, &warnings).await;
    assert!(
        causes.iter().any(|c| c.contains("closed by the broker")),
        "the reconnection and its cause are logged on the bus: {causes:?}"
    );
    echo.stop().await.expect("stop echo");
    rig.stop().await;
}

/// b. The network dies silently (no FIN, no RST): only heartbeats can
/// tell. The service goes through a proxy first, then the broker itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_tcp_black_hole_is_found_by_heartbeats() {
    let rig = Rig::new(&amqp_url(), "fault-b").await;
    let warnings = rig.side.logs_of(&rig.echo, "WARNING").await;
    let proxy = BlackHoleProxy::start(&rig.url).await;
    let builder = bus_service::ServiceBuilder::new(&rig.echo)
        .urls([proxy.url(), rig.url.as_str()])
        .command_keys([work_key(&rig.echo)])
        .heartbeat(2)
        .prefetch(10);
    let (echo, states) = rig
        .start_echo(builder, Echo::taking(Duration::from_millis(5)))
        .await;

    let n = 200;
    let cut = async {
        proxy.black_hole();
        Instant::now()
    };
    let gap = Duration::from_millis(10);
    let fault = rig.stream_with_fault(n, gap, Work::numbered, 50, cut).await;
    count(&rig, &ids(0..n), "b (TCP black hole)").await;
    states.outage_after(fault).report("b (TCP black hole)");

    assert_eq!(echo.health().counters().reconnections, 1);
    assert_eq!(
        proxy.accepted(),
        1,
        "round robin: the reconnection went to the next URL, not the dead one"
    );
    let causes = reconnect_logs(&rig, &warnings).await;
    assert!(
        causes.iter().any(|c| c.contains("heartbeat timeout")),
        "the cause is a lost connection: {causes:?}"
    );
    echo.stop().await.expect("stop echo");
    drop(proxy);
    rig.stop().await;
}

/// d. One of two instances is killed (SIGKILL) in the middle of its work:
/// the broker redelivers what it held, and the other one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_sigkill_of_one_of_two_instances() {
    let rig = Rig::new(&amqp_url(), "fault-d").await;
    let options = EchoOptions {
        delay: Duration::from_millis(20),
        prefetch: 10,
        stop_timeout: Duration::from_secs(10),
    };
    let mut victim = EchoProcess::spawn(FAULT_ECHO, &rig.url, &rig.echo, &options);
    let mut survivor = EchoProcess::spawn(FAULT_ECHO, &rig.url, &rig.echo, &options);
    victim.wait_line("READY", Duration::from_secs(30)).await;
    survivor.wait_line("READY", Duration::from_secs(30)).await;

    let n = 300;
    rig.sender.send_many(0..n, Duration::ZERO).await;
    assert!(rig.sender.wait_confirmed(ANSWER_TIMEOUT).await);
    let tally = &rig.collector.tally;
    assert!(tally.wait_received(60, ANSWER_TIMEOUT).await);
    victim.signal("KILL");
    let killed = Instant::now();
    let status = victim.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let answered = count(&rig, &ids(0..n), "d (SIGKILL of one of two instances)").await;
    println!(
        "FAULT d (SIGKILL of one of two instances): every command answered {:.2}s after the kill",
        answered.duration_since(killed).as_secs_f64()
    );
    let redelivered = tally.redeliveries_answered_by(survivor.pid());
    println!(
        "FAULT d (SIGKILL of one of two instances): the survivor answered {redelivered} redelivered commands"
    );
    assert!(
        redelivered > 0,
        "the survivor took over the victim's commands"
    );
    survivor.signal("TERM");
    assert!(
        survivor.wait_exit(Duration::from_secs(20)).await.success(),
        "the survivor stops gracefully"
    );
    rig.stop().await;
}

/// e. SIGTERM under load: the service exits with 0 within its stop
/// timeout; every command is either answered or still in the queue, and
/// none is both (no duplicate at a graceful stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_sigterm_under_load() {
    let mut rig = Rig::new(&amqp_url(), "fault-e").await;
    let stop_timeout = Duration::from_secs(10);
    let options = EchoOptions {
        delay: Duration::from_millis(50),
        prefetch: 10,
        stop_timeout,
    };
    let mut echo = EchoProcess::spawn(FAULT_ECHO, &rig.url, &rig.echo, &options);
    echo.wait_line("READY", Duration::from_secs(30)).await;

    let n = 200;
    rig.sender.send_many(0..n, Duration::ZERO).await;
    assert!(rig.sender.wait_confirmed(ANSWER_TIMEOUT).await);
    let tally = &rig.collector.tally;
    assert!(tally.wait_received(20, ANSWER_TIMEOUT).await);
    echo.signal("TERM");
    let signalled = Instant::now();
    let status = echo.wait_exit(stop_timeout + Duration::from_secs(10)).await;
    let stopped_in = signalled.elapsed();
    assert!(status.success(), "exit status after SIGTERM: {status}");

    tally.settle(QUIET).await;
    let answered = tally.ids();
    // The broker requeues the closed connection's deliveries a moment
    // after the close: wait for the count the claim predicts.
    let unanswered = u32::try_from(n as usize - answered.len()).expect("small");
    let queue = rig.echo_queue();
    rig.side.wait_queue_state(&queue, (unanswered, 0)).await;
    let left = rig.side.drain(&queue).await;
    let queued: BTreeSet<u64> = left.iter().filter_map(|g| g.work_id()).collect();
    // Prefetched but never started: back in the queue, flagged redelivered.
    let flagged = left.iter().filter(|g| g.redelivered).count();
    let sent = ids(0..n);
    let counts = tally.counts(&sent);
    let union: BTreeSet<u64> = answered.union(&queued).copied().collect();
    println!(
        "FAULT e (SIGTERM under load): sent={} received={} unique={} duplicates={} \
         still_queued={} (redelivered flag on {flagged}) lost={}; exit 0 {:.2}s after SIGTERM",
        counts.sent,
        counts.received,
        counts.unique,
        counts.duplicates,
        queued.len(),
        sent.difference(&union).count(),
        stopped_in.as_secs_f64()
    );
    assert_eq!(
        counts.duplicates, 0,
        "a graceful stop answers nothing twice"
    );
    let both: Vec<_> = answered.intersection(&queued).collect();
    assert!(both.is_empty(), "answered and still queued: {both:?}");
    assert_eq!(union, sent, "answered + still queued = sent");
    rig.stop().await;
}

/// A second signal exits at once, without waiting for a handler that
/// would take a minute; the unfinished command stays in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_forces_exit() {
    let mut rig = Rig::new(&amqp_url(), "fault-signal2").await;
    let options = EchoOptions {
        delay: Duration::from_secs(60),
        prefetch: 1,
        stop_timeout: Duration::from_secs(60),
    };
    let mut echo = EchoProcess::spawn(FAULT_ECHO, &rig.url, &rig.echo, &options);
    echo.wait_line("READY", Duration::from_secs(30)).await;
    rig.sender.send_many(0..1, Duration::ZERO).await;
    echo.wait_line("START 0", Duration::from_secs(30)).await;
    echo.signal("TERM");
    // Still waiting for its handler: the first signal stops gracefully.
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo.signal("TERM");
    let status = echo.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "forced exit: {status}");
    let queue = rig.echo_queue();
    assert_eq!(
        rig.side.wait_queue_state(&queue, (1, 0)).await,
        Some((1, 0)),
        "the unfinished command is back in the queue"
    );
    rig.stop().await;
}

/// SIGTERM, SIGINT and SIGHUP each stop the service gracefully (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_termination_signal_stops_gracefully() {
    let name = unique("fault-signals");
    let url = amqp_url();
    let _cleanup = bus_test_support::QueueCleanup::new(&url, [bus_core::commands_queue(&name)]);
    let options = EchoOptions {
        delay: Duration::ZERO,
        prefetch: 3,
        stop_timeout: Duration::from_secs(10),
    };
    for signal in ["TERM", "INT", "HUP"] {
        let mut echo = EchoProcess::spawn(FAULT_ECHO, &url, &name, &options);
        echo.wait_line("READY", Duration::from_secs(30)).await;
        echo.signal(signal);
        let status = echo.wait_exit(Duration::from_secs(20)).await;
        assert!(status.success(), "SIG{signal}: {status}");
    }
}

/// f. The service's queue is deleted under its consumer: the service sees
/// the cancel, is not ready until it has declared the queue again and
/// consumes it, then answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_queue_deleted_under_the_consumer() {
    let mut rig = Rig::new(&amqp_url(), "fault-f").await;
    let echo = rig
        .echo_builder()
        .start(Echo::default())
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    let states = StateLog::follow(&echo.health());
    rig.sender.send_many(0..50, Duration::ZERO).await;
    assert!(
        rig.collector
            .tally
            .wait_all(&ids(0..50), ANSWER_TIMEOUT)
            .await
    );

    // A session shorter than a second does not reset the backoff; let
    // this one be a long-running service's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queue = rig.echo_queue();
    let fault = Instant::now();
    rig.side.delete_queue(&queue).await;
    let health = echo.health();
    tokio::time::timeout(Duration::from_secs(30), async {
        while health.counters().reconnections < 1 || !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("ready again after the queue was deleted");
    let outage = states.outage_after(fault);
    outage.report("f (queue deleted)");
    assert!(
        outage.left.is_some(),
        "not ready while a consumer is missing: {:?}",
        states.states_after(fault)
    );
    let (_, consumers) = rig
        .side
        .queue_state(&queue)
        .await
        .expect("queue declared again");
    assert_eq!(consumers, 1, "ready means consuming");

    rig.sender.send_many(50..100, Duration::ZERO).await;
    count(&rig, &ids(0..100), "f (queue deleted)").await;
    echo.stop().await.expect("stop echo");
    rig.stop().await;
}

/// Sets a dead-letter policy on the echo's queue and returns the queue
/// that receives its dead letters.
async fn dead_letters(rig: &Rig) -> (Policy, String) {
    let exchange = unique("fault-dlx");
    let queue = rig.side.dead_letter_queue(&exchange).await;
    let pattern = format!("^{}$", rig.echo_queue().replace('.', "\\."));
    let policy = Policy::set(
        &pattern,
        &format!(r#"{{"dead-letter-exchange":"{exchange}"}}"#),
        "queues",
    )
    .expect("dead-letter policy");
    (policy, queue)
}

/// g. A poison message (its handler always fails) is retried exactly
/// once, then dead-lettered; the service stays up and answers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_poison_message_is_retried_once_then_dead_lettered() {
    let rig = Rig::new(&amqp_url(), "fault-g").await;
    let (_policy, dlq) = dead_letters(&rig).await;
    let invocations = Invocations::default();
    let echo = rig
        .echo_builder()
        .start(Echo {
            invocations: invocations.clone(),
            ..Echo::default()
        })
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    let states = StateLog::follow(&echo.health());
    let started = Instant::now();

    let poison = 1000;
    rig.sender.send_many(0..20, Duration::ZERO).await;
    rig.sender
        .send(Work {
            id: poison,
            fail: true,
            ..Work::default()
        })
        .await;
    rig.sender.send_many(20..40, Duration::ZERO).await;

    let dead = rig.side.collect(&dlq, 1, Duration::from_secs(30)).await;
    count(&rig, &ids(0..40), "g (poison message)").await;
    let dead_ids: Vec<_> = dead.iter().map(|g| g.work_id()).collect();
    assert_eq!(
        dead_ids,
        [Some(poison)],
        "the poison message is dead-lettered"
    );
    assert_eq!(dead[0].routing_key, work_key(&rig.echo));
    assert!(rig.side.drain(&dlq).await.is_empty(), "dead-lettered once");
    assert_eq!(
        invocations.of(poison),
        2,
        "handled once, then exactly one redelivery"
    );
    let counters = echo.health().counters();
    println!(
        "FAULT g (poison message): poison handled {} times, dead-lettered {}; counters {counters:?}",
        invocations.of(poison),
        dead.len()
    );
    assert_eq!((counters.failed, counters.dead_lettered), (2, 1));
    assert_eq!(counters.reconnections, 0);
    assert_eq!(states.states_after(started), []);
    assert_eq!(echo.health().state(), ServiceState::Ready);
    echo.stop().await.expect("stop echo");
    rig.stop().await;
}

/// h. Messages the protocol refuses: an undecodable body, missing headers,
/// a 50 MB undecodable body; and a 50 MB valid one. The bad ones are
/// dead-lettered, the big valid one answered; no crash, no reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_undecodable_headerless_and_huge_messages() {
    let rig = Rig::new(&amqp_url(), "fault-h").await;
    let (_policy, dlq) = dead_letters(&rig).await;
    let echo = rig
        .echo_builder()
        .reconnect(ReconnectPolicy::linear(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .start(Echo::default())
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    let states = StateLog::follow(&echo.health());
    let started = Instant::now();

    let key = work_key(&rig.echo);
    let commands = Exchange::Commands.name();
    let reply_to = Some(rig.collector.reply_to.as_str());
    let headers = [("conversation_id", "fault-h")];
    let huge = 50 * 1024 * 1024;
    let cbor = bus_core::Codec::Cbor;
    let work = |id: u64, pad: usize| {
        cbor.encode(&Work {
            id,
            pad: "x".repeat(pad),
            ..Work::default()
        })
        .expect("encode")
    };
    rig.sender.send_many(0..10, Duration::ZERO).await;
    let ct = cbor.content_type();
    let side = &rig.side;
    side.publish_raw(commands, &key, ct, &headers, reply_to, vec![0xff; 16])
        .await;
    side.publish_raw(commands, &key, ct, &[], reply_to, work(2001, 0))
        .await;
    side.publish_raw(commands, &key, ct, &headers, reply_to, vec![0xff; huge])
        .await;
    side.publish_raw(commands, &key, ct, &headers, reply_to, work(2003, huge))
        .await;
    rig.sender.send_many(10..20, Duration::ZERO).await;

    let mut sent = ids(0..20);
    sent.insert(2003);
    let dead = side.collect(&dlq, 3, Duration::from_secs(60)).await;
    count(&rig, &sent, "h (invalid and huge messages)").await;
    let mut sizes: Vec<usize> = dead.iter().map(|g| g.body.len()).collect();
    sizes.sort_unstable();
    println!(
        "FAULT h (invalid and huge messages): dead-lettered bodies of {sizes:?} bytes; counters {:?}",
        echo.health().counters()
    );
    assert_eq!(dead.len(), 3, "three invalid messages dead-lettered");
    assert_eq!(sizes[0], 16);
    assert_eq!(sizes[2], huge);
    assert_eq!(dead.iter().filter(|g| g.work_id() == Some(2001)).count(), 1);
    let counters = echo.health().counters();
    assert_eq!(counters.dead_lettered, 3);
    assert_eq!(counters.reconnections, 0, "no reconnect loop");
    assert_eq!(states.states_after(started), []);
    echo.stop().await.expect("stop echo");
    rig.stop().await;
}

/// A channel closed by the broker for a protocol error: the service
/// publishes to an exchange that was deleted (on a vhost of the test's
/// own), the broker closes the channel with 404, and the service
/// reconnects, declares its topology again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_closed_by_a_protocol_error() {
    let _ = amqp_url();
    let vhost = tokio::task::spawn_blocking(|| Vhost::create("fault-channel"))
        .await
        .expect("vhost task")
        .expect("create a vhost");
    let rig = Rig::new(vhost.url(), "fault-channel").await;
    let warnings = rig.side.logs_of(&rig.echo, "WARNING").await;
    let echo = rig
        .echo_builder()
        .prefetch(10)
        .start(Echo::default())
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    let states = StateLog::follow(&echo.health());

    let n = 200;
    let with_event = |id| Work {
        id,
        event: true,
        ..Work::default()
    };
    let delete = async {
        rig.side.delete_exchange(Exchange::Events.name()).await;
        Instant::now()
    };
    let gap = Duration::from_millis(5);
    let fault = rig.stream_with_fault(n, gap, with_event, 50, delete).await;
    count(&rig, &ids(0..n), "channel closed by a protocol error").await;
    states
        .outage_after(fault)
        .report("channel closed by a protocol error");
    assert_eq!(echo.health().counters().reconnections, 1);
    let causes = reconnect_logs(&rig, &warnings).await;
    assert!(
        causes
            .iter()
            .any(|c| c.contains("channel closed by the broker: 404")),
        "{causes:?}"
    );
    echo.stop().await.expect("stop echo");
    rig.stop().await;
    drop(vhost);
}

/// `ServiceHandle::shutdown_token` stops the service as a signal would:
/// the handler in progress gets the stop timeout, then the service stops
/// anyway; the unfinished command and those not started stay queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programmatic_stop_honours_the_stop_timeout() {
    let mut rig = Rig::new(&amqp_url(), "fault-stop").await;
    let invocations = Invocations::default();
    let stop_timeout = Duration::from_secs(1);
    let echo = rig
        .echo_builder()
        .prefetch(1)
        .stop_timeout(stop_timeout)
        .start(Echo {
            delay: Duration::from_secs(60),
            invocations: invocations.clone(),
            ..Echo::default()
        })
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    rig.sender.send_many(0..3, Duration::ZERO).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while invocations.of(0) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first command is being handled");

    let health = echo.health();
    let asked = Instant::now();
    echo.shutdown_token().cancel();
    tokio::time::timeout(stop_timeout + Duration::from_secs(10), echo.join())
        .await
        .expect("stops after the stop timeout")
        .expect("stops without error");
    println!(
        "FAULT programmatic stop: stopped {:.2}s after the request (stop timeout {:.0}s)",
        asked.elapsed().as_secs_f64(),
        stop_timeout.as_secs_f64()
    );
    assert_eq!(health.state(), ServiceState::Stopped);
    let queue = rig.echo_queue();
    assert_eq!(
        rig.side.wait_queue_state(&queue, (3, 0)).await,
        Some((3, 0)),
        "the unfinished command and those not started are still queued"
    );
    assert_eq!(rig.collector.tally.received(), 0);
    rig.stop().await;
}

/// With several URLs, connections go round robin: a dead first URL does
/// not keep the service from the second one, before or after a loss.
/// (Test b shows the URL after the one that failed is tried first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_are_tried_in_turn() {
    let rig = Rig::new(&amqp_url(), "fault-urls").await;
    // Nothing listens on port 1.
    let dead = "amqp://guest:guest@127.0.0.1:1/%2f";
    let echo = bus_service::ServiceBuilder::new(&rig.echo)
        .urls([dead, rig.url.as_str()])
        .command_keys([work_key(&rig.echo)])
        .reconnect(ReconnectPolicy::linear(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ))
        .start(Echo::default())
        .expect("start echo");
    wait_ready(&echo.health(), "echo").await;
    assert!(
        echo.health().last_error().is_some(),
        "the dead URL was tried first"
    );
    rig.sender.send_many(0..20, Duration::ZERO).await;
    assert_eq!(close_connections_of(&rig.echo).await, 1);
    rig.sender.send_many(20..40, Duration::ZERO).await;
    count(&rig, &ids(0..40), "several URLs").await;
    assert_eq!(echo.health().counters().reconnections, 1);
    echo.stop().await.expect("stop echo");
    rig.stop().await;
}
