//! Where the test broker is, checked once per test process.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Duration;

use bus_core::BrokerUrl;

/// The broker URL used when `$AMQP_URL` is not set: the local broker with
/// RabbitMQ's default account.
///
/// It names `127.0.0.1` rather than `localhost` because `localhost` may
/// resolve to `::1` first, where a default RabbitMQ may not listen.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The URL of the test broker: `$AMQP_URL`, or [`DEFAULT_AMQP_URL`].
///
/// The first call in a process checks that something accepts TCP
/// connections at the URL's host and port; later calls reuse the answer.
///
/// # Panics
///
/// When the URL does not parse, or no broker listens there. The message
/// says `no broker at HOST:PORT: run: cargo xtask broker up`, so a test
/// without its broker fails with the fix instead of being skipped. No
/// message contains the password.
#[track_caller]
pub fn amqp_url() -> String {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    match CHECKED.get_or_init(|| check(configured_url())) {
        Ok(url) => url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// `$AMQP_URL` or the default, unchecked: for code that must work while
/// the broker is down, such as restarting it.
pub(crate) fn configured_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

fn check(url: String) -> Result<String, String> {
    let parsed: BrokerUrl = url.parse().map_err(|e| format!("invalid AMQP_URL: {e}"))?;
    if reachable(&parsed.address()) {
        Ok(url)
    } else {
        Err(format!(
            "no broker at {}: run: cargo xtask broker up",
            parsed.address()
        ))
    }
}

fn reachable(address: &str) -> bool {
    let Ok(addrs) = address.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_parses_to_the_local_broker() {
        let url: BrokerUrl = DEFAULT_AMQP_URL.parse().unwrap();
        assert_eq!(url.address(), "127.0.0.1:5672");
        assert_eq!(url.vhost, "/");
    }

    #[test]
    fn a_missing_broker_is_reported_with_the_fix_and_without_the_password() {
        let err = check("amqp://app:secret@127.0.0.1:1/%2f".into()).unwrap_err();
        assert_eq!(err, "no broker at 127.0.0.1:1: run: cargo xtask broker up");
        let err = check("amqp://app:secret@127.0.0.1:1?heartbeat=x".into()).unwrap_err();
        assert!(err.starts_with("invalid AMQP_URL"), "{err}");
        assert!(!err.contains("secret"));
    }

    #[test]
    fn a_closed_port_is_not_reachable() {
        // Port 1 (tcpmux) is unassigned on any sane test machine.
        assert!(!reachable("127.0.0.1:1"));
        assert!(!reachable("not a host name"));
    }
}
