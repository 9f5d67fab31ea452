//! The dynamic form of a service: a trait with one method per kind of
//! message, mirroring eventail's `Service` class. Every method has a
//! default, so a service implements only what it needs.

use std::future::Future;

use bus_core::{Codec, LogLevel, Properties, Value};
use serde::de::DeserializeOwned;

use crate::{Context, HandlerError, HandlerResult, Message, Outcome};

/// The routing keys a service subscribes to, on top of those given to its
/// builder. The [`Router`](crate::Router) derives them from its routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// Patterns bound on `events` to `<service>.events`.
    pub events: Vec<String>,
    /// Keys bound on `commands` to `<service>.commands`: commands, and the
    /// result keys the service uses as `reply_to`.
    pub commands: Vec<String>,
    /// Patterns bound on `configurations` to the exclusive configuration queue.
    pub configurations: Vec<String>,
}

/// A mandatory message the broker could not route and sent back.
#[derive(Debug, Clone)]
pub struct Returned {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// The broker's reason code (312 NO_ROUTE).
    pub reply_code: u16,
    /// The broker's reason text.
    pub reply_text: String,
    /// Its properties, headers included.
    pub properties: Properties,
    /// Its encoded body.
    pub body: Vec<u8>,
}

impl Returned {
    /// The `conversation_id` header.
    pub fn conversation_id(&self) -> Option<&str> {
        self.properties
            .headers
            .get(bus_core::CONVERSATION_ID_HEADER)
            .and_then(Value::as_str)
    }

    /// The `correlation_id` property.
    pub fn correlation_id(&self) -> Option<&str> {
        self.properties.correlation_id.as_deref()
    }

    /// Decodes the body into `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, bus_core::DecodeError> {
        Codec::for_content_type(self.properties.content_type.as_deref()).decode(&self.body)
    }
}

/// A service, in the dynamic-payload form of eventail's `Service`.
///
/// Methods take the context and the message by value, so a handler can
/// move them into tasks. Handlers return an [`Outcome`] or a
/// [`HandlerError`]; see the failure policy there.
///
/// ```no_run
/// use bus_service::{Context, HandlerResult, Message, Outcome, Service, ServiceBuilder};
///
/// struct Pong;
///
/// impl Service for Pong {
///     async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
///         let payload = msg.value()?;
///         ctx.reply_success(&payload).await?;
///         Ok(Outcome::Done)
///     }
/// }
///
/// # async fn run() -> Result<(), bus_service::RunError> {
/// ServiceBuilder::new("pong")
///     .command_keys(["pong.EchoMessage"])
///     .run(Pong)
///     .await
/// # }
/// ```
pub trait Service: Send + Sync + 'static {
    /// Keys to subscribe to besides the builder's; `service` is the
    /// logical service name.
    fn subscriptions(&self, service: &str) -> Subscriptions {
        let _ = service;
        Subscriptions::default()
    }

    /// An event arrived.
    fn handle_event(
        &self,
        ctx: Context,
        msg: Message,
    ) -> impl Future<Output = HandlerResult> + Send {
        async move { unexpected(&ctx, "event", &msg) }
    }

    /// A command arrived; reply with [`Context::reply_success`] or
    /// [`Context::reply_error`].
    fn handle_command(
        &self,
        ctx: Context,
        msg: Message,
    ) -> impl Future<Output = HandlerResult> + Send {
        async move { unexpected(&ctx, "command", &msg) }
    }

    /// The result of a command this service sent arrived.
    fn handle_result(
        &self,
        ctx: Context,
        msg: Message,
    ) -> impl Future<Output = HandlerResult> + Send {
        async move { unexpected(&ctx, "result", &msg) }
    }

    /// A configuration arrived. Return `true` once the service is
    /// configured: it then starts consuming events and commands.
    fn handle_config(
        &self,
        ctx: Context,
        msg: Message,
    ) -> impl Future<Output = Result<bool, HandlerError>> + Send {
        async move { unexpected(&ctx, "configuration", &msg).map(|_| false) }
    }

    /// The broker returned a mandatory message that no queue was bound for.
    fn handle_returned(&self, ctx: Context, returned: Returned) -> impl Future<Output = ()> + Send {
        let _ = (ctx, returned);
        async {}
    }

    /// The service is configured and consumes its queues.
    fn on_ready(&self, ctx: Context) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// The service has configuration keys and waits for its configuration;
    /// typically publishes a configuration request.
    fn on_unconfigured(&self, ctx: Context) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}

/// eventail's default: log the surprise on the bus and ack.
pub(crate) fn unexpected(ctx: &Context, kind: &str, msg: &Message) -> HandlerResult {
    let short = format!(
        "unexpected {kind} {}; check your subscriptions!",
        msg.routing_key()
    );
    ctx.logger()
        .simple(LogLevel::Error, &short, "", msg.conversation_id());
    Ok(Outcome::Done)
}
