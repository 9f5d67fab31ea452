//! Building and starting a service.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bus_core::{BrokerUrl, Codec, DEFAULT_URL, Value, validate_routing_key};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::context::{Context, Shared};
use crate::error::RunError;
use crate::health::{Health, ServiceState};
use crate::logs::{BusLogLayer, BusLogger};
use crate::observe::{Observer, TraceEvent};
use crate::outbox::Outbox;
use crate::reconnect::ReconnectPolicy;
use crate::runtime::Runtime;
use crate::service::Service;
use crate::timers::Timers;
use crate::{Publisher, signals, supervisor, topology};

/// Configures and starts a service. Defaults are eventail's.
///
/// ```no_run
/// use bus_service::{Router, ServiceBuilder};
///
/// # async fn run() -> Result<(), bus_service::RunError> {
/// let router = Router::new();
/// ServiceBuilder::new("pong")
///     .url("amqp://guest:guest@localhost:5672/%2f")
///     .prefetch(10)
///     .run(router)
///     .await
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct ServiceBuilder {
    config: Config,
    urls: Vec<String>,
    layers: Vec<BusLogLayer>,
}

impl ServiceBuilder {
    /// A service with this logical name: its queues are `<name>.events`
    /// and `<name>.commands`, its logs `<name>.<LEVEL>`.
    pub fn new(name: &str) -> ServiceBuilder {
        ServiceBuilder {
            config: Config::new(name),
            urls: Vec::new(),
            layers: Vec::new(),
        }
    }

    /// Adds a broker URL. With several, connections try them in turn.
    /// Default: `amqp://guest:guest@localhost:5672/%2f`.
    pub fn url(mut self, url: &str) -> Self {
        self.urls.push(url.to_owned());
        self
    }

    /// Adds broker URLs.
    pub fn urls<I: IntoIterator<Item = T>, T: AsRef<str>>(mut self, urls: I) -> Self {
        self.urls
            .extend(urls.into_iter().map(|u| u.as_ref().to_owned()));
        self
    }

    /// Event patterns to bind `<name>.events` with.
    pub fn event_keys<I: IntoIterator<Item = T>, T: Into<String>>(mut self, keys: I) -> Self {
        self.config
            .event_keys
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Command keys (and result keys) to bind `<name>.commands` with.
    pub fn command_keys<I: IntoIterator<Item = T>, T: Into<String>>(mut self, keys: I) -> Self {
        self.config
            .command_keys
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Configuration patterns; with any, the service waits to be configured.
    pub fn config_keys<I: IntoIterator<Item = T>, T: Into<String>>(mut self, keys: I) -> Self {
        self.config
            .config_keys
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Deliveries the broker sends ahead of acks (eventail: 3).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.config.prefetch = prefetch;
        self
    }

    /// Publishes JSON instead of CBOR (eventail's `use_json`).
    pub fn json(mut self) -> Self {
        self.config.codec = Codec::Json;
        self
    }

    /// The codec to publish with.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Exclusive, server-named queues for everything (eventail's
    /// `use_exclusive_queues`): for tools that must not share a service's
    /// queues nor leave queues behind.
    pub fn exclusive_queues(mut self) -> Self {
        self.config.exclusive_queues = true;
        self
    }

    /// An argument for declaring the shared queues, e.g.
    /// `("x-queue-type", "quorum")`.
    pub fn queue_argument(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.config
            .queue_arguments
            .insert(key.to_owned(), value.into());
        self
    }

    /// How many deliveries are handled at once (default 1: in order, as
    /// eventail). The ack-after-confirm rule holds for each.
    pub fn concurrency(mut self, handlers: usize) -> Self {
        self.config.concurrency = handlers.max(1);
        self
    }

    /// The heartbeat to ask for, in seconds (default 60; at least 2).
    pub fn heartbeat(mut self, seconds: u16) -> Self {
        self.config.heartbeat = seconds;
        self
    }

    /// How long opening a connection may take (default 10 s). The same
    /// bound applies to setting it up (channels, topology, consumers) and
    /// to sending an acknowledgement: a broker that does not answer in
    /// time is treated as gone, and the service reconnects.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection_timeout = timeout;
        self
    }

    /// How long publisher confirms may stop arriving before the connection
    /// is considered dead (eventail's `BLOCKED_TIMEOUT`, 3600 s).
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.config.confirm_timeout = timeout;
        self
    }

    /// The delay before a message the broker nacked is published again
    /// (eventail's `RETRY_DELAY`, 15 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.config.retry_delay = delay;
        self
    }

    /// The delays between connection attempts.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// How long a graceful stop waits for handlers and confirms (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// Overrides the connection name (default `<name>@<hostname>:<pid>`).
    pub fn connection_name(mut self, name: &str) -> Self {
        self.config.connection_name = Some(name.to_owned());
        self
    }

    /// Calls `observer` with each step of the publish → confirm → ack path.
    pub fn observe(mut self, observer: impl Fn(&TraceEvent) + Send + Sync + 'static) -> Self {
        self.config.observer = Observer::new(Arc::new(observer));
        self
    }

    /// Gives up, instead of retrying, when no broker accepts the very first
    /// connection: for tools, which should report "no broker" at once.
    /// Later connection losses are still recovered.
    pub fn fail_fast(mut self) -> Self {
        self.config.fail_fast = true;
        self
    }

    /// The logical service name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Connects a [`BusLogLayer`] to this service's bus logger.
    pub fn forward_tracing(mut self, layer: &BusLogLayer) -> Self {
        self.layers.push(layer.clone());
        self
    }

    fn validate(&mut self) -> Result<(), RunError> {
        let config = &mut self.config;
        if config.name.is_empty() || config.name.contains(['.', '#', '*']) {
            return Err(RunError::Config(format!(
                "service name {:?} must be non-empty and contain no '.', '#' or '*'",
                config.name
            )));
        }
        if self.urls.is_empty() {
            self.urls.push(DEFAULT_URL.to_owned());
        }
        config.urls = self
            .urls
            .iter()
            .map(|u| u.parse::<BrokerUrl>())
            .collect::<Result<_, _>>()
            .map_err(|e| RunError::Config(e.to_string()))?;
        for (key, value) in &config.queue_arguments {
            crate::properties::field_value(key, value)
                .map_err(|e| RunError::Config(format!("queue argument: {e}")))?;
        }
        for key in config
            .event_keys
            .iter()
            .chain(&config.command_keys)
            .chain(&config.config_keys)
        {
            validate_routing_key(key).map_err(|e| RunError::Config(format!("{key:?}: {e}")))?;
        }
        Ok(())
    }

    /// Starts the service in the background and returns its handle. Must be
    /// called within a tokio runtime.
    pub fn start<S: Service>(mut self, service: S) -> Result<ServiceHandle, RunError> {
        self.validate()?;
        let config = self.config;
        let keys = topology::merged(&config, &service.subscriptions(&config.name));
        for key in keys
            .events
            .iter()
            .chain(&keys.commands)
            .chain(&keys.configurations)
        {
            validate_routing_key(key).map_err(|e| RunError::Config(format!("{key:?}: {e}")))?;
        }
        let outbox = Outbox::new(config.retry_delay, config.observer.clone());
        let (log_channel, log_channels) = watch::channel(None);
        let logger = BusLogger::start(&config.name, log_channels);
        for layer in &self.layers {
            layer.connect(logger.clone());
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let health = Health::new(Arc::clone(&outbox));
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            codec: config.codec,
            outbox,
            logger,
            control,
            shutdown: shutdown.clone(),
            health: health.clone(),
            timers: Timers::default(),
            current_session: AtomicU64::new(0),
        });
        let runtime = Runtime {
            service: Arc::new(service),
            shared: Arc::clone(&shared),
            config,
            keys,
            log_channel,
        };
        let task = tokio::spawn(supervisor::supervise(runtime, control_rx));
        Ok(ServiceHandle { shared, task })
    }

    /// Starts the service and runs it until SIGTERM, SIGINT or SIGHUP (or
    /// [`Context::stop`]), then stops it gracefully. A second signal exits
    /// the process at once with status 1.
    pub async fn run<S: Service>(self, service: S) -> Result<(), RunError> {
        let handle = self.start(service)?;
        tokio::spawn(signals::stop_on_signals(handle.shutdown_token()));
        handle.join().await
    }

    /// Starts a service with no queues, only to publish: see [`Publisher`].
    pub fn start_publisher(self) -> Result<Publisher, RunError> {
        let handle = self.start(crate::publisher::NoHandlers)?;
        Ok(Publisher::owning(handle))
    }
}

/// A running service.
#[derive(Debug)]
pub struct ServiceHandle {
    shared: Arc<Shared>,
    task: JoinHandle<Result<(), RunError>>,
}

impl ServiceHandle {
    /// The state and counters.
    pub fn health(&self) -> Health {
        self.shared.health.clone()
    }

    /// A context not tied to any delivery, to publish or log from outside
    /// handlers.
    pub fn context(&self) -> Context {
        Context::for_service(Arc::clone(&self.shared))
    }

    /// A publisher sharing this service's connection.
    pub fn publisher(&self) -> Publisher {
        Publisher::sharing(self.context())
    }

    /// Starts a graceful stop; [`join`](Self::join) waits for its end.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// The token that stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Waits until the service has stopped.
    pub async fn join(self) -> Result<(), RunError> {
        self.task
            .await
            .map_err(|e| RunError::Internal(e.to_string()))?
    }

    /// Stops the service gracefully and waits for the end.
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown();
        self.join().await
    }

    /// Waits up to `timeout` for the service to consume, or to stop for
    /// good; shuts it down when it is not ready by then. Returns whether it
    /// is ready.
    pub(crate) async fn ready_or_shut_down(&self, timeout: Duration) -> bool {
        let health = &self.shared.health;
        let mut states = health.subscribe();
        let settled = |s: &ServiceState| matches!(s, ServiceState::Ready | ServiceState::Stopped);
        let _ = tokio::time::timeout(timeout, states.wait_for(settled)).await;
        let ready = health.is_ready();
        if !ready {
            self.shutdown();
        }
        ready
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("name", &self.name).finish()
    }
}

/// A service that belongs to a value built on it (a standalone
/// [`Publisher`], a [`Client`](crate::Client)): stopped by `stop`, or shut
/// down when the last clone of its owner is dropped, so that a dropped
/// owner does not leave a connection running for the rest of the process.
pub(crate) struct OwnedService(tokio::sync::Mutex<Option<ServiceHandle>>);

impl OwnedService {
    pub(crate) fn new(handle: Option<ServiceHandle>) -> OwnedService {
        OwnedService(tokio::sync::Mutex::new(handle))
    }

    /// Stops the service gracefully, once.
    pub(crate) async fn stop(&self) -> Result<(), RunError> {
        let handle = self.0.lock().await.take();
        match handle {
            Some(handle) => handle.stop().await,
            None => Ok(()),
        }
    }
}

impl Drop for OwnedService {
    fn drop(&mut self) {
        if let Some(handle) = self.0.get_mut().take() {
            handle.shutdown();
        }
    }
}

impl std::fmt::Debug for OwnedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnedService")
    }
}
