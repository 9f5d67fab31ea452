//! Process events in batches, acknowledged together (eventail's `Batch`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bus_core::LogLevel;
use tokio::sync::Mutex;

use crate::context::DeliveryRef;
use crate::timers::TimerId;
use crate::{Context, HandlerError, HandlerResult, Outcome};

type Callback<T> = Arc<
    dyn Fn(Context, Vec<T>) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>
        + Send
        + Sync,
>;

struct State<T> {
    /// Each item with the delivery it came from, if any.
    entries: Vec<(T, Option<DeliveryRef>)>,
    timer: Option<TimerId>,
}

/// Accumulates items up to `max_entries` or for at most `timeout` after
/// the first, then hands them to one callback. The deliveries are then
/// acked with one `multiple` ack, as eventail's `Batch`. If the callback
/// fails, each delivery is requeued once, then dead-lettered. Items whose
/// connection was lost before the flush are left out: the broker delivers
/// them again.
///
/// Push from a handler, which returns [`Outcome::Deferred`]:
///
/// ```no_run
/// use std::time::Duration;
/// use bus_service::{Batch, Context, HandlerError, Router};
///
/// let batch = Batch::new(100, Duration::from_secs(5), |_ctx: Context, items: Vec<serde_json::Value>| async move {
///     println!("{} items", items.len());
///     Ok::<(), HandlerError>(())
/// });
/// let router = Router::new().event("metrics.#", move |ctx: Context, item: serde_json::Value| {
///     let batch = batch.clone();
///     async move { batch.push(&ctx, item).await }
/// });
/// ```
///
/// Like eventail's, it uses `multiple` acks: do not defer other deliveries
/// of the same service by hand while a batch is pending.
pub struct Batch<T> {
    max_entries: usize,
    timeout: Duration,
    callback: Callback<T>,
    state: Arc<Mutex<State<T>>>,
}

impl<T> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch {
            max_entries: self.max_entries,
            timeout: self.timeout,
            callback: Arc::clone(&self.callback),
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> std::fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("max_entries", &self.max_entries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<T: Send + 'static> Batch<T> {
    /// A batch of at most `max_entries`, flushed `timeout` after its first item.
    pub fn new<F, Fut>(max_entries: usize, timeout: Duration, callback: F) -> Batch<T>
    where
        F: Fn(Context, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Batch {
            max_entries: max_entries.max(1),
            timeout,
            callback: Arc::new(move |ctx, items| Box::pin(callback(ctx, items))),
            state: Arc::new(Mutex::new(State {
                entries: Vec::new(),
                timer: None,
            })),
        }
    }

    /// Adds the item of the delivery being handled. Returns
    /// [`Outcome::Deferred`], what the handler should return.
    pub async fn push(&self, ctx: &Context, item: T) -> HandlerResult {
        let mut state = self.state.lock().await;
        if state.entries.is_empty() {
            let batch = self.clone();
            state.timer = Some(ctx.call_later(self.timeout, move |ctx| async move {
                batch.flush(&ctx, true).await;
            }));
        }
        state.entries.push((item, ctx.delivery()));
        let full = state.entries.len() >= self.max_entries;
        drop(state);
        if full {
            self.flush(ctx, false).await;
        }
        Ok(Outcome::Deferred)
    }

    /// Processes the pending items now.
    pub async fn expire(&self, ctx: &Context) {
        self.flush(ctx, false).await;
    }

    async fn flush(&self, ctx: &Context, from_timer: bool) {
        let entries = {
            let mut state = self.state.lock().await;
            if let Some(timer) = state.timer.take() {
                if !from_timer {
                    ctx.cancel_timer(timer);
                }
            }
            std::mem::take(&mut state.entries)
        };
        // Items of a lost connection go back to their queue and come again:
        // processing them now would process them twice.
        let (items, deliveries): (Vec<T>, Vec<Option<DeliveryRef>>) = entries
            .into_iter()
            .filter(|(_, d)| d.as_ref().is_none_or(|d| ctx.is_current(d)))
            .unzip();
        let deliveries: Vec<DeliveryRef> = deliveries.into_iter().flatten().collect();
        if items.is_empty() {
            return;
        }
        match (self.callback)(ctx.clone(), items).await {
            // Its own deliveries only: with `concurrency` above 1, a `multiple`
            // ack would also cover an earlier delivery still being handled,
            // which may go to the next batch. The session still sends one
            // `multiple` ack when the batch's deliveries are contiguous.
            Ok(()) => ctx.ack_each(&deliveries),
            Err(error) => {
                ctx.logger().simple(
                    LogLevel::Alert,
                    "Unhandled error while processing a batch",
                    &error.to_string(),
                    "",
                );
                for delivery in deliveries {
                    ctx.nack_delivery(delivery, !delivery.redelivered(), false);
                }
            }
        }
    }
}
