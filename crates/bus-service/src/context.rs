//! What a handler (or a timer, or a hook) can do: publish, reply, log,
//! schedule timers, ack deferred deliveries, stop the service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_core::{Codec, LogLevel, MessageKind, Meta, OutgoingMessage, Status};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::{LogError, PublishError};
use crate::health::Health;
use crate::logs::BusLogger;
use crate::outbox::{Outbox, Owner, PublishId};
use crate::timers::{TimerId, Timers};

/// Requests from handlers to the session that owns their delivery.
#[derive(Debug)]
pub(crate) enum Control {
    Ack {
        session: u64,
        tag: u64,
        multiple: bool,
    },
    Nack {
        session: u64,
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
    /// These deliveries exactly, in one request so that the session can
    /// coalesce them into one `multiple` ack where that is exactly right.
    AckEach { session: u64, tags: Vec<u64> },
}

/// What every context of a service shares.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) codec: Codec,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) logger: BusLogger,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) health: Health,
    pub(crate) timers: Timers,
    /// The number of the session consuming now; 0 between sessions.
    pub(crate) current_session: AtomicU64,
}

/// The delivery a context was made for.
pub(crate) struct DeliveryScope {
    pub(crate) session: u64,
    pub(crate) kind: MessageKind,
    pub(crate) conversation_id: String,
    pub(crate) correlation_id: Option<String>,
    pub(crate) reply_to: Option<String>,
    pub(crate) status: Option<Status>,
    pub(crate) meta: Arc<Meta>,
    /// Ids published while the handler runs; taken (set to `None`) when it
    /// returns, which is when its ack starts waiting for them.
    pub(crate) outputs: Mutex<Option<Vec<PublishId>>>,
}

impl DeliveryScope {
    pub(crate) fn take_outputs(&self) -> Vec<PublishId> {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }
}

/// Identifies a delivery for a later [`Context::ack_delivery`]: its
/// connection and its delivery tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef {
    session: u64,
    tag: u64,
    redelivered: bool,
}

impl DeliveryRef {
    /// The delivery tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Whether the broker had delivered it before.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }
}

/// The handle a handler gets to act on the bus.
///
/// A context made for a delivery ties what it publishes to that delivery:
/// the delivery is acked only once all of it is confirmed by the broker.
/// Contexts given to timers and hooks publish on their own; their messages
/// are kept and published again until confirmed, across reconnections.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(crate) delivery: Option<Arc<DeliveryScope>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("service", &self.shared.name)
            .field("delivery_tag", &self.delivery_tag())
            .finish()
    }
}

impl Context {
    pub(crate) fn for_service(shared: Arc<Shared>) -> Context {
        Context {
            shared,
            delivery: None,
        }
    }

    /// The logical service name.
    pub fn service_name(&self) -> &str {
        &self.shared.name
    }

    /// The codec the service publishes with.
    pub fn codec(&self) -> Codec {
        self.shared.codec
    }

    /// The state and counters of the service.
    pub fn health(&self) -> &Health {
        &self.shared.health
    }

    /// The conversation of the delivery being handled, or `""`.
    pub fn conversation_id(&self) -> &str {
        self.delivery.as_ref().map_or("", |d| &d.conversation_id)
    }

    /// The broker metadata of the delivery being handled.
    pub fn meta(&self) -> Option<&Meta> {
        self.delivery.as_deref().map(|d| &*d.meta)
    }

    /// The routing key of the delivery being handled.
    pub fn routing_key(&self) -> Option<&str> {
        self.meta().map(|m| m.routing_key.as_str())
    }

    /// The delivery tag of the delivery being handled.
    pub fn delivery_tag(&self) -> Option<u64> {
        self.meta().map(|m| m.delivery_tag)
    }

    /// The correlation id of the command or result being handled.
    pub fn correlation_id(&self) -> Option<&str> {
        self.delivery
            .as_ref()
            .and_then(|d| d.correlation_id.as_deref())
    }

    /// The status of the result being handled.
    pub fn status(&self) -> Option<&bus_core::Status> {
        self.delivery.as_ref().and_then(|d| d.status.as_ref())
    }

    /// The `reply_to` of the command being handled.
    pub fn reply_to(&self) -> Option<&str> {
        self.delivery.as_ref().and_then(|d| d.reply_to.as_deref())
    }

    fn encode<T: Serialize + ?Sized>(&self, payload: &T) -> Result<Vec<u8>, PublishError> {
        Ok(self.shared.codec.encode(payload)?)
    }

    /// Publishes a prepared message (for full control over `mandatory` and
    /// properties). Returns once the message is queued for the broker; the
    /// delivery being handled, if any, is acked only after its confirm.
    pub async fn publish(&self, message: OutgoingMessage) -> Result<(), PublishError> {
        let Some(scope) = &self.delivery else {
            self.shared
                .outbox
                .publish(message, Owner::Free { waiter: None })
                .await?;
            return Ok(());
        };
        // Room in the queue first; then, under the outputs lock, the owner
        // is chosen and the id recorded in one step. A task the handler
        // spawned may be publishing while the handler returns: the message
        // is then either among the outputs the ack waits for, or kept until
        // confirmed. Never a delivery's message that no ack waits for, which
        // a reconnection would drop.
        let slot = self.shared.outbox.reserve(message).await?;
        let mut outputs = scope.outputs.lock().unwrap_or_else(|e| e.into_inner());
        match outputs.as_mut() {
            Some(outputs) => {
                let id = slot.send(Owner::Delivery {
                    generation: scope.session,
                })?;
                outputs.push(id);
            }
            // Published after the handler returned (from a task it spawned):
            // no ack waits for it, so it is kept until confirmed instead.
            None => {
                slot.send(Owner::Free { waiter: None })?;
            }
        }
        Ok(())
    }

    /// Publishes a message and waits until the broker confirms it, retrying
    /// nacks and reconnecting as needed.
    pub(crate) async fn publish_confirmed(
        &self,
        message: OutgoingMessage,
    ) -> Result<(), PublishError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .outbox
            .publish(message, Owner::Free { waiter: Some(tx) })
            .await?;
        rx.await.unwrap_or(Err(PublishError::Stopped))
    }

    /// An event encoded with the service's codec.
    pub(crate) fn event_message<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        conversation_id: &str,
    ) -> Result<OutgoingMessage, PublishError> {
        let body = self.encode(payload)?;
        Ok(OutgoingMessage::event(
            event,
            self.codec(),
            body,
            conversation_id,
        )?)
    }

    /// A configuration encoded with the service's codec.
    pub(crate) fn configuration_message<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<OutgoingMessage, PublishError> {
        let body = self.encode(payload)?;
        Ok(OutgoingMessage::configuration(name, self.codec(), body)?)
    }

    /// Publishes an event (eventail's `publish_event`), not mandatory.
    pub async fn publish_event<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        conversation_id: &str,
    ) -> Result<(), PublishError> {
        self.publish(self.event_message(event, payload, conversation_id)?)
            .await
    }

    /// Sends a command (eventail's `send_command`), mandatory: if no queue
    /// is bound for it, the service's returned-message hook gets it back.
    pub async fn send_command<T: Serialize + ?Sized>(
        &self,
        command: &str,
        payload: &T,
        conversation_id: &str,
        reply_to: &str,
        correlation_id: &str,
    ) -> Result<(), PublishError> {
        let body = self.encode(payload)?;
        self.publish(OutgoingMessage::command(
            command,
            self.codec(),
            body,
            conversation_id,
            reply_to,
            correlation_id,
        )?)
        .await
    }

    /// Sends a `success` result to `destination` (a command's `reply_to`).
    pub async fn return_success<T: Serialize + ?Sized>(
        &self,
        destination: &str,
        payload: &T,
        conversation_id: &str,
        correlation_id: &str,
    ) -> Result<(), PublishError> {
        self.return_result(
            Status::Success,
            destination,
            payload,
            conversation_id,
            correlation_id,
        )
        .await
    }

    /// Sends an `error` result to `destination` (a command's `reply_to`).
    pub async fn return_error<T: Serialize + ?Sized>(
        &self,
        destination: &str,
        payload: &T,
        conversation_id: &str,
        correlation_id: &str,
    ) -> Result<(), PublishError> {
        self.return_result(
            Status::Error,
            destination,
            payload,
            conversation_id,
            correlation_id,
        )
        .await
    }

    async fn return_result<T: Serialize + ?Sized>(
        &self,
        status: Status,
        destination: &str,
        payload: &T,
        conversation_id: &str,
        correlation_id: &str,
    ) -> Result<(), PublishError> {
        let body = self.encode(payload)?;
        self.publish(OutgoingMessage::result(
            destination,
            &status,
            self.codec(),
            body,
            conversation_id,
            correlation_id,
        )?)
        .await
    }

    /// Replies `success` to the command being handled: to its `reply_to`,
    /// with its conversation and correlation ids.
    pub async fn reply_success<T: Serialize + ?Sized>(
        &self,
        payload: &T,
    ) -> Result<(), PublishError> {
        self.reply(Status::Success, payload).await
    }

    /// Replies `error` to the command being handled.
    pub async fn reply_error<T: Serialize + ?Sized>(
        &self,
        payload: &T,
    ) -> Result<(), PublishError> {
        self.reply(Status::Error, payload).await
    }

    async fn reply<T: Serialize + ?Sized>(
        &self,
        status: Status,
        payload: &T,
    ) -> Result<(), PublishError> {
        let scope = self
            .delivery
            .as_ref()
            .filter(|d| d.kind == MessageKind::Command)
            .ok_or(PublishError::NotACommand)?;
        let reply_to = scope.reply_to.as_deref().ok_or(PublishError::NotACommand)?;
        let correlation_id = scope.correlation_id.as_deref().unwrap_or_default();
        self.return_result(
            status,
            reply_to,
            payload,
            &scope.conversation_id,
            correlation_id,
        )
        .await
    }

    /// Publishes a configuration (eventail's `publish_configuration`).
    pub async fn publish_configuration<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<(), PublishError> {
        self.publish(self.configuration_message(name, payload)?)
            .await
    }

    /// Logs on the bus (eventail's `log`): a GELF record on `logs` with
    /// routing key `<service>.<LEVEL>`. Additional fields get a `_` prefix;
    /// `id` and `_id` are refused. Never waits for the broker.
    pub fn log<K: AsRef<str>>(
        &self,
        level: LogLevel,
        short: &str,
        full: &str,
        conversation_id: &str,
        additional_fields: impl IntoIterator<Item = (K, serde_json::Value)>,
    ) -> Result<(), LogError> {
        self.shared
            .logger
            .log(level, short, full, conversation_id, additional_fields)
    }

    /// The bus logger, to log from code that has no context.
    pub fn logger(&self) -> &BusLogger {
        &self.shared.logger
    }

    /// Runs `callback` after `delay` (eventail's `call_later`), with a
    /// context of its own. Timers belong to the service: they survive
    /// reconnections and are cancelled when it stops.
    pub fn call_later<F, Fut>(&self, delay: Duration, callback: F) -> TimerId
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let ctx = Context::for_service(Arc::clone(&self.shared));
        self.shared
            .timers
            .schedule(delay, async move { callback(ctx).await })
    }

    /// Cancels a timer (eventail's `cancel_timer`). Returns whether it was
    /// still pending.
    pub fn cancel_timer(&self, timer: TimerId) -> bool {
        self.shared.timers.cancel(timer)
    }

    /// A reference to the delivery being handled, to ack or nack it later
    /// from anywhere (another task, a timer, a batch).
    pub fn delivery(&self) -> Option<DeliveryRef> {
        self.delivery.as_ref().map(|d| DeliveryRef {
            session: d.session,
            tag: d.meta.delivery_tag,
            redelivered: d.meta.redelivered,
        })
    }

    /// Acks the deferred delivery being handled, or one of the same
    /// connection by tag (eventail's `manual_ack`); with `multiple`, every
    /// deferred delivery up to it too. The ack still waits for the confirms
    /// of whatever was published while handling them.
    pub fn ack(&self, delivery_tag: u64, multiple: bool) {
        if let Some(d) = &self.delivery {
            self.ack_delivery(
                DeliveryRef {
                    session: d.session,
                    tag: delivery_tag,
                    redelivered: false,
                },
                multiple,
            );
        }
    }

    /// Nacks a deferred delivery by tag (eventail's `manual_nack`);
    /// `requeue` false sends it to the dead-letter exchange.
    pub fn nack(&self, delivery_tag: u64, requeue: bool, multiple: bool) {
        if let Some(d) = &self.delivery {
            self.nack_delivery(
                DeliveryRef {
                    session: d.session,
                    tag: delivery_tag,
                    redelivered: false,
                },
                requeue,
                multiple,
            );
        }
    }

    /// Whether `delivery` came on the current connection: a delivery of an
    /// earlier one has gone back to its queue and will come again.
    pub fn is_current(&self, delivery: &DeliveryRef) -> bool {
        delivery.session == self.shared.current_session.load(Ordering::Acquire)
    }

    /// Acks a deferred delivery from any context. An ack for a delivery of
    /// an earlier connection is ignored: the broker has already put it back
    /// in its queue.
    pub fn ack_delivery(&self, delivery: DeliveryRef, multiple: bool) {
        let _ = self.shared.control.send(Control::Ack {
            session: delivery.session,
            tag: delivery.tag,
            multiple,
        });
    }

    /// Acks exactly these deferred deliveries (a batch's), and no other
    /// delivery below them: with several handlers at once, an earlier one
    /// may still be handled, and belong to the next batch.
    pub(crate) fn ack_each(&self, deliveries: &[DeliveryRef]) {
        let mut by_session: Vec<(u64, Vec<u64>)> = Vec::new();
        for d in deliveries {
            match by_session.iter_mut().find(|(s, _)| *s == d.session) {
                Some((_, tags)) => tags.push(d.tag),
                None => by_session.push((d.session, vec![d.tag])),
            }
        }
        for (session, tags) in by_session {
            let _ = self.shared.control.send(Control::AckEach { session, tags });
        }
    }

    /// Nacks a deferred delivery from any context.
    pub fn nack_delivery(&self, delivery: DeliveryRef, requeue: bool, multiple: bool) {
        let _ = self.shared.control.send(Control::Nack {
            session: delivery.session,
            tag: delivery.tag,
            multiple,
            requeue,
        });
    }

    /// Stops the service gracefully (eventail's `stop`).
    pub fn stop(&self) {
        self.shared.shutdown.cancel();
    }
}

/// A service's shared state with no broker behind it, for unit tests.
#[cfg(test)]
pub(crate) fn shared_for_tests(outbox: Arc<Outbox>) -> Arc<Shared> {
    let (_, log_channels) = tokio::sync::watch::channel(None);
    let (control, _) = mpsc::unbounded_channel();
    Arc::new(Shared {
        name: "test".to_owned(),
        codec: Codec::Json,
        outbox: Arc::clone(&outbox),
        logger: BusLogger::start("test", log_channels),
        control,
        shutdown: CancellationToken::new(),
        health: Health::new(outbox),
        timers: Timers::default(),
        current_session: AtomicU64::new(1),
    })
}
