//! Does a broker answer AMQP at the URL?

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};
use bus_core::BrokerUrl;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

const TCP_TIMEOUT: Duration = Duration::from_secs(2);
/// amqprs has no handshake timeout; a booting node accepts TCP long before
/// it completes a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a probe found at the broker's address.
pub(crate) enum Probe {
    /// A full AMQP handshake succeeded.
    Ready {
        /// The server's `version` property.
        version: String,
    },
    /// Nothing accepts TCP connections there.
    Absent(String),
    /// Something accepts TCP, but the AMQP handshake failed: a booting
    /// broker, wrong credentials, or another service on the port.
    NoHandshake(String),
}

/// Runs probes on a runtime of its own: the rest of xtask is blocking code.
pub(crate) struct Prober {
    runtime: Runtime,
}

impl Prober {
    pub(crate) fn new() -> Result<Prober, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a Tokio runtime: {e}"))?;
        Ok(Prober { runtime })
    }

    /// Connects, handshakes and closes again.
    pub(crate) fn probe(&self, url: &BrokerUrl) -> Probe {
        self.runtime.block_on(probe(url))
    }
}

async fn probe(url: &BrokerUrl) -> Probe {
    let address = url.address();
    match tokio::time::timeout(TCP_TIMEOUT, TcpStream::connect(address.as_str())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Probe::Absent(format!("nothing listens at {address}: {e}")),
        Err(_) => {
            return Probe::Absent(format!(
                "no TCP answer from {address} within {TCP_TIMEOUT:?}"
            ));
        }
    }
    if url.tls {
        return Probe::NoHandshake("amqps:// URLs are not supported by xtask".into());
    }
    let mut args = OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password);
    args.virtual_host(&url.vhost)
        .connection_name("cargo xtask probe");
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Connection::open(&args)).await {
        Ok(Ok(connection)) => {
            let version = connection.server_properties().version().to_owned();
            // A failed close leaves nothing behind: the socket goes with
            // the connection.
            let _ = connection.close().await;
            Probe::Ready { version }
        }
        Ok(Err(e)) => Probe::NoHandshake(format!("AMQP handshake with {address} failed: {e}")),
        Err(_) => Probe::NoHandshake(format!(
            "no AMQP handshake from {address} within {HANDSHAKE_TIMEOUT:?}"
        )),
    }
}
