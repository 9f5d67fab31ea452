//! Checking the runtime's trace for the ack-after-confirm rule: no
//! delivery is acked before every message its handler published is
//! confirmed, whatever faults happened in between.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use bus_service::{ServiceBuilder, TraceEvent};

/// The trace of one service. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<TraceEvent>>>);

impl Trace {
    /// Records the trace of the service `builder` builds.
    pub fn attach(&self, builder: ServiceBuilder) -> ServiceBuilder {
        let events = Arc::clone(&self.0);
        builder.observe(move |event| {
            events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event.clone());
        })
    }

    /// How many publishes went out, republishes included.
    pub fn published(&self) -> usize {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Published { .. }))
            .count()
    }

    /// How many messages went out more than once (published again after
    /// a connection was lost before their confirm).
    pub fn republished(&self) -> usize {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut times: BTreeMap<u64, usize> = BTreeMap::new();
        for event in events.iter() {
            if let TraceEvent::Published { id, .. } = event {
                *times.entry(*id).or_default() += 1;
            }
        }
        times.values().filter(|n| **n > 1).count()
    }

    /// The acks sent so far, and the violations of the rule found among
    /// them (empty when the rule held).
    pub fn check_ack_after_confirm(&self) -> (usize, Vec<String>) {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut confirmed = HashSet::new();
        // (session, tag) -> outputs, for finished deliveries not yet settled.
        let mut finished: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
        let mut violations = Vec::new();
        let mut acks = 0;
        for event in events {
            match event {
                TraceEvent::Confirmed { id } => {
                    confirmed.insert(id);
                }
                TraceEvent::HandlerFinished {
                    session,
                    delivery_tag,
                    outputs,
                } => {
                    finished.insert((session, delivery_tag), outputs);
                }
                TraceEvent::Nacked {
                    session,
                    delivery_tag,
                    ..
                } => {
                    finished.remove(&(session, delivery_tag));
                }
                TraceEvent::Acked {
                    session,
                    delivery_tag,
                    multiple,
                } => {
                    acks += 1;
                    let low = if multiple { 0 } else { delivery_tag };
                    let covered: Vec<(u64, u64)> = finished
                        .range((session, low)..=(session, delivery_tag))
                        .map(|(k, _)| *k)
                        .collect();
                    if covered.is_empty() {
                        violations.push(format!(
                            "ack of {session}/{delivery_tag} before its handler finished"
                        ));
                    }
                    for key in covered {
                        let outputs = finished.remove(&key).unwrap_or_default();
                        for id in outputs.iter().filter(|id| !confirmed.contains(id)) {
                            violations.push(format!(
                                "delivery {}/{} acked before output {id} was confirmed",
                                key.0, key.1
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        (acks, violations)
    }
}
