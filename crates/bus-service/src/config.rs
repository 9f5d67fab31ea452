//! Everything a service can be configured with, and eventail's defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use bus_core::{BrokerUrl, Codec, Value};

use crate::observe::Observer;
use crate::reconnect::ReconnectPolicy;

/// The settings of a running service. Built with
/// [`ServiceBuilder`](crate::ServiceBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) urls: Vec<BrokerUrl>,
    pub(crate) event_keys: Vec<String>,
    pub(crate) command_keys: Vec<String>,
    pub(crate) config_keys: Vec<String>,
    pub(crate) prefetch: u16,
    pub(crate) codec: Codec,
    pub(crate) exclusive_queues: bool,
    pub(crate) queue_arguments: BTreeMap<String, Value>,
    pub(crate) concurrency: usize,
    pub(crate) heartbeat: u16,
    pub(crate) connection_timeout: Duration,
    pub(crate) confirm_timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) stop_timeout: Duration,
    pub(crate) connection_name: Option<String>,
    pub(crate) observer: Observer,
    pub(crate) fail_fast: bool,
}

/// eventail's prefetch count.
pub const DEFAULT_PREFETCH: u16 = 3;
/// eventail's heartbeat, in seconds.
pub const DEFAULT_HEARTBEAT: u16 = 60;
/// eventail's `BLOCKED_TIMEOUT`: how long publisher confirms may stop
/// arriving before the connection is considered dead.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(3600);
/// eventail's `RETRY_DELAY` before a nacked message is published again.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(15);

impl Config {
    pub(crate) fn new(name: &str) -> Config {
        Config {
            name: name.to_owned(),
            urls: Vec::new(),
            event_keys: Vec::new(),
            command_keys: Vec::new(),
            config_keys: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            codec: Codec::Cbor,
            exclusive_queues: false,
            queue_arguments: BTreeMap::new(),
            concurrency: 1,
            heartbeat: DEFAULT_HEARTBEAT,
            connection_timeout: Duration::from_secs(10),
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            retry_delay: DEFAULT_RETRY_DELAY,
            reconnect: ReconnectPolicy::default(),
            stop_timeout: Duration::from_secs(30),
            connection_name: None,
            observer: Observer::default(),
            fail_fast: false,
        }
    }

    /// `<service>@<hostname>:<pid>`, so operators can find the connection
    /// in `rabbitmqctl list_connections client_properties`.
    pub(crate) fn connection_name(&self) -> String {
        self.connection_name.clone().unwrap_or_else(|| {
            format!(
                "{}@{}:{}",
                self.name,
                crate::logs::hostname(),
                std::process::id()
            )
        })
    }
}
