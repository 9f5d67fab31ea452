//! Opening a connection to one broker URL, with a timeout and a name.

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};
use bus_core::BrokerUrl;

use crate::error::ConnectError;

/// Opens an AMQP connection named `name` (shown by the management UI and
/// `rabbitmqctl list_connections client_properties`), asking for
/// `heartbeat` seconds unless the URL sets one.
///
/// amqprs has no timeout of its own, so the whole handshake is bounded by
/// the URL's `connection_timeout`, or `timeout`. Failures are classified
/// into the cases a user can act on (see [`ConnectError`]).
pub async fn open(
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
///
/// Checked against RabbitMQ 3.10: a wrong user or password makes the broker
/// reset the socket (it sends `connection.close` with ACCESS_REFUSED only to
/// clients that advertise `authentication_failure_close`, which amqprs does
/// not); an unknown vhost gets `connection.close` 530 NOT_ALLOWED. A server
/// that closes the socket cleanly or answers with something other than AMQP
/// frames is not a broker we can use, and says nothing about credentials.
fn classify(address: String, error: amqprs::error::Error) -> ConnectError {
    let reason = error.to_string();
    match error {
        amqprs::error::Error::NetworkError(msg) => {
            if msg.contains("reset by peer") || msg.contains("ACCESS_REFUSED") {
                ConnectError::AccessRefused { address }
            } else if msg.contains("peer shutdown")
                || msg.contains("connection interrupted")
                || msg.contains("framing error")
                || msg.contains("serde error")
            {
                ConnectError::Protocol {
                    address,
                    reason: format!("the server does not speak AMQP 0-9-1 ({msg})"),
                }
            } else {
                // Refused, unknown host, no route, timed out at the TCP level.
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
