//! The harness: start the in-memory bus, run services on it, drive them,
//! and observe what they published.

use std::sync::Arc;
use std::time::Duration;

use bus_core::{Exchange, new_conversation_id};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::broker::Broker;
use super::record::{DeadLetter, Published};
use super::server;
use crate::{
    CallError, CallOptions, Client, PublishError, Publisher, ReconnectPolicy, Reply, RunError,
    Service, ServiceBuilder, ServiceHandle, ServiceState,
};

/// How long the harness waits for a service, client or publisher to be
/// ready on the in-memory bus (it is local: anything longer is a bug).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A fault to inject into the in-memory bus.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The broker nacks the next `n` publishes instead of confirming them.
    NackPublishes(u32),
    /// Every connection is closed with `connection.close` 320
    /// (CONNECTION_FORCED), as `rabbitmqctl close_connection` does.
    CloseConnections,
    /// Every connection's socket is shut without a word, as when the
    /// network fails.
    DropConnections,
    /// A queue is deleted under its consumers, who get a `basic.cancel`.
    DeleteQueue(String),
}

/// Why the harness could not publish or call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// The harness's own publisher or client could not start.
    #[error("the test kit's connection did not start: {0}")]
    Start(#[from] RunError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The call failed (timeout, unroutable...).
    #[error(transparent)]
    Call(#[from] CallError),
}

/// `wait_idle` or `wait_for` ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("the in-memory bus did not settle within {0:?}")]
pub struct IdleTimeout(pub Duration);

/// An in-memory bus, with a harness to drive and observe it. See the
/// [module documentation](crate::testing).
///
/// Dropping it stops the broker; services still running on it then
/// reconnect in vain, so stop them first (or let their handles drop).
pub struct MemoryBus {
    broker: Arc<Broker>,
    url: String,
    stop: CancellationToken,
    client: OnceCell<Client>,
    publisher: OnceCell<Publisher>,
}

impl MemoryBus {
    /// Starts a broker on a free loopback port.
    pub async fn start() -> std::io::Result<MemoryBus> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let broker = Arc::new(Broker::default());
        let stop = CancellationToken::new();
        tokio::spawn(server::listen(listener, Arc::clone(&broker), stop.clone()));
        Ok(MemoryBus {
            broker,
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            stop,
            client: OnceCell::new(),
            publisher: OnceCell::new(),
        })
    }

    /// The bus's URL, for anything that takes one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A builder for a service on this bus, with test-friendly delays: it
    /// reconnects within 250 ms and publishes a nacked message again after
    /// 100 ms (instead of eventail's 1 s steps and 15 s), so that tests of
    /// those paths take milliseconds.
    pub fn service(&self, name: &str) -> ServiceBuilder {
        ServiceBuilder::new(name)
            .url(&self.url)
            .retry_delay(Duration::from_millis(100))
            .reconnect(ReconnectPolicy::linear(
                Duration::from_millis(50),
                Duration::from_millis(250),
            ))
    }

    /// Starts a service on this bus and waits until it consumes. The
    /// builder's URLs are replaced by the bus's.
    pub async fn start_service<S: Service>(
        &self,
        builder: ServiceBuilder,
        service: S,
    ) -> Result<ServiceHandle, RunError> {
        let handle = builder.url(&self.url).start(service)?;
        if !handle.ready_or_shut_down(READY_TIMEOUT).await {
            return Err(RunError::Config(format!(
                "the service did not become ready on the in-memory bus within {READY_TIMEOUT:?}"
            )));
        }
        Ok(handle)
    }

    /// Publishes an event (a fresh conversation id) and waits for its confirm.
    pub async fn publish_event<T: Serialize + ?Sized>(
        &self,
        routing_key: &str,
        payload: &T,
    ) -> Result<(), KitError> {
        let publisher = self.publisher().await?;
        Ok(publisher
            .publish_event(routing_key, payload, &new_conversation_id())
            .await?)
    }

    /// Publishes a configuration and waits for its confirm.
    pub async fn publish_configuration<T: Serialize + ?Sized>(
        &self,
        routing_key: &str,
        payload: &T,
    ) -> Result<(), KitError> {
        let publisher = self.publisher().await?;
        Ok(publisher
            .publish_configuration(routing_key, payload)
            .await?)
    }

    /// Sends a command (`service.Command`) and waits up to `timeout` for
    /// its result.
    pub async fn send_command<T: Serialize + ?Sized>(
        &self,
        command: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<Reply, KitError> {
        let client = self
            .client
            .get_or_try_init(|| Client::connect(self.service("testkit-client"), READY_TIMEOUT))
            .await?;
        let options = CallOptions {
            timeout,
            conversation_id: None,
        };
        Ok(client.call_with(command, payload, options).await?)
    }

    async fn publisher(&self) -> Result<&Publisher, RunError> {
        self.publisher
            .get_or_try_init(|| async {
                let publisher = self.service("testkit-publisher").start_publisher()?;
                publisher
                    .health()
                    .wait_for(ServiceState::Ready, READY_TIMEOUT)
                    .await;
                Ok::<_, RunError>(publisher)
            })
            .await
    }

    /// Everything published on the bus so far, in order: events, commands,
    /// results, configurations and logs, the harness's own included.
    pub fn published(&self) -> Vec<Published> {
        self.broker.published()
    }

    /// The messages published on one of the bus exchanges.
    pub fn published_on(&self, exchange: Exchange) -> Vec<Published> {
        self.published()
            .into_iter()
            .filter(|p| p.is_on(exchange))
            .collect()
    }

    /// The commands published (results excluded).
    pub fn commands(&self) -> Vec<Published> {
        self.published()
            .into_iter()
            .filter(Published::is_command)
            .collect()
    }

    /// The results published.
    pub fn results(&self) -> Vec<Published> {
        self.published()
            .into_iter()
            .filter(Published::is_result)
            .collect()
    }

    /// The messages dead-lettered so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.broker.dead_letters()
    }

    /// Dead-letters what `queue`'s consumers reject to `exchange`, like a
    /// RabbitMQ policy with `dead-letter-exchange` on that queue.
    pub fn dead_letter(&self, queue: &str, exchange: &str) {
        self.broker.set_dead_letter(queue, exchange);
    }

    /// Ready messages in a queue, `None` when it does not exist.
    pub fn queue_depth(&self, queue: &str) -> Option<usize> {
        self.broker.queue_depth(queue)
    }

    /// Open client connections.
    pub fn connection_count(&self) -> usize {
        self.broker.connection_count()
    }

    /// Injects a fault.
    pub fn inject(&self, failure: Failure) {
        match failure {
            Failure::NackPublishes(count) => self.broker.nack_next_publishes(count),
            Failure::CloseConnections => self.broker.close_connections(false),
            Failure::DropConnections => self.broker.close_connections(true),
            Failure::DeleteQueue(queue) => {
                self.broker.delete_queue_by_operator(&queue);
            }
        }
    }

    /// Waits until the bus is idle: no delivery waits for its ack and no
    /// queue with a consumer holds a message. What a service does later on
    /// its own (timers) is not foreseen.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<(), IdleTimeout> {
        self.wait_until(timeout, |broker| broker.is_idle()).await
    }

    /// Waits until at least `count` published messages satisfy `filter`,
    /// and returns them.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
        filter: impl Fn(&Published) -> bool,
    ) -> Result<Vec<Published>, IdleTimeout> {
        self.wait_until(timeout, |broker| broker.count_published(&filter) >= count)
            .await?;
        Ok(self.published().into_iter().filter(|p| filter(p)).collect())
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Broker) -> bool,
    ) -> Result<(), IdleTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.broker.changed.notified();
            if done(&self.broker) {
                return Ok(());
            }
            // The notification can be missed between the check and the
            // wait; the short tick bounds that.
            let tick = tokio::time::sleep(Duration::from_millis(20));
            tokio::select! {
                _ = changed => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return if done(&self.broker) { Ok(()) } else { Err(IdleTimeout(timeout)) };
                }
            }
        }
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
