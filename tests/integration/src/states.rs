//! Following a service's state over time, to see a fault being noticed
//! and measure how long the service takes to be ready again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus_service::{Health, ServiceState};

/// How long a service may take to become ready in a test.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until the service is ready; panics after [`READY_TIMEOUT`].
pub async fn wait_ready(health: &Health, what: &str) {
    assert!(
        health.wait_for(ServiceState::Ready, READY_TIMEOUT).await,
        "{what} not ready within {READY_TIMEOUT:?}: {health:?}"
    );
}

/// Every state a service went through, with when. Sees each change made
/// while its task runs; changes closer together than a task wake-up could
/// be merged, which a connection's round trips make unlikely.
#[derive(Debug, Clone)]
pub struct StateLog {
    entries: Arc<Mutex<Vec<(Instant, ServiceState)>>>,
}

impl StateLog {
    /// Starts recording the states of `health`.
    pub fn follow(health: &Health) -> StateLog {
        let mut rx = health.subscribe();
        let first = *rx.borrow_and_update();
        let entries = Arc::new(Mutex::new(vec![(Instant::now(), first)]));
        let log = StateLog {
            entries: Arc::clone(&entries),
        };
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let state = *rx.borrow_and_update();
                entries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), state));
            }
        });
        log
    }

    /// The states recorded so far.
    pub fn entries(&self) -> Vec<(Instant, ServiceState)> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After `fault`: when the service first left `Ready` (the fault was
    /// noticed), and when it was `Ready` again after that.
    pub fn outage_after(&self, fault: Instant) -> Outage {
        let entries = self.entries();
        let left = entries
            .iter()
            .find(|(t, s)| *t >= fault && *s != ServiceState::Ready)
            .map(|(t, _)| *t);
        let back = left.and_then(|left| {
            entries
                .iter()
                .find(|(t, s)| *t >= left && *s == ServiceState::Ready)
                .map(|(t, _)| *t)
        });
        Outage { fault, left, back }
    }

    /// When the service first entered `state` after `since`.
    pub fn first(&self, state: ServiceState, since: Instant) -> Option<Instant> {
        self.entries()
            .into_iter()
            .find(|(t, s)| *t >= since && *s == state)
            .map(|(t, _)| t)
    }

    /// The states after `since`, in order.
    pub fn states_after(&self, since: Instant) -> Vec<ServiceState> {
        self.entries()
            .into_iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, s)| s)
            .collect()
    }
}

/// One outage, as seen from the service's state.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// When the fault was injected.
    pub fault: Instant,
    /// When the service left `Ready`.
    pub left: Option<Instant>,
    /// When it was `Ready` again.
    pub back: Option<Instant>,
}

impl Outage {
    /// Time from the fault to the service noticing it.
    pub fn detection(&self) -> Option<Duration> {
        self.left.map(|t| t.saturating_duration_since(self.fault))
    }

    /// Time from the fault to the service being ready again.
    pub fn recovery(&self) -> Option<Duration> {
        self.back.map(|t| t.saturating_duration_since(self.fault))
    }

    /// Time the service was not ready.
    pub fn downtime(&self) -> Option<Duration> {
        Some(self.back?.saturating_duration_since(self.left?))
    }

    /// Prints the times under the test's name.
    pub fn report(&self, test: &str) {
        let secs =
            |d: Option<Duration>| d.map_or("never".into(), |d| format!("{:.2}s", d.as_secs_f64()));
        println!(
            "FAULT {test}: noticed {} and ready again {} after the fault was injected; not ready for {}",
            secs(self.detection()),
            secs(self.recovery()),
            secs(self.downtime())
        );
    }
}
