//! Opening a connection to the test broker, with a deadline.

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};
use bus_core::{BrokerUrl, UrlError};

/// How long [`connect`] waits for the AMQP handshake unless the URL sets
/// `connection_timeout`: amqprs has no timeout of its own and would wait
/// forever on a broker that accepts TCP but never answers (a paused or
/// booting node).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the broker over AMQP failed. Messages show the address,
/// never the password.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The URL does not parse.
    #[error("invalid broker URL: {0}")]
    Url(#[from] UrlError),
    /// The URL asks for TLS, which the test support does not build in.
    #[error("amqps:// URLs are not supported by the test support")]
    Tls,
    /// The handshake or an operation did not finish in time.
    #[error("{what} at {address}: no answer within {timeout:?}")]
    Timeout {
        /// What was attempted.
        what: String,
        /// `host:port` of the broker.
        address: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The broker refused the connection or an operation, or the network
    /// failed.
    #[error("{what} at {address}: {source}")]
    Amqp {
        /// What was attempted.
        what: String,
        /// `host:port` of the broker.
        address: String,
        /// What amqprs reported.
        source: amqprs::error::Error,
    },
}

/// Opens an AMQP connection to `url`, named `name` in the broker's
/// connection list.
///
/// It gives up after the URL's `connection_timeout`, or 10 seconds. The
/// caller closes the connection with `Connection::close`; dropping it also
/// closes it, but only from inside a Tokio runtime.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let url: BrokerUrl = url.parse()?;
    if url.tls {
        return Err(BrokerError::Tls);
    }
    let mut args = OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password);
    args.virtual_host(&url.vhost).connection_name(name);
    if let Some(heartbeat) = url.heartbeat {
        args.heartbeat(heartbeat);
    }
    let timeout = url.connection_timeout.unwrap_or(OPEN_TIMEOUT);
    let address = url.address();
    let what = || format!("opening connection {name:?}");
    match tokio::time::timeout(timeout, Connection::open(&args)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(BrokerError::Amqp {
            what: what(),
            address,
            source,
        }),
        Err(_) => Err(BrokerError::Timeout {
            what: what(),
            address,
            timeout,
        }),
    }
}

/// Declares a queue with `args` and binds it to `exchange` with `key`;
/// returns its name (the server's, for a server-named queue).
///
/// # Panics
///
/// When the broker refuses either step: the test cannot go on without it.
pub async fn declare_bound(
    channel: &amqprs::channel::Channel,
    args: amqprs::channel::QueueDeclareArguments,
    exchange: &str,
    key: &str,
) -> String {
    let (queue, _, _) = channel
        .queue_declare(args)
        .await
        .expect("declare queue")
        .expect("declare-ok");
    channel
        .queue_bind(amqprs::channel::QueueBindArguments::new(
            &queue, exchange, key,
        ))
        .await
        .expect("bind queue");
    queue
}
