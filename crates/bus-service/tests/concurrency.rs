//! Behaviour 9, concurrency: with `.concurrency(N)` up to N handlers run
//! at once, and each delivery is still acked only after the confirms of
//! what its handler published; with the default of 1, deliveries are
//! handled one at a time, in order, as in eventail.

mod probe;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_service::{Context, HandlerError, Router, ServiceBuilder, TraceEvent};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde::{Deserialize, Serialize};

use probe::trace::{recording, replay, snapshot, wait_for_trace};
use probe::{builder, start, stop};

#[derive(Serialize, Deserialize)]
struct Job {
    n: u32,
}

/// How many handlers run now, and the most that ever ran at once.
#[derive(Default)]
struct Overlap {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Overlap {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// A service whose handler takes `work`, records the job number, and
/// publishes one event while handling it.
fn worker(
    key: &str,
    work: Duration,
    overlap: &Arc<Overlap>,
    order: &Arc<Mutex<Vec<u32>>>,
) -> Router {
    let (overlap, order) = (Arc::clone(overlap), Arc::clone(order));
    let done = format!("{key}.done");
    Router::new().event(key, move |ctx: Context, job: Job| {
        let (overlap, order, done) = (Arc::clone(&overlap), Arc::clone(&order), done.clone());
        async move {
            overlap.enter();
            order.lock().unwrap().push(job.n);
            tokio::time::sleep(work).await;
            let published = ctx
                .publish_event(&done, &Job { n: job.n }, ctx.conversation_id())
                .await;
            overlap.leave();
            published?;
            Ok::<(), HandlerError>(())
        }
    })
}

/// Runs `jobs` jobs through a service built by `builder` and returns the
/// most handlers that overlapped and the order they started in.
async fn run(builder: ServiceBuilder, jobs: u32, work: Duration) -> (usize, Vec<u32>) {
    let url = amqp_url();
    let name = builder.name().to_owned();
    let _cleanup = QueueCleanup::new(&url, [format!("{name}.events")]);
    let key = format!("{name}.job");
    let (overlap, order) = (Arc::new(Overlap::default()), Arc::default());
    let (trace, observer) = recording();
    let service = worker(&key, work, &overlap, &order);
    let handle = start(builder.observe(observer), service).await;

    let publisher = handle.publisher();
    for n in 0..jobs {
        publisher
            .publish_event(&key, &Job { n }, "jobs")
            .await
            .expect("publish");
    }
    // The replay fails on any ack sent before the confirms it depends on.
    wait_for_trace(&trace, "every job acked", |t| {
        replay(t).acked.len() == jobs as usize
    })
    .await;
    stop(handle).await;

    let trace = snapshot(&trace);
    let acked: Vec<u64> = replay(&trace).acked.iter().map(|(_, tag)| *tag).collect();
    assert_eq!(
        acked,
        (1..=u64::from(jobs)).collect::<Vec<_>>(),
        "every delivery acked once"
    );
    let outputs = trace
        .iter()
        .filter(|e| matches!(e, TraceEvent::HandlerFinished { outputs, .. } if outputs.len() == 1));
    assert_eq!(
        outputs.count(),
        jobs as usize,
        "each handler published once"
    );
    let order = order.lock().unwrap().clone();
    (overlap.most(), order)
}

#[tokio::test]
async fn with_concurrency_n_up_to_n_handlers_overlap_and_acks_still_follow_confirms() {
    const N: usize = 4;
    let builder = builder(&unique("concurrent"))
        .concurrency(N)
        .prefetch(2 * N as u16);
    let (most, order) = run(builder, 16, Duration::from_millis(100)).await;
    assert!(most > 1, "handlers overlap: at most {most} at once");
    assert!(most <= N, "never more than {N} at once: {most}");
    let mut handled = order.clone();
    handled.sort_unstable();
    assert_eq!(
        handled,
        (0..16).collect::<Vec<_>>(),
        "each job handled once"
    );
}

#[tokio::test]
async fn by_default_deliveries_are_handled_one_at_a_time_in_order() {
    // A prefetch above 1 lets the broker send ahead, so only the runtime
    // keeps handlers from overlapping.
    let builder = builder(&unique("sequential")).prefetch(10);
    let (most, order) = run(builder, 20, Duration::from_millis(10)).await;
    assert_eq!(most, 1, "handlers never overlap");
    assert_eq!(order, (0..20).collect::<Vec<_>>(), "handled in order");
}
