//! The few broker operations the benchmark needs: who consumes a queue,
//! and deleting it between services.

use std::time::Duration;

use amqprs::channel::{Channel, QueueDeclareArguments, QueueDeleteArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use bus_core::BrokerUrl;
use tokio::runtime::Runtime;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on a runtime of its own: the rest of xtask is blocking code.
pub(crate) struct Rabbit {
    runtime: Runtime,
    connection: Connection,
    /// The server's version, for the report.
    pub(crate) version: String,
}

impl Rabbit {
    pub(crate) fn connect(url: &BrokerUrl) -> Result<Rabbit, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a Tokio runtime: {e}"))?;
        let mut args = OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password);
        args.virtual_host(&url.vhost)
            .connection_name("cargo xtask bench");
        let connection = runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, Connection::open(&args)).await })
            .map_err(|_| format!("no AMQP handshake from {url} within {TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let version = connection.server_properties().version().to_owned();
        Ok(Rabbit {
            runtime,
            connection,
            version,
        })
    }

    /// The number of consumers of `queue`, or `None` when it does not exist.
    pub(crate) fn consumers(&self, queue: &str) -> Result<Option<u32>, String> {
        // A passive declare of a missing queue closes the channel: hence a
        // fresh channel each time.
        let declared = self.on_new_channel(|channel| async move {
            channel
                .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
                .await
        })?;
        Ok(match declared {
            Ok(Some((_, _, consumers))) => Some(consumers),
            _ => None,
        })
    }

    /// Deletes `queue` and whatever it holds, if nobody consumes it.
    pub(crate) fn delete_unused(&self, queue: &str) -> Result<(), String> {
        self.on_new_channel(|channel| async move {
            channel
                .queue_delete(QueueDeleteArguments::new(queue).if_unused(true).finish())
                .await
        })?
        .map(|_| ())
        .map_err(|e| format!("cannot delete {queue}: {e}"))
    }

    /// Runs `operation` on a channel of its own, closed afterwards.
    fn on_new_channel<T, F, Fut>(&self, operation: F) -> Result<T, String>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = T>,
    {
        self.runtime.block_on(async {
            let channel = self
                .connection
                .open_channel(None)
                .await
                .map_err(|e| format!("cannot open a channel: {e}"))?;
            let result = operation(channel.clone()).await;
            let _ = channel.close().await;
            Ok(result)
        })
    }

    pub(crate) fn close(self) {
        let Rabbit {
            runtime,
            connection,
            ..
        } = self;
        let _ = runtime.block_on(connection.close());
    }
}
