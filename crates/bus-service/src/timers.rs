//! Timers tied to the service's lifetime.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

/// Identifies a timer made with [`Context::call_later`](crate::Context::call_later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// The service's pending timers.
#[derive(Clone, Default)]
pub(crate) struct Timers {
    next: Arc<AtomicU64>,
    pending: Arc<Mutex<HashMap<u64, AbortHandle>>>,
}

impl Timers {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn schedule(
        &self,
        delay: Duration,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> TimerId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let timers = self.clone();
        // Hold the lock while spawning, so the task cannot remove its entry
        // before it is inserted.
        let mut pending = self.pending();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            timers.pending().remove(&id);
            work.await;
        });
        pending.insert(id, task.abort_handle());
        TimerId(id)
    }

    pub(crate) fn cancel(&self, id: TimerId) -> bool {
        match self.pending().remove(&id.0) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel_all(&self) {
        for (_, handle) in self.pending().drain() {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test(start_paused = true)]
    async fn timers_fire_and_cancel() {
        let timers = Timers::default();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        timers.schedule(Duration::from_secs(5), async move {
            f.store(true, Ordering::SeqCst)
        });
        let cancelled = Arc::new(AtomicBool::new(false));
        let c = cancelled.clone();
        let id = timers.schedule(Duration::from_secs(5), async move {
            c.store(true, Ordering::SeqCst)
        });
        assert!(timers.cancel(id));
        assert!(!timers.cancel(id));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(fired.load(Ordering::SeqCst));
        assert!(!cancelled.load(Ordering::SeqCst));
        assert!(timers.pending().is_empty());
    }
}
