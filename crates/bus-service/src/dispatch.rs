//! delivery → classify → decode check → the right handler → outcome.
//!
//! The failure policy (eventail's) lives here too: what a rejected
//! delivery, a failed handler or a panic turns into.

use std::sync::{Arc, Mutex};

use amqprs::channel::ConsumerMessage;
use bus_core::{
    CONVERSATION_ID_HEADER, DeliveryInfo, Envelope, InvalidDelivery, LogLevel, MessageKind, Value,
};
use serde::de::IgnoredAny;

use crate::context::{Context, DeliveryScope, Shared};
use crate::ledger::Finished;
use crate::properties::from_amqp;
use crate::{HandlerError, Message, Outcome, Service};

/// A delivery the protocol refuses: it goes to the dead-letter exchange.
pub(crate) struct Rejection {
    pub(crate) tag: u64,
    pub(crate) log: String,
    pub(crate) conversation_id: String,
}

/// Reads a consumer message into a [`Message`], or rejects it with the log
/// line eventail writes for the same case.
pub(crate) fn prepare(delivery: ConsumerMessage) -> Option<Result<Message, Rejection>> {
    let deliver = delivery.deliver?;
    let properties = delivery
        .basic_properties
        .as_ref()
        .map(from_amqp)
        .unwrap_or_default();
    let body = delivery.content.unwrap_or_default();
    let info = DeliveryInfo {
        exchange: deliver.exchange(),
        routing_key: deliver.routing_key(),
        delivery_tag: deliver.delivery_tag(),
        redelivered: deliver.redelivered(),
    };
    let reject = |log: String, conversation_id: String| Rejection {
        tag: info.delivery_tag,
        log,
        conversation_id,
    };
    let (envelope, meta) = match Envelope::from_delivery(info, &properties) {
        Ok(split) => split,
        Err(invalid) => {
            let log = match &invalid {
                InvalidDelivery::MissingConversationId { routing_key } => {
                    format!("Missing headers on {routing_key}")
                }
                other => format!("{other}; dead lettering."),
            };
            // Like eventail, log it in its conversation when it has one.
            let conversation_id = properties
                .headers
                .get(CONVERSATION_ID_HEADER)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Some(Err(reject(log, conversation_id)));
        }
    };
    let message = Message::new(envelope, meta, body);
    // Checking well-formedness costs one parse without allocation, and
    // makes "undecodable → dead letter" hold whatever the handler does.
    if message
        .codec()
        .decode::<IgnoredAny>(message.body())
        .is_err()
    {
        let log = format!(
            "Unable to decode payload for {}; dead lettering.",
            message.routing_key()
        );
        return Some(Err(reject(log, message.conversation_id().to_owned())));
    }
    Some(Ok(message))
}

/// What a handler returns to the session.
pub(crate) struct HandlerDone {
    pub(crate) result: Result<Outcome, HandlerError>,
    /// Set by a configuration handler that reports "configured".
    pub(crate) configured: bool,
}

/// Builds the delivery's context and runs the handler for its kind.
pub(crate) fn handler_task<S: Service>(
    service: Arc<S>,
    shared: Arc<Shared>,
    session: u64,
    message: Message,
) -> (
    Arc<DeliveryScope>,
    impl Future<Output = HandlerDone> + Send + 'static,
) {
    let scope = Arc::new(DeliveryScope {
        session,
        kind: message.kind(),
        conversation_id: message.conversation_id().to_owned(),
        correlation_id: message.correlation_id().map(str::to_owned),
        reply_to: message.reply_to().map(str::to_owned),
        status: message.status().cloned(),
        meta: Arc::clone(&message.meta),
        outputs: Mutex::new(Some(Vec::new())),
    });
    let ctx = Context {
        shared,
        delivery: Some(Arc::clone(&scope)),
    };
    let task = async move {
        let mut configured = false;
        let result = match message.kind() {
            MessageKind::Event | MessageKind::Log => service.handle_event(ctx, message).await,
            MessageKind::Command => service.handle_command(ctx, message).await,
            MessageKind::Result => service.handle_result(ctx, message).await,
            MessageKind::Configuration => match service.handle_config(ctx, message).await {
                Ok(done) => {
                    configured = done;
                    Ok(Outcome::Done)
                }
                Err(e) => Err(e),
            },
        };
        HandlerDone { result, configured }
    };
    (scope, task)
}

/// The failure policy: turns a handler's result (or its panic) into what
/// the ledger does with the delivery, logging on the bus as eventail does.
pub(crate) fn settle(
    shared: &Shared,
    scope: &DeliveryScope,
    result: Result<Outcome, HandlerError>,
    unconfirmed: Vec<u64>,
) -> Finished {
    let routing_key = &scope.meta.routing_key;
    let conversation_id = &scope.conversation_id;
    let logger = &shared.logger;
    match result {
        Ok(Outcome::Done) => {
            shared.health.count_handled();
            Finished::Done { unconfirmed }
        }
        Ok(Outcome::Deferred) => {
            shared.health.count_handled();
            Finished::Deferred { unconfirmed }
        }
        Err(HandlerError::InvalidPayload(error)) => {
            shared.health.count_failed();
            shared.health.count_dead_lettered();
            logger.simple(
                LogLevel::Emergency,
                &format!("Unable to decode payload for {routing_key}; dead lettering."),
                &error.to_string(),
                conversation_id,
            );
            Finished::Failed { requeue: false }
        }
        Err(HandlerError::Failed(error)) => retry_once(shared, scope, &error_chain(&*error)),
    }
}

/// A panicking handler is treated like a failing one.
pub(crate) fn settle_panic(shared: &Shared, scope: &DeliveryScope, panic: &str) -> Finished {
    retry_once(shared, scope, &format!("panic: {panic}"))
}

fn retry_once(shared: &Shared, scope: &DeliveryScope, error: &str) -> Finished {
    let routing_key = &scope.meta.routing_key;
    let conversation_id = &scope.conversation_id;
    shared.health.count_failed();
    shared.logger.simple(
        LogLevel::Alert,
        &format!("Unhandled error while processing message {routing_key}"),
        error,
        conversation_id,
    );
    if scope.meta.redelivered {
        shared.health.count_dead_lettered();
        shared.logger.simple(
            LogLevel::Emergency,
            &format!("Giving up on {routing_key}"),
            error,
            conversation_id,
        );
        Finished::Failed { requeue: false }
    } else {
        Finished::Failed { requeue: true }
    }
}

/// Logs a rejected delivery; the caller nacks it without requeue.
pub(crate) fn log_rejection(shared: &Shared, rejection: &Rejection) {
    shared.health.count_dead_lettered();
    shared.logger.simple(
        LogLevel::Emergency,
        &rejection.log,
        "",
        &rejection.conversation_id,
    );
}

/// The error and its causes, one per line: the closest thing to the
/// traceback eventail puts in its full message.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str("\ncaused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
