//! A handle to publish from any tokio code, with confirms and retries:
//! the use case of eventail's `sync_publisher`.

use std::sync::Arc;

use bus_core::{LogLevel, OutgoingMessage};
use serde::Serialize;

use crate::builder::{OwnedService, ServiceHandle};
use crate::error::{LogError, PublishError, RunError};
use crate::{Context, Health, Service};

/// The service behind a standalone publisher: no queues, no handlers.
pub(crate) struct NoHandlers;

impl Service for NoHandlers {}

/// Publishes events, configurations and logs from anywhere: a web handler,
/// a batch job. Every publish waits for the broker's confirm; a nacked
/// message is published again after the retry delay, and a lost connection
/// is reopened, so a publish that returns `Ok` is on the broker.
///
/// Cheap to clone. Dropping a publish future does not cancel the publish
/// once the message is queued: it stays queued until the broker confirms
/// it. Dropped while it waits for room in a full queue, it publishes nothing.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use bus_service::ServiceBuilder;
///
/// let publisher = ServiceBuilder::new("billing").start_publisher()?;
/// publisher.publish_event("invoice.paid", &serde_json::json!({"id": 7}), "conv-1").await?;
/// publisher.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Publisher {
    ctx: Context,
    owned: Option<Arc<OwnedService>>,
}

impl Publisher {
    pub(crate) fn owning(handle: ServiceHandle) -> Publisher {
        Publisher {
            ctx: handle.context(),
            owned: Some(Arc::new(OwnedService::new(Some(handle)))),
        }
    }

    pub(crate) fn sharing(ctx: Context) -> Publisher {
        Publisher { ctx, owned: None }
    }

    /// The state of the connection behind the publisher.
    pub fn health(&self) -> &Health {
        self.ctx.health()
    }

    /// Publishes a prepared message and waits for its confirm.
    pub async fn publish(&self, message: OutgoingMessage) -> Result<(), PublishError> {
        self.ctx.publish_confirmed(message).await
    }

    /// Publishes an event and waits for its confirm.
    pub async fn publish_event<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        conversation_id: &str,
    ) -> Result<(), PublishError> {
        self.publish(self.ctx.event_message(event, payload, conversation_id)?)
            .await
    }

    /// Publishes a configuration and waits for its confirm.
    pub async fn publish_configuration<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<(), PublishError> {
        self.publish(self.ctx.configuration_message(name, payload)?)
            .await
    }

    /// Logs on the bus (not confirmed, as eventail's logs).
    pub fn log<K: AsRef<str>>(
        &self,
        level: LogLevel,
        short: &str,
        full: &str,
        conversation_id: &str,
        additional_fields: impl IntoIterator<Item = (K, serde_json::Value)>,
    ) -> Result<(), LogError> {
        self.ctx
            .log(level, short, full, conversation_id, additional_fields)
    }

    /// Stops the publisher's connection after every message is confirmed
    /// (within the stop timeout). Dropping the last clone without `close`
    /// starts the same stop in the background. A publisher obtained from a
    /// running service does not stop that service.
    pub async fn close(&self) -> Result<(), RunError> {
        match &self.owned {
            Some(owned) => owned.stop().await,
            None => Ok(()),
        }
    }
}
