//! Test support for the bus integration tests.
//!
//! Tests run against a real RabbitMQ broker: `cargo xtask broker up` starts
//! one if none answers, and `cargo xtask test` does it before running the
//! suite. This crate finds that broker ([`amqp_url`]), hands out names that
//! parallel tests cannot share ([`unique`]), drives the broker from the side
//! with `rabbitmqctl` ([`rabbitmqctl`], [`Policy`]), cleans up queues even
//! when a test panics ([`QueueCleanup`]), gives tests a virtual host of
//! their own ([`Vhost`]), and serialises the tests that
//! disturb the whole broker ([`serial`]).
//!
//! A test that needs a broker and finds none fails loudly: it is never
//! skipped, so a green run always means the broker was exercised.
//!
//! ```no_run
//! use bus_test_support::{amqp_url, unique, QueueCleanup};
//!
//! let url = amqp_url();
//! let queue = unique("roundtrip");
//! let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
//! // ... declare and use `queue`; it is deleted when `_cleanup` drops.
//! ```

pub mod amqp_props;
mod broker;
mod cleanup;
mod connect;
mod faults;
mod names;
mod policy;
pub mod rabbitmqctl;
mod serial;
mod vhost;

pub use broker::{DEFAULT_AMQP_URL, amqp_url};
pub use cleanup::{QueueCleanup, delete_queues};
pub use connect::{BrokerError, connect, declare_bound};
pub use faults::{DEFAULT_MEMORY_WATERMARK, MemoryAlarm, StoppedApp};
pub use names::unique;
pub use policy::Policy;
pub use serial::serial;
pub use vhost::Vhost;
