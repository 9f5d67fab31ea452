//! The service runtime of the bus: write handlers, and the runtime takes
//! care of the rest, wire-compatible with eventail 2.3.6.
//!
//! - **Topology**: the four exchanges, the shared durable queues
//!   `<service>.events` and `<service>.commands` (so instances share the
//!   load), their bindings, an exclusive configuration queue.
//! - **Message safety**: publisher confirms; a delivery is acked only once
//!   every message its handler published is confirmed; one redelivery, then
//!   the dead-letter exchange; invalid messages dead-lettered at once.
//! - **Supervision**: reconnection with backoff over several brokers,
//!   stall detection, graceful shutdown on signals.
//!
//! Two ways to write handlers, on one runtime: the [`Service`] trait
//! (eventail's dynamic form) and the typed [`Router`], built on it.
//!
//! ```no_run
//! use bus_service::{Context, HandlerError, Router, ServiceBuilder};
//!
//! #[derive(serde::Deserialize)]
//! struct EchoMessage { message: String }
//!
//! # async fn run() -> Result<(), bus_service::RunError> {
//! let router = Router::new().command("EchoMessage", |ctx: Context, cmd: EchoMessage| async move {
//!     ctx.reply_success(&serde_json::json!({ "echo": cmd.message.to_uppercase() })).await?;
//!     Ok::<(), HandlerError>(())
//! });
//! ServiceBuilder::new("pong").run(router).await
//! # }
//! ```
//!
//! The path of a message, one source file each: `dispatch.rs` (delivery →
//! handler), `context.rs` (publish), `outbox.rs` (confirms), `ledger.rs`
//! (ack after confirm), `session.rs` (the loop that ties them),
//! `supervisor.rs` (reconnect). The long-form docs are in the repository's
//! `docs/`: `runtime.md`, `protocol.md`, `guarantees.md`, `architecture.md`,
//! `operations.md`.

mod amqp;
mod batch;
mod builder;
mod client;
mod config;
mod connect;
mod consumers;
mod context;
mod dispatch;
mod error;
mod handler;
mod health;
mod ledger;
mod logs;
mod message;
mod observe;
mod outbox;
mod properties;
mod publisher;
mod reconnect;
mod router;
mod runtime;
mod service;
mod session;
mod signals;
mod supervisor;
mod timers;
mod topology;

#[cfg(feature = "testing")]
pub mod testing;

pub use batch::Batch;
pub use builder::{ServiceBuilder, ServiceHandle};
pub use client::{CallOptions, Client, Reply};
pub use config::{
    DEFAULT_CONFIRM_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_PREFETCH, DEFAULT_RETRY_DELAY,
};
pub use context::{Context, DeliveryRef};
pub use error::{CallError, ConnectError, LogError, PublishError, RunError};
pub use handler::{HandlerError, HandlerResult, IntoHandlerResult, Outcome};
pub use health::{Counters, Health, ServiceState};
pub use logs::{BusLogLayer, BusLogger};
pub use message::Message;
pub use observe::TraceEvent;
pub use publisher::Publisher;
pub use reconnect::ReconnectPolicy;
pub use router::Router;
pub use service::{Returned, Service, Subscriptions};
pub use signals::termination_signal;
pub use timers::TimerId;

/// The protocol crate, re-exported so services need one dependency.
pub use bus_core;

/// The runtime's amqprs glue, for tools that drive amqprs themselves
/// (the `bus` command's monitor, inspect and resurrect): opening a
/// connection with the runtime's error classification, declaring the
/// exchanges, converting message properties, and forwarding broker
/// callbacks into a channel.
pub mod raw {
    pub use crate::amqp::{BrokerEvent, ChannelEvents, ConnectionEvents};
    pub use crate::connect::open as open_connection;
    pub use crate::properties::{
        PropsError, from_amqp as properties_from_amqp, to_amqp as properties_to_amqp,
    };
    pub use crate::topology::declare_exchange;
}
