//! Small Rust services built with bus-service for the scenarios.

use std::time::Duration;

use bus_core::{LogLevel, Value};
use bus_service::{
    Context, HandlerResult, Message, Outcome, Service, ServiceBuilder, ServiceHandle, ServiceState,
};
use bus_test_support::QueueCleanup;
use serde_json::json;

/// How long a service may take to consume its queues.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Rust twin of `python/echo_service.py`:
///
/// - `<name>.Echo`: logs INFO `echoing` (the payload as full message;
///   additional fields `client` = 7 and `command`), publishes the event
///   `<name>.Echoed` with the payload, and answers with a success result
///   `{"echo": PAYLOAD, "conversation_id": ID}`;
/// - `<name>.Fail`: answers with an error result `{"reason": "refused"}`.
pub(crate) struct Echo;

impl Service for Echo {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        let conversation_id = msg.conversation_id().to_owned();
        if msg.routing_key().ends_with(".Echo") {
            let payload = msg.value()?;
            ctx.log(
                LogLevel::Info,
                "echoing",
                &payload.to_string(),
                &conversation_id,
                [("client", json!(7)), ("command", json!(msg.routing_key()))],
            )?;
            let event = format!("{}.Echoed", ctx.service_name());
            ctx.publish_event(&event, &payload, &conversation_id)
                .await?;
            let result = Value::map([
                ("echo", payload),
                ("conversation_id", Value::from(conversation_id)),
            ]);
            ctx.reply_success(&result).await?;
        } else {
            ctx.reply_error(&json!({"reason": "refused"})).await?;
        }
        Ok(Outcome::Done)
    }
}

/// Starts [`Echo`] as `name` on the broker at `url`, and waits until it
/// consumes. The guard deletes its queue.
pub(crate) async fn start_echo(name: &str, url: &str) -> (ServiceHandle, QueueCleanup) {
    let cleanup = QueueCleanup::new(url, [bus_core::commands_queue(name)]);
    let builder = ServiceBuilder::new(name)
        .url(url)
        .command_keys([format!("{name}.Echo"), format!("{name}.Fail")]);
    (start(builder, Echo).await, cleanup)
}

/// Starts a service and waits until it consumes its queues.
pub(crate) async fn start<S: Service>(builder: ServiceBuilder, service: S) -> ServiceHandle {
    let name = builder.name().to_owned();
    let handle = builder.start(service).expect("start the service");
    let health = handle.health();
    assert!(
        health.wait_for(ServiceState::Ready, READY_TIMEOUT).await,
        "Rust service {name} not ready within {READY_TIMEOUT:?} (state: {}, last error: {:?})",
        health.state(),
        health.last_error()
    );
    handle
}

/// Stops a service and makes sure it stopped cleanly.
pub(crate) async fn stop(handle: ServiceHandle) {
    tokio::time::timeout(Duration::from_secs(60), handle.stop())
        .await
        .expect("the service stops within 60 s")
        .expect("the service stops cleanly");
}
