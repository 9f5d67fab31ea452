//! The parts of a running service that outlive any one connection.

use std::sync::Arc;

use amqprs::channel::Channel;
use tokio::sync::watch;

use crate::config::Config;
use crate::context::{Context, Shared};
use crate::service::{Service, Subscriptions};

/// The service, its shared state and its settings: what each session
/// starts from.
pub(crate) struct Runtime<S> {
    pub(crate) service: Arc<S>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Config,
    /// The builder's keys merged with the service's own.
    pub(crate) keys: Subscriptions,
    /// Where the log task finds the current log channel.
    pub(crate) log_channel: watch::Sender<Option<Channel>>,
}

impl<S: Service> Runtime<S> {
    pub(crate) fn service_context(&self) -> Context {
        Context::for_service(Arc::clone(&self.shared))
    }

    /// Runs a hook in a task of its own; a panic is logged, not fatal.
    pub(crate) fn spawn_hook<F>(&self, name: &'static str, hook: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let logger = self.shared.logger.clone();
        tokio::spawn(async move {
            use futures_util::FutureExt as _;
            if let Err(panic) = std::panic::AssertUnwindSafe(hook).catch_unwind().await {
                let text = panic_text(&*panic);
                logger.simple(
                    bus_core::LogLevel::Emergency,
                    &format!("panic in {name}"),
                    &text,
                    "",
                );
                tracing::error!(hook = name, panic = %text, "a service hook panicked");
            }
        });
    }
}

/// The message of a panic payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
