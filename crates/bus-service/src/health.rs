//! What the runtime is doing, and counters, for health and readiness checks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::ConnectError;
use crate::outbox::Outbox;

/// The life cycle of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// Opening the first connection.
    Connecting,
    /// Connected, consuming the configuration queue only, waiting to be configured.
    Configuring,
    /// Every consumer is subscribed.
    Ready,
    /// The connection or a consumer was lost; getting them back.
    Reconnecting,
    /// Shutting down gracefully.
    Stopping,
    /// Stopped.
    Stopped,
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Connecting => "connecting",
            ServiceState::Configuring => "configuring",
            ServiceState::Ready => "ready",
            ServiceState::Reconnecting => "reconnecting",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
        })
    }
}

/// A snapshot of the runtime's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Deliveries whose handler succeeded.
    pub handled: u64,
    /// Deliveries whose handler failed or panicked.
    pub failed: u64,
    /// Deliveries sent to the dead-letter exchange (nacked without requeue).
    pub dead_lettered: u64,
    /// Connections opened after the first one.
    pub reconnections: u64,
    /// Published messages not yet confirmed by the broker.
    pub pending_confirms: u64,
}

/// The state and counters of a service. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    state: watch::Sender<ServiceState>,
    handled: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    reconnections: AtomicU64,
    last_error: Mutex<Option<ConnectError>>,
    outbox: Arc<Outbox>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("state", &self.state())
            .field("counters", &self.counters())
            .finish()
    }
}

impl Health {
    pub(crate) fn new(outbox: Arc<Outbox>) -> Health {
        Health {
            inner: Arc::new(Inner {
                state: watch::Sender::new(ServiceState::Connecting),
                handled: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                reconnections: AtomicU64::new(0),
                last_error: Mutex::new(None),
                outbox,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServiceState {
        *self.inner.state.borrow()
    }

    /// True only while every consumer of the service is subscribed.
    pub fn is_ready(&self) -> bool {
        self.state() == ServiceState::Ready
    }

    /// A receiver that sees every state change.
    pub fn subscribe(&self) -> watch::Receiver<ServiceState> {
        self.inner.state.subscribe()
    }

    /// Waits until the service is in `state`, or `timeout` passes.
    /// Returns whether it got there.
    pub async fn wait_for(&self, state: ServiceState, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s == state))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let i = &self.inner;
        Counters {
            handled: i.handled.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            dead_lettered: i.dead_lettered.load(Ordering::Relaxed),
            reconnections: i.reconnections.load(Ordering::Relaxed),
            pending_confirms: i.outbox.pending_count() as u64,
        }
    }

    /// The last error met while connecting, if any.
    pub fn last_error(&self) -> Option<ConnectError> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_last_error(&self, error: ConnectError) {
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub(crate) fn set_state(&self, state: ServiceState) {
        self.inner.state.send_replace(state);
    }

    pub(crate) fn count_handled(&self) {
        self.inner.handled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_failed(&self) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dead_lettered(&self) {
        self.inner.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_reconnection(&self) {
        self.inner.reconnections.fetch_add(1, Ordering::Relaxed);
    }
}
