//! The brokers to talk to, and connections for the tools that drive amqprs
//! directly.

use std::time::Duration;

use amqprs::connection::Connection;
use bus_core::{BrokerUrl, DEFAULT_URL};
use bus_service::raw::{BrokerEvent, open_connection};
use bus_service::{ConnectError, ServiceBuilder};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::exit::CliError;

/// How long opening a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The heartbeat asked for by raw connections, in seconds: short enough to
/// notice a dead broker within a minute while watching.
const HEARTBEAT: u16 = 30;

/// The broker URLs, parsed: `--url`s, else `AMQP_URL`, else the default.
#[derive(Debug, Clone)]
pub(crate) struct Brokers {
    raw: Vec<String>,
    parsed: Vec<BrokerUrl>,
}

impl Brokers {
    /// Parses the URLs; an error names the URL by position, never by text,
    /// so no password is printed.
    pub(crate) fn new(urls: &[String]) -> Result<Brokers, CliError> {
        let raw: Vec<String> = if urls.is_empty() {
            vec![DEFAULT_URL.to_owned()]
        } else {
            urls.to_vec()
        };
        let parsed = raw
            .iter()
            .enumerate()
            .map(|(i, u)| {
                u.parse::<BrokerUrl>().map_err(|source| CliError::Url {
                    index: i + 1,
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Brokers { raw, parsed })
    }

    /// How many URLs there are.
    pub(crate) fn count(&self) -> usize {
        self.parsed.len()
    }

    /// A service builder for a tool named `name`, with these URLs, that
    /// fails at once when no broker answers and stops quickly.
    pub(crate) fn builder(&self, name: &str) -> ServiceBuilder {
        ServiceBuilder::new(name)
            .urls(&self.raw)
            .fail_fast()
            .connection_timeout(CONNECT_TIMEOUT)
            .stop_timeout(Duration::from_secs(5))
            .connection_name(&connection_name(name))
    }

    /// Opens a connection to the first broker that accepts one.
    pub(crate) async fn connect(&self, tool: &str) -> Result<Connection, ConnectError> {
        let name = connection_name(tool);
        let mut last = None;
        for url in &self.parsed {
            match open_connection(url, &name, HEARTBEAT, CONNECT_TIMEOUT).await {
                Ok(connection) => {
                    tracing::debug!(%url, "connected");
                    return Ok(connection);
                }
                Err(error) => {
                    tracing::debug!(%url, %error, "cannot connect");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| ConnectError::TimedOut {
            address: "the broker".into(),
            timeout: CONNECT_TIMEOUT,
        }))
    }
}

/// `bus-<tool>@<host>:<pid>`, as shown by `rabbitmqctl list_connections
/// client_properties`, so an operator can tell which tool is connected.
pub(crate) fn connection_name(tool: &str) -> String {
    format!(
        "{tool}@{}:{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    )
}

/// Closes a connection, giving up after a moment: the process is about to
/// exit, and the broker cleans up after a dead socket anyway.
pub(crate) async fn close(connection: Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(2), connection.close()).await;
}

/// An amqprs error, explained by the close the broker sent with it: amqprs
/// reports a refused operation as "channel closed" and hands the reason
/// (404 NOT_FOUND, 403 ACCESS_REFUSED…) to the channel callback, which
/// forwards it to `events`.
pub(crate) async fn explain(
    error: amqprs::error::Error,
    events: &mut UnboundedReceiver<BrokerEvent>,
    queue: Option<&str>,
) -> CliError {
    let close = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(event) = events.recv().await {
            if let BrokerEvent::ChannelClosed { code, text }
            | BrokerEvent::ConnectionClosed { code, text } = event
            {
                return Some((code, text));
            }
        }
        None
    })
    .await;
    match close {
        Ok(Some((code, text))) => CliError::from_close(code, &text, queue),
        _ => CliError::from_amqp(error, queue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_bad_urls() {
        let b = Brokers::new(&[]).unwrap();
        assert_eq!(b.parsed[0].host, "localhost");
        let err = Brokers::new(&["amqp://h".into(), "http://u:secret@h".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid broker URL #2: broker URL must start with amqp:// or amqps://"
        );
        assert_eq!(err.code(), crate::exit::USAGE);
    }
}
