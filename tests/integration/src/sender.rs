//! Sends numbered commands through a bus service of its own, so that the
//! commands, published outside any delivery, are kept and published again
//! until the broker confirms them, through reconnections.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_service::{Context, Returned, Service, ServiceBuilder, ServiceHandle};

use crate::echo::{Work, work_key};
use crate::trace::Trace;

/// A running sender.
#[derive(Debug)]
pub struct Sender {
    handle: ServiceHandle,
    name: String,
    target: String,
    reply_to: String,
    returned: Arc<Mutex<Vec<String>>>,
    sent: Mutex<BTreeSet<u64>>,
    trace: Trace,
}

struct Quiet(Arc<Mutex<Vec<String>>>);

impl Service for Quiet {
    async fn handle_returned(&self, _ctx: Context, returned: Returned) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(returned.correlation_id().unwrap_or_default().to_owned());
    }
}

impl Sender {
    /// A sender named `name` of commands to the echo service `target`,
    /// whose results go to `reply_to`.
    pub async fn start(url: &str, name: &str, target: &str, reply_to: &str) -> Sender {
        let returned = Arc::new(Mutex::new(Vec::new()));
        let trace = Trace::default();
        let handle = trace
            .attach(ServiceBuilder::new(name).url(url))
            .start(Quiet(Arc::clone(&returned)))
            .expect("start the sender");
        crate::states::wait_ready(&handle.health(), "sender").await;
        Sender {
            handle,
            name: name.to_owned(),
            target: target.to_owned(),
            reply_to: reply_to.to_owned(),
            returned,
            sent: Mutex::default(),
            trace,
        }
    }

    /// The sender's service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sender's runtime trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The sender's service handle (its health, its connection).
    pub fn handle(&self) -> &ServiceHandle {
        &self.handle
    }

    /// Sends `work`. Returns once it is queued for the broker, not
    /// confirmed: see [`Sender::wait_confirmed`].
    pub async fn send(&self, work: Work) {
        let id = work.id;
        self.handle
            .context()
            .send_command(
                &work_key(&self.target),
                &work,
                &format!("conversation-{id}"),
                &self.reply_to,
                &id.to_string(),
            )
            .await
            .expect("queue a command");
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }

    /// The numbers of the commands sent so far.
    pub fn sent(&self) -> BTreeSet<u64> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends commands `ids`, each `gap` apart.
    pub async fn send_many(&self, ids: std::ops::Range<u64>, gap: Duration) {
        self.send_each(ids, gap, Work::numbered).await;
    }

    /// Sends `work(id)` for each of `ids`, `gap` apart.
    pub async fn send_each(
        &self,
        ids: std::ops::Range<u64>,
        gap: Duration,
        work: impl Fn(u64) -> Work,
    ) {
        for id in ids {
            self.send(work(id)).await;
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
    }

    /// Waits until the broker confirmed every command sent.
    pub async fn wait_confirmed(&self, timeout: Duration) -> bool {
        let health = self.handle.health();
        tokio::time::timeout(timeout, async {
            while health.counters().pending_confirms > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    }

    /// The correlation ids of commands the broker returned as unroutable.
    pub fn returned(&self) -> Vec<String> {
        self.returned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the sender.
    pub async fn stop(self) {
        let _ = self.handle.stop().await;
    }
}
