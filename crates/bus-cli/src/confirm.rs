//! Publishing one message through bus-service and learning its fate:
//! confirmed, returned (unroutable), or nacked.

use std::time::Duration;

use bus_core::OutgoingMessage;
use bus_service::{
    CallError, Context, PublishError, Returned, RunError, Service, ServiceHandle, ServiceState,
    TraceEvent,
};
use tokio::sync::mpsc;

use crate::broker::{Brokers, CONNECT_TIMEOUT};
use crate::exit::CliError;

/// How long to wait for a `basic.return` once the confirm is in. The broker
/// sends the return before the confirm, so this only covers the hand-over
/// from the runtime's task to ours.
const RETURN_GRACE: Duration = Duration::from_millis(250);

/// What became of a published message.
#[derive(Debug)]
pub(crate) enum Fate {
    /// The broker confirmed it, and routed it (or it was not mandatory).
    Confirmed,
    /// The broker confirmed it but found no queue for it.
    Returned(Box<Returned>),
}

/// A service with no queues that reports returned messages.
struct ReturnWatch(mpsc::UnboundedSender<Returned>);

impl Service for ReturnWatch {
    async fn handle_returned(&self, _ctx: Context, returned: Returned) {
        let _ = self.0.send(returned);
    }
}

/// Waits until the service is connected, or reports why it is not.
pub(crate) async fn ready(handle: &ServiceHandle, urls: usize) -> Result<(), CliError> {
    let health = handle.health();
    let mut states = health.subscribe();
    let wait = CONNECT_TIMEOUT * u32::try_from(urls).unwrap_or(u32::MAX) + Duration::from_secs(2);
    let _ = tokio::time::timeout(
        wait,
        states.wait_for(|s| matches!(s, ServiceState::Ready | ServiceState::Stopped)),
    )
    .await;
    if health.is_ready() {
        return Ok(());
    }
    handle.shutdown();
    Err(match health.last_error() {
        Some(error) => error.into(),
        None => CliError::Broker("no connection to the broker".into()),
    })
}

/// Stops a tool's service, without waiting long: the process is about to exit.
pub(crate) async fn stop(handle: ServiceHandle) {
    let _ = tokio::time::timeout(Duration::from_secs(6), handle.stop()).await;
}

/// A runtime error as a CLI error.
pub(crate) fn run_error(error: RunError) -> CliError {
    match error {
        RunError::Connect(error) => error.into(),
        RunError::Config(text) => CliError::Usage(text),
        other => CliError::Internal(other.to_string()),
    }
}

/// A publish error as a CLI error.
pub(crate) fn publish_error(error: PublishError) -> CliError {
    match error {
        PublishError::Encode(e) => CliError::Encode(e),
        PublishError::TimedOut(t) => {
            CliError::Timeout(format!("no confirmation from the broker within {t:?}"))
        }
        PublishError::Stopped | PublishError::DeliveryLost => {
            CliError::Broker("the connection to the broker was lost".into())
        }
        other => CliError::Usage(other.to_string()),
    }
}

/// A call error (from `send`) as a CLI error.
pub(crate) fn call_error(error: CallError) -> CliError {
    match error {
        CallError::TimedOut { command, timeout } => CliError::Timeout(format!(
            "no result for {command} within {} s",
            timeout.as_secs_f64()
        )),
        CallError::Unroutable { command } => {
            CliError::Unroutable(format!("no service listens to {command}"))
        }
        CallError::Publish(e) => publish_error(e),
        other => CliError::Broker(other.to_string()),
    }
}

/// Publishes `message` as the tool `tool` and waits for the broker's
/// confirm; a nack is an error, a return is reported.
pub(crate) async fn publish(
    brokers: &Brokers,
    tool: &str,
    message: OutgoingMessage,
) -> Result<Fate, CliError> {
    let (nack_tx, mut nacks) = mpsc::unbounded_channel();
    let (return_tx, mut returns) = mpsc::unbounded_channel();
    let handle = brokers
        .builder(tool)
        .observe(move |event| {
            if matches!(event, TraceEvent::BrokerNacked { .. }) {
                let _ = nack_tx.send(());
            }
        })
        .start(ReturnWatch(return_tx))
        .map_err(run_error)?;
    if let Err(error) = ready(&handle, brokers.count()).await {
        stop(handle).await;
        return Err(error);
    }
    let mandatory = message.mandatory;
    let what = format!("{} {}", message.exchange, message.routing_key);
    let publisher = handle.publisher();
    let published = tokio::select! {
        result = publisher.publish(message) => result.map_err(publish_error),
        Some(()) = nacks.recv() => Err(CliError::Nacked(what)),
    };
    let fate = match published {
        Ok(()) if mandatory => match tokio::time::timeout(RETURN_GRACE, returns.recv()).await {
            Ok(Some(returned)) => Ok(Fate::Returned(Box::new(returned))),
            _ => Ok(Fate::Confirmed),
        },
        Ok(()) => Ok(Fate::Confirmed),
        Err(error) => Err(error),
    };
    if matches!(fate, Err(CliError::Nacked(_))) {
        // The runtime would publish the nacked message again after its
        // retry delay; the user asked for one attempt.
        handle.shutdown();
    } else {
        stop(handle).await;
    }
    fate
}
