//! What the integration tests of this crate share: starting a service on
//! the test broker and reading the runtime's trace. Each test binary uses
//! only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{
    BasicConsumeArguments, Channel, ConsumerMessage, ExchangeDeclareArguments, QueueBindArguments,
    QueueDeclareArguments,
};
use amqprs::connection::Connection;
use bus_service::bus_core::{Codec, Exchange, Properties};
use bus_service::{Service, ServiceBuilder, ServiceHandle, ServiceState, TraceEvent};
use bus_test_support::amqp_props::from_amqprs;
use bus_test_support::{amqp_url, connect, unique};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long anything expected may take to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Starts `service` on the test broker and waits until it consumes.
pub(crate) async fn start<S: Service>(builder: ServiceBuilder, service: S) -> ServiceHandle {
    let name = builder.name().to_owned();
    let handle = builder.url(&amqp_url()).start(service).expect("start");
    assert!(
        handle.health().wait_for(ServiceState::Ready, WAIT).await,
        "{name} not ready within {WAIT:?}: {:?}",
        handle.health().last_error()
    );
    handle
}

/// Waits until `done` holds, checking every 20 ms; panics with `what`
/// after [`WAIT`].
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(polled.await.is_ok(), "not within {WAIT:?}: {what}");
}

/// The runtime's trace, recorded in the order the runtime emitted it.
#[derive(Clone, Default)]
pub(crate) struct Trace(Arc<Mutex<Vec<TraceEvent>>>);

impl Trace {
    /// A builder that records into this trace.
    pub(crate) fn observe(&self, builder: ServiceBuilder) -> ServiceBuilder {
        let events = Arc::clone(&self.0);
        builder.observe(move |event| events.lock().unwrap().push(event.clone()))
    }

    pub(crate) fn events(&self) -> Vec<TraceEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The acks sent so far, as `(delivery_tag, multiple)`.
    pub(crate) fn acks(&self) -> Vec<(u64, bool)> {
        self.events()
            .iter()
            .filter_map(|event| match event {
                TraceEvent::Acked {
                    delivery_tag,
                    multiple,
                    ..
                } => Some((*delivery_tag, *multiple)),
                _ => None,
            })
            .collect()
    }

    /// The nacks sent so far, as `(delivery_tag, requeue)`.
    pub(crate) fn nacks(&self) -> Vec<(u64, bool)> {
        self.events()
            .iter()
            .filter_map(|event| match event {
                TraceEvent::Nacked {
                    delivery_tag,
                    requeue,
                    ..
                } => Some((*delivery_tag, *requeue)),
                _ => None,
            })
            .collect()
    }
}

/// Checks the ack-after-confirm rule on a trace of one session: every
/// delivery an ack covers (all unsettled ones up to its tag for a
/// `multiple` ack) has finished its handler, and every message that
/// handler published was confirmed before the ack. Returns the acked tags.
pub(crate) fn assert_acks_follow_confirms(trace: &[TraceEvent]) -> BTreeSet<u64> {
    let mut confirmed = BTreeSet::new();
    let mut outputs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut settled = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for (at, event) in trace.iter().enumerate() {
        match event {
            TraceEvent::Confirmed { id } => {
                confirmed.insert(*id);
            }
            TraceEvent::HandlerFinished {
                delivery_tag,
                outputs: ids,
                ..
            } => {
                outputs.insert(*delivery_tag, ids.clone());
            }
            TraceEvent::Nacked { delivery_tag, .. } => {
                settled.insert(*delivery_tag);
            }
            TraceEvent::Acked {
                delivery_tag,
                multiple,
                ..
            } => {
                let covered: Vec<u64> = if *multiple {
                    (1..=*delivery_tag)
                        .filter(|tag| !settled.contains(tag))
                        .collect()
                } else {
                    vec![*delivery_tag]
                };
                assert!(
                    !covered.is_empty(),
                    "event {at}: ack {delivery_tag} covers nothing"
                );
                for tag in covered {
                    let ids = outputs.get(&tag).unwrap_or_else(|| {
                        panic!("event {at}: delivery {tag} acked before its handler finished")
                    });
                    for id in ids {
                        assert!(
                            confirmed.contains(id),
                            "event {at}: delivery {tag} acked before its output {id} was confirmed"
                        );
                    }
                    assert!(
                        settled.insert(tag),
                        "event {at}: delivery {tag} settled twice"
                    );
                    acked.insert(tag);
                }
            }
            _ => {}
        }
    }
    acked
}

/// A message a [`Listener`] received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) routing_key: String,
    pub(crate) properties: Properties,
    pub(crate) body: Vec<u8>,
}

impl Received {
    /// The body, decoded with the codec of its content type.
    pub(crate) fn payload<T: DeserializeOwned>(&self) -> T {
        Codec::for_content_type(self.properties.content_type.as_deref())
            .decode(&self.body)
            .expect("a payload of the expected type")
    }
}

/// Another program on the bus: an exclusive queue of its own, bound to an
/// exchange, that sees what the services under test publish. The broker
/// deletes the queue with the listener's connection.
pub(crate) struct Listener {
    connection: Connection,
    channel: Channel,
    queue: String,
    exchange: String,
    deliveries: Option<UnboundedReceiver<ConsumerMessage>>,
}

impl Listener {
    /// Listens to `keys` on `exchange`, a durable topic exchange (as the
    /// bus's four are) declared if missing.
    pub(crate) async fn on(exchange: &str, keys: &[&str]) -> Listener {
        Listener::declare(exchange, true, keys).await
    }

    /// Listens to a dead-letter exchange of its own (see
    /// [`exchange`](Self::exchange)), deleted with the listener.
    pub(crate) async fn dead_letters() -> Listener {
        Listener::declare(&unique("dlx"), false, &["#"]).await
    }

    async fn declare(exchange: &str, durable: bool, keys: &[&str]) -> Listener {
        let connection = connect(&amqp_url(), &unique("listener"))
            .await
            .expect("connect");
        let channel = connection.open_channel(None).await.expect("channel");
        channel
            .exchange_declare(
                ExchangeDeclareArguments::new(exchange, Exchange::KIND)
                    .durable(durable)
                    .auto_delete(!durable)
                    .finish(),
            )
            .await
            .expect("declare exchange");
        let (queue, _, _) = channel
            .queue_declare(QueueDeclareArguments::exclusive_server_named())
            .await
            .expect("declare queue")
            .expect("declare-ok");
        for key in keys {
            channel
                .queue_bind(QueueBindArguments::new(&queue, exchange, key))
                .await
                .expect("bind");
        }
        Listener {
            connection,
            channel,
            queue,
            exchange: exchange.to_owned(),
            deliveries: None,
        }
    }

    /// The exchange it listens to.
    pub(crate) fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Messages in its queue not yet received.
    pub(crate) async fn waiting(&self) -> u32 {
        let mut args = QueueDeclareArguments::new(&self.queue);
        args.passive(true);
        let (_, count, _) = self
            .channel
            .queue_declare(args)
            .await
            .expect("passive declare")
            .expect("declare-ok");
        count
    }

    /// The next message, within [`WAIT`].
    pub(crate) async fn next(&mut self) -> Received {
        if self.deliveries.is_none() {
            let args = BasicConsumeArguments::new(&self.queue, &unique("listener"))
                .manual_ack(false)
                .finish();
            let (_, rx) = self.channel.basic_consume_rx(args).await.expect("consume");
            self.deliveries = Some(rx);
        }
        let deliveries = self.deliveries.as_mut().expect("consuming");
        let message = tokio::time::timeout(WAIT, deliveries.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing on {} within {WAIT:?}", self.exchange))
            .expect("consumer open");
        let deliver = message.deliver.expect("deliver");
        Received {
            routing_key: deliver.routing_key().clone(),
            properties: from_amqprs(&message.basic_properties.unwrap_or_default()),
            body: message.content.unwrap_or_default(),
        }
    }

    /// The next `count` messages.
    pub(crate) async fn take(&mut self, count: usize) -> Vec<Received> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.next().await);
        }
        out
    }

    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}
