//! Behaviour 8, the batch helper: events accumulate up to N items or T
//! seconds, then one callback gets them all; the deliveries are acked with
//! one `multiple` ack, and a failed batch is requeued once, then
//! dead-lettered. Nothing is left unacked in the queue.

mod probe;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus_service::{Batch, Context, HandlerError, Router, ServiceHandle};
use bus_test_support::{Policy, QueueCleanup, amqp_url, unique};
use serde::{Deserialize, Serialize};

use probe::trace::{Trace, acks, nacks, recording, snapshot, wait_for_trace};
use probe::{Probe, builder, start, stop, wait_until_empty};

/// Long enough for a full batch to be published before it expires, even on
/// a busy machine.
const BATCH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    n: u32,
}

/// When each item was pushed, and each batch the callback got.
#[derive(Default)]
struct Seen {
    pushed: Vec<(u32, Instant)>,
    batches: Vec<(Instant, Vec<Item>)>,
}

/// A service that batches its events `<name>.item` by `max`, with a
/// callback that records each batch, and fails if `fail` is set.
async fn batching(name: &str, max: usize, fail: bool) -> (ServiceHandle, Arc<Mutex<Seen>>, Trace) {
    batching_with(name, max, BATCH_TIMEOUT, fail).await
}

async fn batching_with(
    name: &str,
    max: usize,
    timeout: Duration,
    fail: bool,
) -> (ServiceHandle, Arc<Mutex<Seen>>, Trace) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = Arc::clone(&seen);
    let batch = Batch::new(max, timeout, move |_ctx: Context, items: Vec<Item>| {
        recorded
            .lock()
            .unwrap()
            .batches
            .push((Instant::now(), items));
        async move {
            if fail {
                return Err(HandlerError::msg("the batch fails"));
            }
            Ok(())
        }
    });
    let pushed = Arc::clone(&seen);
    let router = Router::new().event(&format!("{name}.item"), move |ctx: Context, item: Item| {
        let (batch, pushed) = (batch.clone(), Arc::clone(&pushed));
        async move {
            pushed.lock().unwrap().pushed.push((item.n, Instant::now()));
            batch.push(&ctx, item).await
        }
    });
    let (trace, observer) = recording();
    // Deferred deliveries count against the prefetch: it must let a full
    // batch in.
    let builder = builder(name).prefetch(10).observe(observer);
    (start(builder, router).await, seen, trace)
}

/// Publishes items 0 to `count` - 1, in order.
async fn publish(handle: &ServiceHandle, key: &str, count: u32) {
    let publisher = handle.publisher();
    for n in 0..count {
        publisher
            .publish_event(key, &Item { n }, "batch")
            .await
            .expect("publish");
    }
}

#[tokio::test]
async fn items_are_processed_by_n_or_after_t_and_acked_with_one_multiple_ack() {
    let url = amqp_url();
    let name = unique("batch");
    let queue = format!("{name}.events");
    let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
    let key = format!("{name}.item");
    let (handle, seen, trace) = batching(&name, 5, false).await;
    publish(&handle, &key, 12).await;
    wait_for_trace(&trace, "the last delivery acked", |t| {
        acks(t).iter().any(|(tag, _)| *tag == 12)
    })
    .await;
    let trace = snapshot(&trace);

    {
        let seen = seen.lock().unwrap();
        let sizes: Vec<_> = seen.batches.iter().map(|(_, items)| items.len()).collect();
        assert_eq!(sizes, [5, 5, 2], "two full batches, then what T let in");
        let items: Vec<u32> = seen
            .batches
            .iter()
            .flat_map(|(_, b)| b)
            .map(|i| i.n)
            .collect();
        assert_eq!(
            items,
            (0..12).collect::<Vec<_>>(),
            "every item once, in order"
        );
        let (_, first_of_last) = seen.pushed[10];
        let (flushed, _) = seen.batches[2];
        assert!(
            flushed.duration_since(first_of_last) >= BATCH_TIMEOUT,
            "an incomplete batch waits T after its first item"
        );
    }
    assert_eq!(
        acks(&trace),
        [(5, true), (10, true), (12, true)],
        "one multiple ack per batch, none before"
    );
    assert!(nacks(&trace).is_empty());

    // Nothing unacked while it runs, and nothing requeued when it stops.
    wait_until_empty(&queue).await;
    stop(handle).await;
    wait_until_empty(&queue).await;
}

#[tokio::test]
async fn a_failed_batch_is_requeued_once_then_dead_lettered() {
    let url = amqp_url();
    let name = unique("batch-fail");
    let queue = format!("{name}.events");
    let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
    let probe = Probe::open().await;
    let dlx = unique("dlx");
    probe.declare_exchange(&dlx, "topic").await;
    let mut dead_letters = probe.listen(&dlx, &["#"]).await;
    let _policy = Policy::set(
        &format!("^{name}\\.events$"),
        &format!(r#"{{"dead-letter-exchange":"{dlx}"}}"#),
        "queues",
    )
    .expect("policy");
    let key = format!("{name}.item");
    let (handle, seen, trace) = batching(&name, 3, true).await;
    publish(&handle, &key, 3).await;
    let mut dead_ns = Vec::new();
    for _ in 0..3 {
        let dead = dead_letters.next("a dead letter").await;
        assert_eq!(dead.routing_key, key);
        dead_ns.push(dead.payload::<Item>().n);
    }
    dead_ns.sort_unstable();
    assert_eq!(dead_ns, [0, 1, 2], "every item of the batch dead-lettered");

    let batches: Vec<usize> = seen
        .lock()
        .unwrap()
        .batches
        .iter()
        .map(|(_, items)| items.len())
        .collect();
    assert_eq!(batches, [3, 3], "tried once, then once more on redelivery");
    let trace = snapshot(&trace);
    let requeued: Vec<bool> = nacks(&trace).iter().map(|(_, requeue)| *requeue).collect();
    assert_eq!(requeued, [true, true, true, false, false, false]);
    assert!(acks(&trace).is_empty(), "a failed batch is never acked");
    assert_eq!(handle.health().counters().dead_lettered, 3);

    stop(handle).await;
    wait_until_empty(&queue).await;
    let more = dead_letters.drain_for(Duration::from_millis(300)).await;
    assert!(more.is_empty(), "no further dead letters: {more:?}");
    probe.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn items_of_a_lost_connection_are_left_out_of_the_batch() {
    let url = amqp_url();
    let name = unique("batch-lost");
    let queue = format!("{name}.events");
    let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
    let key = format!("{name}.item");
    let (handle, seen, _trace) = batching_with(&name, 4, Duration::from_secs(6), false).await;
    publish(&handle, &key, 3).await;
    probe::wait_until(
        || seen.lock().unwrap().pushed.len() == 3,
        "three items pushed",
    )
    .await;

    // The three deliveries go back to the queue with the connection, and
    // come again on the next one: the batch must not process them twice.
    let connections = bus_test_support::rabbitmqctl::list_connections_with_names().expect("list");
    let (pid, _) = connections
        .iter()
        .find(|(_, n)| n.starts_with(&format!("{name}@")))
        .expect("the service's connection");
    bus_test_support::rabbitmqctl::close_connection(pid, "test").expect("close");
    probe::wait_until(
        || {
            let seen = seen.lock().unwrap();
            seen.batches.iter().map(|(_, b)| b.len()).sum::<usize>() >= 3
        },
        "every item processed",
    )
    .await;
    wait_until_empty(&queue).await;
    let mut processed: Vec<u32> = seen
        .lock()
        .unwrap()
        .batches
        .iter()
        .flat_map(|(_, b)| b.iter().map(|i| i.n))
        .collect();
    processed.sort_unstable();
    assert_eq!(processed, [0, 1, 2], "each item processed once");
    assert!(handle.health().counters().reconnections >= 1);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_ack_leaves_out_an_earlier_delivery_still_handled() {
    // concurrency(2): `b` (tag 1) is still handled when batch A, flushed by
    // `a` (tag 2), is acked; `b` then goes to batch B, which fails. Its
    // delivery must be requeued, not acked along with batch A.
    let url = amqp_url();
    let name = unique("batch-concurrent");
    let queue = format!("{name}.events");
    let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
    let batch_a = Batch::new(1, BATCH_TIMEOUT, |_ctx: Context, _items: Vec<Item>| async {
        Ok::<(), HandlerError>(())
    });
    let b_failed = Arc::new(Mutex::new(false));
    let failed = Arc::clone(&b_failed);
    // Flushed by its timer, after the handler of `b` returned.
    let timeout = Duration::from_millis(300);
    let batch_b = Batch::new(10, timeout, move |_ctx: Context, _items: Vec<Item>| {
        *failed.lock().unwrap() = true;
        async { Err(HandlerError::msg("batch B fails")) }
    });
    let router = Router::new()
        .event(&format!("{name}.a"), move |ctx: Context, item: Item| {
            let batch = batch_a.clone();
            async move { batch.push(&ctx, item).await }
        })
        .event(&format!("{name}.b"), move |ctx: Context, item: Item| {
            let batch = batch_b.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                batch.push(&ctx, item).await
            }
        });
    let (trace, observer) = recording();
    let builder = builder(&name).prefetch(10).concurrency(2).observe(observer);
    let handle = start(builder, router).await;
    publish(&handle, &format!("{name}.b"), 1).await;
    publish(&handle, &format!("{name}.a"), 1).await;
    wait_for_trace(&trace, "the first delivery settled", |t| {
        acks(t).iter().any(|(tag, _)| *tag == 1) || nacks(t).iter().any(|(tag, _)| *tag == 1)
    })
    .await;
    probe::wait_until(|| *b_failed.lock().unwrap(), "batch B ran").await;
    let trace = snapshot(&trace);
    assert_eq!(
        acks(&trace),
        [(2, false)],
        "batch A acks its own delivery only"
    );
    assert_eq!(nacks(&trace)[0], (1, true), "batch B failed: requeued");
    stop(handle).await;
}
