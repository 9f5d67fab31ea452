//! Request/reply: send a command and wait for its result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_core::{
    Codec, Meta, OutgoingMessage, Status, Value, new_conversation_id, new_correlation_id,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::builder::{OwnedService, ServiceBuilder};
use crate::error::{CallError, ConnectError, PublishError, RunError};
use crate::service::{Returned, Service};
use crate::{Context, HandlerResult, Message, Outcome};

/// The result of a command.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `success`, `error` (or whatever the service sent).
    pub status: Status,
    /// The conversation id.
    pub conversation_id: String,
    /// The correlation id of the call.
    pub correlation_id: String,
    /// Broker metadata of the result.
    pub meta: Meta,
    codec: Codec,
    body: Vec<u8>,
}

impl Reply {
    /// Decodes the payload into `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, bus_core::DecodeError> {
        self.codec.decode(&self.body)
    }

    /// Decodes the payload into a dynamic value.
    pub fn value(&self) -> Result<Value, bus_core::DecodeError> {
        self.codec.decode_value(&self.body)
    }

    /// The codec of the payload.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded payload.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

type Waiter = oneshot::Sender<Result<Reply, CallError>>;

#[derive(Default)]
struct Calls {
    /// Correlation id → (command, waiter).
    pending: Mutex<HashMap<String, (String, Waiter)>>,
}

impl Calls {
    fn take(&self, correlation_id: &str) -> Option<(String, Waiter)> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(correlation_id)
    }
}

/// Removes a call's waiter however the call ends, including when its
/// caller drops the future (its own timeout, a `select!`).
struct PendingCall<'a> {
    calls: &'a Calls,
    correlation_id: &'a str,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.calls.take(self.correlation_id);
    }
}

/// The service behind a client: results come back on its exclusive queue.
struct ReplyService {
    calls: Arc<Calls>,
}

impl Service for ReplyService {
    async fn handle_result(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let Some(correlation_id) = msg.correlation_id() else {
            return Ok(Outcome::Done);
        };
        if let Some((_, waiter)) = self.calls.take(correlation_id) {
            let reply = Reply {
                status: msg.status().cloned().unwrap_or(Status::Success),
                conversation_id: msg.conversation_id().to_owned(),
                correlation_id: correlation_id.to_owned(),
                meta: msg.meta().clone(),
                codec: msg.codec(),
                body: msg.body().to_vec(),
            };
            let _ = waiter.send(Ok(reply));
        }
        Ok(Outcome::Done)
    }

    async fn handle_returned(&self, _ctx: Context, returned: Returned) {
        if let Some(correlation_id) = returned.correlation_id() {
            if let Some((command, waiter)) = self.calls.take(correlation_id) {
                let _ = waiter.send(Err(CallError::Unroutable { command }));
            }
        }
    }
}

/// Sends commands and waits for their results. Many concurrent calls share
/// one exclusive reply queue; each has a unique correlation id.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use bus_service::{Client, ServiceBuilder};
///
/// let client = Client::connect(ServiceBuilder::new("ping"), Duration::from_secs(5)).await?;
/// let reply = client
///     .call("pong.EchoMessage", &serde_json::json!({"message": "hi"}), Duration::from_secs(5))
///     .await?;
/// println!("{}: {}", reply.status, reply.value()?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    ctx: Context,
    reply_to: String,
    calls: Arc<CallsHandle>,
}

struct CallsHandle {
    calls: Arc<Calls>,
    handle: OwnedService,
}

impl std::fmt::Debug for CallsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Calls")
    }
}

/// Per-call settings.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long to wait for the result.
    pub timeout: Duration,
    /// The conversation id; a fresh one when `None`.
    pub conversation_id: Option<String>,
}

impl Client {
    /// Starts a client from a builder (name, URLs, codec...), and waits up
    /// to `timeout` for its reply queue. Its queues are exclusive, and its
    /// results are routed with `<name>.reply-<unique id>`. Unlike a service,
    /// it fails at once when no broker accepts the first connection.
    pub async fn connect(builder: ServiceBuilder, timeout: Duration) -> Result<Client, RunError> {
        let calls = Arc::new(Calls::default());
        let reply_to = format!("{}.reply-{}", builder.name(), &new_correlation_id()[..12]);
        let handle = builder
            .exclusive_queues()
            .fail_fast()
            .command_keys([reply_to.clone()])
            .start(ReplyService {
                calls: Arc::clone(&calls),
            })?;
        if !handle.ready_or_shut_down(timeout).await {
            let error = handle
                .health()
                .last_error()
                .unwrap_or(ConnectError::TimedOut {
                    address: "the broker".into(),
                    timeout,
                });
            return Err(RunError::Connect(error));
        }
        Ok(Client {
            ctx: handle.context(),
            reply_to,
            calls: Arc::new(CallsHandle {
                calls,
                handle: OwnedService::new(Some(handle)),
            }),
        })
    }

    /// The routing key results come back with.
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// Sends `command` with `payload` and waits up to `timeout` for its result.
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        command: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        self.call_with(
            command,
            payload,
            CallOptions {
                timeout,
                conversation_id: None,
            },
        )
        .await
    }

    /// [`call`](Self::call) with every option.
    pub async fn call_with<T: Serialize + ?Sized>(
        &self,
        command: &str,
        payload: &T,
        options: CallOptions,
    ) -> Result<Reply, CallError> {
        let body = self
            .ctx
            .codec()
            .encode(payload)
            .map_err(PublishError::from)?;
        self.call_encoded(command, body, options).await
    }

    /// [`call_with`](Self::call_with) for a body already encoded with the
    /// client's codec, e.g. a dynamic [`Value`] encoded with
    /// [`Codec::encode_value`], which keeps CBOR tags that serde drops.
    pub async fn call_encoded(
        &self,
        command: &str,
        body: Vec<u8>,
        options: CallOptions,
    ) -> Result<Reply, CallError> {
        let conversation_id = options.conversation_id.unwrap_or_else(new_conversation_id);
        let correlation_id = new_correlation_id();
        let message = OutgoingMessage::command(
            command,
            self.ctx.codec(),
            body,
            &conversation_id,
            &self.reply_to,
            &correlation_id,
        )
        .map_err(PublishError::from)?;
        let (tx, rx) = oneshot::channel();
        self.calls
            .calls
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(correlation_id.clone(), (command.to_owned(), tx));
        let _pending = PendingCall {
            calls: &self.calls.calls,
            correlation_id: &correlation_id,
        };
        let exchange = async {
            self.ctx.publish(message).await?;
            rx.await
                .unwrap_or(Err(CallError::Publish(PublishError::Stopped)))
        };
        let outcome = tokio::time::timeout(options.timeout, exchange).await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(CallError::TimedOut {
                command: command.to_owned(),
                timeout: options.timeout,
            }),
        }
    }

    /// Stops the client's connection. Dropping the last clone without
    /// `close` starts the same stop in the background.
    pub async fn close(&self) -> Result<(), RunError> {
        self.calls.handle.stop().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::shared_for_tests;
    use crate::observe::Observer;
    use crate::outbox::Outbox;

    #[tokio::test]
    async fn a_call_dropped_by_its_caller_leaves_no_pending_call() {
        let outbox = Outbox::new(Duration::from_secs(15), Observer::default());
        let calls = Arc::new(Calls::default());
        let client = Client {
            ctx: Context::for_service(shared_for_tests(outbox)),
            reply_to: "test.reply-1".to_owned(),
            calls: Arc::new(CallsHandle {
                calls: Arc::clone(&calls),
                handle: OwnedService::new(None),
            }),
        };
        // The caller's own timeout (or a select!) drops the call.
        let call = client.call("other.Do", &(), Duration::from_secs(60));
        let gave_up = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert!(gave_up.is_err(), "no reply can come");
        let left = calls.pending.lock().unwrap().len();
        assert_eq!(left, 0, "the waiter of a dropped call stays forever");
    }
}
