//! The fault-injection suite, part 2: faults that disturb the whole
//! broker (restarting it, a memory alarm).
//!
//! Every test here holds `bus_test_support::serial()` for its whole run,
//! and no other test binary has any: `cargo test` runs test binaries one
//! after another, so nothing else talks to the broker meanwhile. The
//! guards (`StoppedApp`, `MemoryAlarm`) put the broker back even when a
//! test fails. Counts and times are printed as in `faults.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bus_core::Exchange;
use bus_integration_tests::broker::Side;
use bus_integration_tests::echo::{Echo, Work};
use bus_integration_tests::rig::{Rig, close_connections_of};
use bus_integration_tests::states::StateLog;
use bus_service::ServiceState;
use bus_test_support::{MemoryAlarm, StoppedApp, amqp_url, serial, unique};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);
const QUIET: Duration = Duration::from_secs(1);

fn ids(range: std::ops::Range<u64>) -> BTreeSet<u64> {
    range.collect()
}

/// The causes of the `Reconnecting` records in `queue`.
async fn reconnect_causes(side: &Side, queue: &str) -> Vec<String> {
    side.collect(queue, 1, Duration::from_secs(10))
        .await
        .into_iter()
        .filter(|g| g.short_message() == "Reconnecting")
        .map(|g| g.full_message())
        .collect()
}

/// Runs `test` on a runtime of its own while holding the broker-wide lock
/// (a std lock, held outside the async code).
fn serialised<F: Future<Output = ()>>(test: F) {
    let _serial = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

/// Queues commands `0..n` for the echo service (declaring its queue by
/// starting it once), then raises the memory alarm. The commands are
/// queued first because, with the alarm on, the sender could not publish
/// them: the service's replies are what must stall.
async fn queue_then_raise_alarm(rig: &Rig, n: u64) -> MemoryAlarm {
    let (declare, _) = rig.start_echo(rig.echo_builder(), Echo::default()).await;
    declare.stop().await.expect("stop");
    rig.sender.send_many(0..n, Duration::ZERO).await;
    assert!(rig.sender.wait_confirmed(ANSWER_TIMEOUT).await);
    tokio::task::spawn_blocking(MemoryAlarm::raise)
        .await
        .expect("alarm task")
        .expect("raise the memory alarm")
}

/// c. The broker restarts (`stop_app`, `start_app`) while commands stream
/// in: every participant reconnects, and every command is answered.
#[test]
fn c_broker_restart_under_load() {
    serialised(broker_restart());
}

async fn broker_restart() {
    let mut rig = Rig::new(&amqp_url(), "fault-c").await;
    // Durable, so it outlives the restart and catches the log published
    // once the service is back.
    let warnings = unique("fault-c-logs");
    rig.cleanup.add(&warnings);
    rig.side
        .durable_bound_queue(
            &warnings,
            Exchange::Logs.name(),
            &format!("{}.WARNING", rig.echo),
        )
        .await;
    let (echo, states, trace) = rig.start_traced_echo().await;

    let n = 300;
    let restart = async {
        let fault = Instant::now();
        let stopped = tokio::task::spawn_blocking(StoppedApp::stop)
            .await
            .expect("stop_app task")
            .expect("stop_app");
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::spawn_blocking(move || stopped.start())
            .await
            .expect("start_app task")
            .expect("start_app");
        (fault, down.elapsed())
    };
    let gap = Duration::from_millis(10);
    let (fault, down_for) = rig
        .stream_with_fault(n, gap, Work::numbered, 60, restart)
        .await;
    let tally = &rig.collector.tally;
    assert!(rig.sender.wait_confirmed(ANSWER_TIMEOUT).await);
    let all = tally.wait_all(&ids(0..n), ANSWER_TIMEOUT).await;
    let answered = Instant::now();
    tally.settle(QUIET).await;
    let counts = tally.counts(&ids(0..n));
    counts.report_and_check("c (broker restart)");
    assert!(all);
    let outage = states.outage_after(fault);
    outage.report("c (broker restart)");
    println!(
        "FAULT c (broker restart): broker down for {:.2}s (stop_app returned to start_app ready); \
         every command answered {:.2}s after the fault",
        down_for.as_secs_f64(),
        answered.duration_since(fault).as_secs_f64()
    );
    let (acks, violations) = trace.check_ack_after_confirm();
    assert!(acks > 0 && violations.is_empty(), "{violations:?}");
    assert!(echo.health().counters().reconnections >= 1);

    let side = Side::open(&rig.url, &unique("fault-c-side")).await;
    let causes = reconnect_causes(&side, &warnings).await;
    assert!(
        !causes.is_empty(),
        "the reconnection is logged on the bus once it is back"
    );
    println!("FAULT c (broker restart): causes logged on the bus: {causes:?}");
    echo.stop().await.expect("stop echo");
    side.close().await;
    rig.stop().await;
}

/// The broker blocks publishers (memory alarm), so publisher confirms
/// stop: the service treats the connection as stalled and reconnects,
/// without deadlocking, and answers everything once the alarm clears.
#[test]
fn stalled_broker_memory_alarm() {
    serialised(memory_alarm());
}

async fn memory_alarm() {
    let rig = Rig::new(&amqp_url(), "fault-stall").await;
    let warnings = rig.side.logs_of(&rig.echo, "WARNING").await;
    let n = 30;
    let alarm = queue_then_raise_alarm(&rig, n).await;
    let raised = Instant::now();
    let confirm_timeout = Duration::from_secs(2);
    let echo = rig
        .echo_builder()
        .prefetch(5)
        .confirm_timeout(confirm_timeout)
        .connection_timeout(Duration::from_secs(3))
        .start(Echo::default())
        .expect("start echo");
    let health = echo.health();
    let states = StateLog::follow(&health);
    tokio::time::timeout(Duration::from_secs(30), async {
        while health.counters().reconnections < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the stall is detected, and again on the next connection");
    let stalled_states = states.states_after(raised);
    let ready = states
        .first(ServiceState::Ready, raised)
        .expect("was ready");
    let stalled = states
        .first(ServiceState::Reconnecting, ready)
        .expect("left ready");
    println!(
        "FAULT stall (memory alarm): stall noticed {:.2}s after the service was ready (confirm \
         timeout {:.0}s); {} reconnections {:.2}s after the alarm; states {stalled_states:?}",
        stalled.duration_since(ready).as_secs_f64(),
        confirm_timeout.as_secs_f64(),
        health.counters().reconnections,
        raised.elapsed().as_secs_f64()
    );
    let tally = &rig.collector.tally;
    let answered_while_blocked = tally.received();

    // Commands published during the alarm stay unconfirmed; the broker
    // drops them with the sender's connection, so only publishing them
    // again on the next connection gets them through.
    rig.sender.send_many(n..2 * n, Duration::ZERO).await;
    let sender_health = rig.sender.handle().health();
    tokio::time::timeout(Duration::from_secs(10), async {
        while rig.sender.trace().published() < 2 * n as usize {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the commands went out");
    assert_eq!(sender_health.counters().pending_confirms, n);
    assert_eq!(close_connections_of(rig.sender.name()).await, 1);

    tokio::task::spawn_blocking(move || alarm.clear())
        .await
        .expect("clear task")
        .expect("clear the memory alarm");
    let cleared = Instant::now();
    let all = tally.wait_all(&ids(0..2 * n), ANSWER_TIMEOUT).await;
    let answered = Instant::now();
    tally.settle(Duration::from_secs(2)).await;
    let counts = tally.counts(&ids(0..2 * n));
    let republished = rig.sender.trace().republished();
    println!(
        "FAULT stall (memory alarm): the sender published {republished} commands again after \
         its connection was closed during the alarm"
    );
    assert_eq!(republished, n as usize);
    counts.report_and_check("stall (memory alarm)");
    assert!(all);
    assert_eq!(answered_while_blocked, 0, "nothing went through the alarm");
    assert!(
        health
            .wait_for(ServiceState::Ready, Duration::from_secs(30))
            .await,
        "ready once the alarm is gone"
    );
    println!(
        "FAULT stall (memory alarm): every command answered {:.2}s after the alarm cleared; \
         ready at the end: {}",
        answered.duration_since(cleared).as_secs_f64(),
        health.is_ready()
    );
    let causes = reconnect_causes(&rig.side, &warnings).await;
    assert!(
        causes.iter().any(|c| c.contains("blocked or stalled")),
        "the stall is logged on the bus: {causes:?}"
    );
    tokio::time::timeout(Duration::from_secs(30), echo.stop())
        .await
        .expect("stops without deadlock")
        .expect("stop echo");
    rig.stop().await;
}

/// A graceful stop while the broker blocks the service's connection
/// completes (within the stop timeout plus the bounded close), although
/// the broker answers nothing; what the stopped service held is answered
/// by the next instance once the alarm clears.
#[test]
fn stop_during_memory_alarm() {
    serialised(stop_while_blocked());
}

async fn stop_while_blocked() {
    let rig = Rig::new(&amqp_url(), "fault-stop-blocked").await;
    let n = 10;
    let alarm = queue_then_raise_alarm(&rig, n).await;
    let stop_timeout = Duration::from_secs(2);
    let blocked = Echo::default();
    let invocations = blocked.invocations.clone();
    let (echo, _) = rig
        .start_echo(rig.echo_builder().stop_timeout(stop_timeout), blocked)
        .await;
    let health = echo.health();
    tokio::time::timeout(Duration::from_secs(10), async {
        while health.counters().pending_confirms == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a reply waits for its confirm");
    let asked = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), echo.stop())
        .await
        .expect("the stop completes while the broker is blocked")
        .expect("stops without error");
    println!(
        "FAULT stop during alarm: stopped {:.2}s after the request (stop timeout {:.0}s), \
         {} commands started",
        asked.elapsed().as_secs_f64(),
        stop_timeout.as_secs_f64(),
        (0..n).filter(|id| invocations.of(*id) > 0).count()
    );

    tokio::task::spawn_blocking(move || alarm.clear())
        .await
        .expect("clear task")
        .expect("clear the memory alarm");
    let (next, _) = rig.start_echo(rig.echo_builder(), Echo::default()).await;
    let tally = &rig.collector.tally;
    let all = tally.wait_all(&ids(0..n), ANSWER_TIMEOUT).await;
    tally.settle(QUIET).await;
    tally
        .counts(&ids(0..n))
        .report_and_check("stop during alarm");
    assert!(all);
    next.stop().await.expect("stop");
    rig.stop().await;
}
