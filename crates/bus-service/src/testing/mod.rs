//! A test kit: run services on an in-memory bus that behaves like
//! RabbitMQ, with no broker to install.
//!
//! [`MemoryBus::start`] starts a small AMQP 0-9-1 broker inside the test
//! process, on a loopback port. Services, [`Client`]s and [`Publisher`]s
//! connect to it with the same amqprs client, the same runtime code and the
//! same frames as in production; only the broker is different. It
//! implements what the bus convention relies on, with RabbitMQ's rules:
//!
//! - topic routing with bus-core's matcher (`*` one word, `#` zero or more),
//!   direct and fanout exchanges, the default exchange;
//! - durable shared queues load-balanced between consumers, exclusive and
//!   auto-delete queues, prefetch;
//! - ack, nack, reject and requeue with the redelivered flag; unacked
//!   deliveries requeued when their channel or connection goes;
//! - dead letters to a queue's `x-dead-letter-exchange` (or one set with
//!   [`MemoryBus::dead_letter`]), with `x-death` headers;
//! - publisher confirms, and mandatory messages returned when unroutable;
//! - `basic.get`, purge and delete, and server-sent consumer cancels.
//!
//! What it leaves out: persistence, TTLs and length limits, priorities,
//! transactions, authentication (any user and vhost is accepted),
//! exchange-to-exchange bindings, and flow control.
//!
//! The conformance suite (`crates/bus-service/tests/conformance.rs`) runs the
//! same behaviour tests on this bus and on RabbitMQ, so that the two cannot
//! drift apart unnoticed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use bus_service::testing::MemoryBus;
//! use bus_service::{Context, HandlerError, Router};
//!
//! let bus = MemoryBus::start().await?;
//! let router = Router::new().command("Double", |ctx: Context, n: i64| async move {
//!     ctx.reply_success(&(n * 2)).await?;
//!     Ok::<(), HandlerError>(())
//! });
//! let _service = bus.start_service(bus.service("calc"), router).await?;
//! let reply = bus.send_command("calc.Double", &21, Duration::from_secs(5)).await?;
//! assert_eq!(reply.payload::<i64>()?, 42);
//! # Ok(()) }
//! ```
//!
//! [`Client`]: crate::Client
//! [`Publisher`]: crate::Publisher

mod broker;
mod frame;
mod harness;
mod record;
mod server;

pub use harness::{Failure, IdleTimeout, KitError, MemoryBus};
pub use record::{DeadLetter, Published};
