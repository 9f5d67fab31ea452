//! Converting message properties between `bus_core` and amqprs, for tests
//! that publish and read messages with amqprs directly: the runtime's own
//! conversion (`bus_service::raw`), so tests and runtime cannot drift apart.

use amqprs::BasicProperties;
use bus_core::Properties;

pub use bus_service::raw::{
    PropsError, properties_from_amqp as from_amqprs, properties_to_amqp as try_to_amqprs,
};

/// Converts properties to amqprs, for publishing.
///
/// # Panics
///
/// When [`try_to_amqprs`] fails: a test that builds unencodable properties
/// has a bug, and the message says which header or property.
pub fn to_amqprs(props: &Properties) -> BasicProperties {
    try_to_amqprs(props).unwrap_or_else(|e| panic!("cannot convert properties to AMQP: {e}"))
}
