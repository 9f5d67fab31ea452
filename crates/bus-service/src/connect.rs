//! Opening a connection to one broker URL, with a timeout and a name.

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};
use bus_core::BrokerUrl;

use crate::error::ConnectError;

/// Opens an AMQP connection named `name` (shown by the management UI and
/// `rabbitmqctl list_connections client_properties`).
///
/// amqprs has no timeout of its own, so the whole handshake is bounded here.
pub(crate) async fn open(
    url: &BrokerUrl,
    name: &str,
    heartbeat: u16,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let address = url.address();
    if url.tls {
        return Err(ConnectError::TlsUnsupported {
            url: url.to_string(),
        });
    }
    // amqprs sends heartbeats every heartbeat/2 whole seconds: below 2 it
    // would send them in a busy loop.
    let heartbeat = match url.heartbeat.unwrap_or(heartbeat) {
        0 => 0,
        h => h.max(2),
    };
    let timeout = url.connection_timeout.unwrap_or(timeout);
    let args = OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password)
        .virtual_host(&url.vhost)
        .heartbeat(heartbeat)
        .connection_name(name)
        .finish();
    match tokio::time::timeout(timeout, Connection::open(&args)).await {
        Err(_) => Err(ConnectError::TimedOut { address, timeout }),
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(classify(address, error)),
    }
}

/// Turns amqprs's stringly errors into the cases a user can act on.
fn classify(address: String, error: amqprs::error::Error) -> ConnectError {
    let reason = error.to_string();
    match error {
        amqprs::error::Error::NetworkError(msg) => {
            // RabbitMQ closes the socket after a failed login, which amqprs
            // reports as a network error while negotiating.
            if msg.contains("ACCESS_REFUSED") || msg.contains("403") {
                ConnectError::AccessRefused { address }
            } else if msg.contains("refused")
                || msg.contains("unreachable")
                || msg.contains("resolve")
                || msg.contains("lookup")
            {
                ConnectError::Unreachable {
                    address,
                    reason: msg,
                }
            } else if msg.contains("peer") || msg.contains("closed") || msg.contains("eof") {
                // The broker hung up during the handshake: almost always
                // bad credentials or an unknown vhost.
                ConnectError::AccessRefused { address }
            } else {
                ConnectError::Unreachable {
                    address,
                    reason: msg,
                }
            }
        }
        amqprs::error::Error::ConnectionOpenError(msg)
            if msg.contains("ACCESS_REFUSED")
                || msg.contains("NOT_ALLOWED")
                || msg.contains("403")
                || msg.contains("530") =>
        {
            ConnectError::AccessRefused { address }
        }
        _ => ConnectError::Protocol { address, reason },
    }
}
