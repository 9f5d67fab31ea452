//! Error types, one per operation.

use std::time::Duration;

use bus_core::{EncodeError, GelfError, RoutingKeyError};

/// A message could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A property or header cannot be carried by AMQP.
    #[error("invalid message properties: {0}")]
    Properties(#[from] crate::properties::PropsError),
    /// The routing key (or reply_to) is not valid.
    #[error("invalid routing key: {0}")]
    RoutingKey(#[from] RoutingKeyError),
    /// The connection of the delivery being handled was lost: the broker
    /// will redeliver it, and its handler will publish this again.
    #[error("the delivery being handled was lost with its connection")]
    DeliveryLost,
    /// The current message is not a command, so it has nothing to reply to.
    #[error("only a command can be replied to")]
    NotACommand,
    /// The service (or publisher) has stopped.
    #[error("the service has stopped")]
    Stopped,
    /// The broker did not confirm the message in time.
    #[error("no confirmation from the broker within {0:?}")]
    TimedOut(Duration),
}

/// A log record could not be built.
pub type LogError = GelfError;

/// A connection to a broker could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing accepts connections at this address.
    #[error("no broker at {address}: {reason}")]
    Unreachable {
        /// `host:port`.
        address: String,
        /// The system's reason.
        reason: String,
    },
    /// The broker refused the credentials or the virtual host.
    #[error("access refused by the broker at {address} (check user, password and vhost)")]
    AccessRefused {
        /// `host:port`.
        address: String,
    },
    /// The connection did not complete in time.
    #[error("timed out connecting to {address} after {timeout:?}")]
    TimedOut {
        /// `host:port`.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Anything else amqprs reported while opening the connection.
    #[error("cannot open a connection to {address}: {reason}")]
    Protocol {
        /// `host:port`.
        address: String,
        /// The reason.
        reason: String,
    },
    /// TLS (`amqps://`) is not supported by this build.
    #[error("amqps:// (TLS) is not supported yet: {url}")]
    TlsUnsupported {
        /// The redacted URL.
        url: String,
    },
}

/// The service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is invalid.
    #[error("invalid service configuration: {0}")]
    Config(String),
    /// No broker accepted the connection (with [`ServiceBuilder::fail_fast`](crate::ServiceBuilder::fail_fast)).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The runtime task failed unexpectedly.
    #[error("the service runtime failed: {0}")]
    Internal(String),
}

/// A request made with [`Client::call`](crate::Client::call) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No result came back in time.
    #[error("no result for {command} within {timeout:?}")]
    TimedOut {
        /// The command.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The broker returned the command: no queue is bound for it, so no
    /// service listens to it.
    #[error("no service listens to {command}")]
    Unroutable {
        /// The command.
        command: String,
    },
    /// The command could not be published.
    #[error(transparent)]
    Publish(#[from] PublishError),
}
