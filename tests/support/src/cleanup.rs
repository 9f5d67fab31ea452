//! Deleting the queues a test created, even when the test panicked.

use std::time::Duration;

use amqprs::channel::QueueDeleteArguments;
use bus_core::BrokerUrl;

use crate::{BrokerError, connect};

/// Bounds the whole cleanup, so a wedged broker cannot hang a test's drop.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Deletes the named queues on the broker at `url`.
///
/// A queue that does not exist counts as deleted: RabbitMQ answers
/// `queue.delete` on a missing queue with success. Every queue is tried even
/// if one fails; the first error is returned.
pub async fn delete_queues(url: &str, names: &[String]) -> Result<(), BrokerError> {
    let address = url.parse::<BrokerUrl>()?.address();
    let connection = connect(url, "bus-test-support cleanup").await?;
    let mut first_error = None;
    let mut channel = None;
    for name in names {
        if channel.is_none() {
            match connection.open_channel(None).await {
                Ok(c) => channel = Some(c),
                Err(source) => {
                    first_error.get_or_insert(BrokerError::Amqp {
                        what: "opening a channel".into(),
                        address: address.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        let Some(ch) = &channel else { break };
        if let Err(source) = ch.queue_delete(QueueDeleteArguments::new(name)).await {
            first_error.get_or_insert(BrokerError::Amqp {
                what: format!("deleting queue {name:?}"),
                address: address.clone(),
                source,
            });
            // A refused delete closes the channel: the next queue needs a new one.
            channel = None;
        }
    }
    if let Some(ch) = channel {
        let _ = ch.close().await;
    }
    let _ = connection.close().await;
    first_error.map_or(Ok(()), Err)
}

/// Deletes the named queues when dropped, so a failing test still cleans up.
///
/// The deletion runs on a fresh thread with its own Tokio runtime: the drop
/// may happen during a panic, or inside the test's own runtime, where
/// blocking on another future is not allowed. Failures are reported on
/// stderr, not raised, since a panic in a drop during a panic aborts.
#[derive(Debug)]
pub struct QueueCleanup {
    url: String,
    names: Vec<String>,
}

impl QueueCleanup {
    /// A guard that will delete `names` on the broker at `url`.
    pub fn new<I, S>(url: &str, names: I) -> QueueCleanup
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        QueueCleanup {
            url: url.to_owned(),
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Adds a queue to delete.
    pub fn add(&mut self, name: impl Into<String>) {
        self.names.push(name.into());
    }

    /// The queues it will delete.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let url = std::mem::take(&mut self.url);
        let names = std::mem::take(&mut self.names);
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            runtime.block_on(async {
                match tokio::time::timeout(CLEANUP_TIMEOUT, delete_queues(&url, &names)).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {CLEANUP_TIMEOUT:?}")),
                }
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => eprintln!("warning: queue cleanup failed: {message}"),
            Err(_) => eprintln!("warning: queue cleanup panicked"),
        }
    }
}
