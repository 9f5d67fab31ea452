//! Typed handlers per routing key, in the spirit of axum's `Router`, built
//! on the [`Service`] trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus_core::TopicPattern;
use serde::de::DeserializeOwned;

use crate::handler::IntoHandlerResult;
use crate::service::{Returned, Service, Subscriptions};
use crate::{Context, HandlerError, HandlerResult, Message};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Context, Message) -> BoxFuture<HandlerResult> + Send + Sync>;
type ConfigHandler =
    Arc<dyn Fn(Context, Message) -> BoxFuture<Result<bool, HandlerError>> + Send + Sync>;
type Hook = Arc<dyn Fn(Context) -> BoxFuture<()> + Send + Sync>;
type ReturnedHook = Arc<dyn Fn(Context, Returned) -> BoxFuture<()> + Send + Sync>;

/// A command or result name: relative to the service (`EchoMessage` is
/// `<service>.EchoMessage`) unless it contains a dot.
#[derive(Clone)]
struct Name(String);

impl Name {
    fn key(&self, service: &str) -> String {
        if self.0.contains('.') {
            self.0.clone()
        } else {
            format!("{service}.{}", self.0)
        }
    }

    /// Whether `key` is this name's routing key, without building it:
    /// this runs for every delivery.
    fn matches(&self, service: &str, key: &str) -> bool {
        if self.0.contains('.') {
            self.0 == key
        } else {
            key.strip_prefix(service)
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(self.0.as_str())
        }
    }
}

/// A service made of typed handlers, one per routing key.
///
/// Each handler takes the [`Context`] and the payload decoded into its own
/// type; a payload that does not fit is dead-lettered. A handler returns
/// `()`, an [`Outcome`](crate::Outcome), or a `Result` of either.
///
/// ```no_run
/// use bus_service::{Context, HandlerError, Router, ServiceBuilder};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Echo { message: String }
/// #[derive(Serialize)]
/// struct Echoed { echo: String }
///
/// # async fn run() -> Result<(), bus_service::RunError> {
/// let router = Router::new().command("EchoMessage", |ctx: Context, msg: Echo| async move {
///     ctx.reply_success(&Echoed { echo: msg.message.to_uppercase() }).await?;
///     Ok::<(), HandlerError>(())
/// });
/// ServiceBuilder::new("pong").run(router).await
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Router {
    events: Vec<(TopicPattern, Handler)>,
    commands: Vec<(Name, Handler)>,
    results: Vec<(Name, Handler)>,
    configurations: Vec<(TopicPattern, ConfigHandler)>,
    on_ready: Option<Hook>,
    on_unconfigured: Option<Hook>,
    on_returned: Option<ReturnedHook>,
    invalid: Vec<String>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "commands",
                &self.commands.iter().map(|(n, _)| &n.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn typed<T, F, Fut, R>(handler: F) -> Handler
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoHandlerResult,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx: Context, msg: Message| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let payload: T = msg.payload()?;
            handler(ctx, payload).await.into_handler_result()
        })
    })
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    fn pattern(&mut self, pattern: &str) -> Option<TopicPattern> {
        match TopicPattern::new(pattern) {
            Ok(p) => Some(p),
            Err(_) => {
                self.invalid.push(pattern.to_owned());
                None
            }
        }
    }

    /// Handles events matching `pattern` (`*` and `#` allowed). The first
    /// matching route wins.
    pub fn event<T, F, Fut, R>(mut self, pattern: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult,
    {
        if let Some(p) = self.pattern(pattern) {
            self.events.push((p, typed(handler)));
        }
        self
    }

    /// Handles a command: `name` is relative to the service
    /// (`EchoMessage` binds `<service>.EchoMessage`).
    pub fn command<T, F, Fut, R>(mut self, name: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult,
    {
        self.commands.push((Name(name.to_owned()), typed(handler)));
        self
    }

    /// Handles results sent to `name` (relative to the service, like
    /// commands): use that key as `reply_to`. [`Context::status`] tells
    /// success from error; use [`bus_core::Value`] or an untagged enum when
    /// their payloads differ.
    pub fn result<T, F, Fut, R>(mut self, name: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult,
    {
        self.results.push((Name(name.to_owned()), typed(handler)));
        self
    }

    /// Handles configurations matching `pattern`; the handler returns
    /// whether the service is now configured.
    pub fn configuration<T, F, Fut>(mut self, pattern: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, HandlerError>> + Send + 'static,
    {
        let Some(p) = self.pattern(pattern) else {
            return self;
        };
        let handler = Arc::new(handler);
        let erased: ConfigHandler = Arc::new(move |ctx, msg: Message| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let payload: T = msg.payload()?;
                handler(ctx, payload).await
            })
        });
        self.configurations.push((p, erased));
        self
    }

    /// Runs once the service consumes its queues.
    pub fn on_ready<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_ready = Some(Arc::new(move |ctx| Box::pin(hook(ctx))));
        self
    }

    /// Runs when the service waits for its configuration.
    pub fn on_unconfigured<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_unconfigured = Some(Arc::new(move |ctx| Box::pin(hook(ctx))));
        self
    }

    /// Runs when the broker returns an unroutable mandatory message.
    pub fn on_returned<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context, Returned) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_returned = Some(Arc::new(move |ctx, r| Box::pin(hook(ctx, r))));
        self
    }

    fn named<'a>(routes: &'a [(Name, Handler)], service: &str, key: &str) -> Option<&'a Handler> {
        routes
            .iter()
            .find(|(name, _)| name.matches(service, key))
            .map(|(_, h)| h)
    }
}

impl Service for Router {
    fn subscriptions(&self, service: &str) -> Subscriptions {
        Subscriptions {
            // Refused patterns are listed too, so that starting the service
            // fails with their error instead of silently dropping a route.
            events: self
                .events
                .iter()
                .map(|(p, _)| p.as_str().to_owned())
                .chain(self.invalid.iter().cloned())
                .collect(),
            commands: self
                .commands
                .iter()
                .chain(&self.results)
                .map(|(n, _)| n.key(service))
                .collect(),
            configurations: self
                .configurations
                .iter()
                .map(|(p, _)| p.as_str().to_owned())
                .collect(),
        }
    }

    async fn handle_event(&self, ctx: Context, msg: Message) -> HandlerResult {
        let route = self
            .events
            .iter()
            .find(|(p, _)| p.matches(msg.routing_key()));
        match route {
            Some((_, handler)) => handler(ctx, msg).await,
            None => crate::service::unexpected(&ctx, "event", &msg),
        }
    }

    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        match Router::named(&self.commands, ctx.service_name(), msg.routing_key()) {
            Some(handler) => handler(ctx, msg).await,
            None => crate::service::unexpected(&ctx, "command", &msg),
        }
    }

    async fn handle_result(&self, ctx: Context, msg: Message) -> HandlerResult {
        match Router::named(&self.results, ctx.service_name(), msg.routing_key()) {
            Some(handler) => handler(ctx, msg).await,
            None => crate::service::unexpected(&ctx, "result", &msg),
        }
    }

    async fn handle_config(&self, ctx: Context, msg: Message) -> Result<bool, HandlerError> {
        let route = self
            .configurations
            .iter()
            .find(|(p, _)| p.matches(msg.routing_key()));
        match route {
            Some((_, handler)) => handler(ctx, msg).await,
            None => crate::service::unexpected(&ctx, "configuration", &msg).map(|_| false),
        }
    }

    async fn handle_returned(&self, ctx: Context, returned: Returned) {
        if let Some(hook) = &self.on_returned {
            hook(ctx, returned).await;
        }
    }

    async fn on_ready(&self, ctx: Context) {
        if let Some(hook) = &self.on_ready {
            hook(ctx).await;
        }
    }

    async fn on_unconfigured(&self, ctx: Context) {
        if let Some(hook) = &self.on_unconfigured {
            hook(ctx).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Name;

    #[test]
    fn names_match_the_key_they_build() {
        let relative = Name("EchoMessage".into());
        let absolute = Name("ping.EchoReturn".into());
        for (name, key) in [
            (&relative, "pong.EchoMessage"),
            (&absolute, "ping.EchoReturn"),
        ] {
            assert_eq!(name.key("pong"), key);
            assert!(name.matches("pong", key));
        }
        for other in [
            "pong.Echo",
            "pongEchoMessage",
            "EchoMessage",
            "pong.EchoMessage.x",
            "pon.EchoMessage",
        ] {
            assert!(!relative.matches("pong", other), "{other}");
        }
        assert!(!absolute.matches("pong", "pong.ping.EchoReturn"));
    }
}
