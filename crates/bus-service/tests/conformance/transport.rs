//! The two transports the conformance behaviours run on, and the few
//! things whose setup differs between them.

use std::time::Duration;

use amqprs::channel::QueueDeleteArguments;
use bus_core::{commands_queue, events_queue};
use bus_service::testing::{Failure, MemoryBus};
use bus_service::{ReconnectPolicy, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, rabbitmqctl, unique};

use crate::probe::Probe;

/// Where a behaviour runs. Everything a behaviour does goes through the
/// runtime or raw AMQP at [`Transport::url`]; only what cannot be done the
/// same way on both is a method here.
pub(crate) trait Transport: Sized {
    /// A fresh transport for one test.
    async fn start() -> Self;

    /// The broker URL.
    fn url(&self) -> &str;

    /// Remembers `queues` to delete after the test (RabbitMQ keeps them).
    fn clean_up(&mut self, queues: [String; 2]);

    /// A unique service name; its shared queues go when the test ends.
    fn service_name(&mut self, prefix: &str) -> String {
        let name = unique(prefix);
        self.clean_up([events_queue(&name), commands_queue(&name)]);
        name
    }

    /// A builder for service `name` here, reconnecting quickly.
    fn builder(&self, name: &str) -> ServiceBuilder {
        ServiceBuilder::new(name)
            .url(self.url())
            .reconnect(ReconnectPolicy::linear(
                Duration::from_millis(50),
                Duration::from_millis(250),
            ))
    }

    /// A raw connection, with the bus exchanges declared (a fresh
    /// in-memory bus has none until a service starts).
    async fn probe(&self) -> Probe {
        let probe = Probe::open_at(self.url()).await;
        probe.declare_bus_exchanges().await;
        probe
    }

    /// From now on the broker nacks publishes of event `key` on confirm
    /// channels: at least `times` of them, and no more once
    /// [`Transport::accept_publishes`] returns.
    async fn refuse_publishes(&self, probe: &Probe, key: &str, times: u32) -> Refusal;

    /// Ends a [`Transport::refuse_publishes`].
    async fn accept_publishes(&self, probe: &Probe, refusal: Refusal);

    /// Closes the connections of service `name` with CONNECTION_FORCED, as
    /// an operator would. Others may go too: behaviours must not rely on
    /// any other connection surviving.
    async fn close_connections(&self, name: &str);
}

/// What [`Transport::accept_publishes`] undoes.
pub(crate) struct Refusal {
    /// The full queue that makes RabbitMQ nack, if any.
    full_queue: Option<String>,
}

/// The test kit's in-memory bus.
pub(crate) struct Memory {
    pub(crate) bus: MemoryBus,
}

impl Transport for Memory {
    async fn start() -> Memory {
        Memory {
            bus: MemoryBus::start().await.expect("the in-memory bus starts"),
        }
    }

    fn url(&self) -> &str {
        self.bus.url()
    }

    fn clean_up(&mut self, _queues: [String; 2]) {}

    /// Nacks exactly `times` publishes, whatever their key: behaviours
    /// publish nothing else on confirm channels meanwhile.
    async fn refuse_publishes(&self, _probe: &Probe, _key: &str, times: u32) -> Refusal {
        self.bus.inject(Failure::NackPublishes(times));
        Refusal { full_queue: None }
    }

    async fn accept_publishes(&self, _probe: &Probe, _refusal: Refusal) {}

    /// Closes every connection: the bus has no per-connection control.
    async fn close_connections(&self, _name: &str) {
        self.bus.inject(Failure::CloseConnections);
    }
}

/// The real RabbitMQ at `$AMQP_URL`.
pub(crate) struct Rabbit {
    url: String,
    cleanup: QueueCleanup,
}

impl Transport for Rabbit {
    async fn start() -> Rabbit {
        let url = amqp_url();
        Rabbit {
            cleanup: QueueCleanup::new(&url, Vec::<String>::new()),
            url,
        }
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn clean_up(&mut self, queues: [String; 2]) {
        for queue in queues {
            self.cleanup.add(queue);
        }
    }

    /// A queue bound to `key` that holds nothing and rejects what comes:
    /// RabbitMQ nacks a message any of its queues rejects.
    async fn refuse_publishes(&self, probe: &Probe, key: &str, _times: u32) -> Refusal {
        let full = probe.declare_rejecting("events", key, 0).await;
        Refusal {
            full_queue: Some(full),
        }
    }

    async fn accept_publishes(&self, probe: &Probe, refusal: Refusal) {
        if let Some(queue) = refusal.full_queue {
            probe
                .channel()
                .queue_delete(QueueDeleteArguments::new(&queue))
                .await
                .expect("delete the full queue");
        }
    }

    async fn close_connections(&self, name: &str) {
        let prefix = format!("{name}@");
        tokio::task::spawn_blocking(move || {
            let connections = rabbitmqctl::list_connections_with_names().expect("list");
            let pids: Vec<&String> = connections
                .iter()
                .filter(|(_, n)| n.starts_with(&prefix))
                .map(|(pid, _)| pid)
                .collect();
            assert!(!pids.is_empty(), "no connection named {prefix}...");
            for pid in pids {
                rabbitmqctl::close_connection(pid, "conformance test").expect("close");
            }
        })
        .await
        .expect("rabbitmqctl ran");
    }
}
