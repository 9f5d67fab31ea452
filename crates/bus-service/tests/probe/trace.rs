//! The runtime's `TraceEvent` record, and its replay.
//!
//! The runtime records, in one task and in order, each confirm it applies
//! and each ack it sends; [`replay`] goes through that record and fails on
//! any ack sent before a confirm it depends on.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_service::TraceEvent;

use super::WAIT;

/// The runtime's trace, in the order it was emitted.
pub(crate) type Trace = Arc<Mutex<Vec<TraceEvent>>>;

/// A trace and the observer, for `ServiceBuilder::observe`, that fills it.
pub(crate) fn recording() -> (Trace, impl Fn(&TraceEvent) + Send + Sync + 'static) {
    let trace: Trace = Arc::default();
    let sink = Arc::clone(&trace);
    (trace, move |event: &TraceEvent| {
        sink.lock().unwrap().push(event.clone());
    })
}

/// The trace so far.
pub(crate) fn snapshot(trace: &Trace) -> Vec<TraceEvent> {
    trace.lock().unwrap().clone()
}

/// What a replay of the trace found; it panics on any violation.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// `(session, delivery tag)` of every acked delivery.
    pub(crate) acked: BTreeSet<(u64, u64)>,
    /// Handlers that finished while an earlier delivery of the same session
    /// still waited for its ack.
    pub(crate) pipelined: usize,
    /// Handlers that finished with outputs the broker had not confirmed yet:
    /// their acks had to wait.
    pub(crate) waited_for_confirms: usize,
    /// Acks with `multiple` set.
    pub(crate) multiple_acks: usize,
}

/// Replays the trace and checks that no delivery was acked before it was
/// handled, nor before every output of its handler was confirmed.
pub(crate) fn replay(trace: &[TraceEvent]) -> Replay {
    let mut out = Replay::default();
    let mut confirmed: HashSet<u64> = HashSet::new();
    // Finished, not yet settled: (session, tag) -> outputs.
    let mut waiting: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    // Per session, the highest tag a `multiple` ack covered.
    let mut acked_up_to: BTreeMap<u64, u64> = BTreeMap::new();
    for (at, event) in trace.iter().enumerate() {
        match event {
            TraceEvent::Confirmed { id } => {
                confirmed.insert(*id);
            }
            TraceEvent::HandlerFinished {
                session,
                delivery_tag,
                outputs,
            } => {
                let key = (*session, *delivery_tag);
                assert!(
                    !out.acked.contains(&key)
                        && acked_up_to.get(session).is_none_or(|up| delivery_tag > up),
                    "event {at}: delivery {key:?} finished after it was acked"
                );
                if waiting.range((*session, 0)..key).next().is_some() {
                    out.pipelined += 1;
                }
                if outputs.iter().any(|id| !confirmed.contains(id)) {
                    out.waited_for_confirms += 1;
                }
                waiting.insert(key, outputs.clone());
            }
            TraceEvent::Acked {
                session,
                delivery_tag,
                multiple,
            } => {
                let key = (*session, *delivery_tag);
                assert!(
                    waiting.contains_key(&key),
                    "event {at}: ack of {key:?}, which no handler finished"
                );
                let covered: Vec<(u64, u64)> = if *multiple {
                    out.multiple_acks += 1;
                    acked_up_to.insert(*session, *delivery_tag);
                    waiting
                        .range((*session, 0)..=key)
                        .map(|(k, _)| *k)
                        .collect()
                } else {
                    vec![key]
                };
                for k in covered {
                    let outputs = waiting.remove(&k).expect("covered");
                    for id in outputs {
                        assert!(
                            confirmed.contains(&id),
                            "event {at}: delivery {k:?} acked before its output {id} was confirmed"
                        );
                    }
                    out.acked.insert(k);
                }
            }
            TraceEvent::Nacked {
                session,
                delivery_tag,
                ..
            } => {
                waiting.remove(&(*session, *delivery_tag));
            }
            _ => {}
        }
    }
    out
}

/// Polls the trace until `done` accepts it.
pub(crate) async fn wait_for_trace(
    trace: &Trace,
    what: &str,
    done: impl Fn(&[TraceEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        if done(&snapshot(trace)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not seen within {:?}",
            WAIT * 2
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The acks in the trace, as `(delivery tag, multiple)`.
pub(crate) fn acks(trace: &[TraceEvent]) -> Vec<(u64, bool)> {
    trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Acked {
                delivery_tag,
                multiple,
                ..
            } => Some((*delivery_tag, *multiple)),
            _ => None,
        })
        .collect()
}

/// The nacks in the trace, as `(delivery tag, requeue)`.
pub(crate) fn nacks(trace: &[TraceEvent]) -> Vec<(u64, bool)> {
    trace
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Nacked {
                delivery_tag,
                requeue,
                ..
            } => Some((*delivery_tag, *requeue)),
            _ => None,
        })
        .collect()
}
