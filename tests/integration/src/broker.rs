//! Looking at the broker from the side, with a plain amqprs connection:
//! queue depths and consumers, draining queues, dead letters, bus logs.

use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicGetArguments, BasicPublishArguments, Channel, ExchangeDeclareArguments,
    ExchangeDeleteArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::Connection;
use amqprs::{BasicProperties, FieldTable, FieldValue};
use bus_core::{Codec, Exchange};

use crate::echo::Work;

/// A side connection for inspecting and poking the broker.
pub struct Side {
    connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Side")
    }
}

/// A message read from a queue.
#[derive(Debug, Clone)]
pub struct Got {
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker had delivered it before.
    pub redelivered: bool,
    /// Its properties.
    pub properties: BasicProperties,
    /// Its body.
    pub body: Vec<u8>,
}

impl Got {
    /// The command number, if the body is a `Work` command.
    pub fn work_id(&self) -> Option<u64> {
        let codec = Codec::for_content_type(self.properties.content_type().map(String::as_str));
        codec.decode::<Work>(&self.body).ok().map(|w| w.id)
    }

    /// The `short_message` of a GELF log record.
    pub fn short_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["short_message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The `full_message` of a GELF log record.
    pub fn full_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["full_message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Side {
    /// Opens a side connection named `name`.
    pub async fn open(url: &str, name: &str) -> Side {
        let connection = bus_test_support::connect(url, name)
            .await
            .expect("side connection");
        let channel = connection.open_channel(None).await.expect("side channel");
        Side {
            connection,
            channel,
        }
    }

    /// Ready messages and consumers of `queue`, or `None` when it does
    /// not exist.
    pub async fn queue_state(&mut self, queue: &str) -> Option<(u32, u32)> {
        let args = QueueDeclareArguments::new(queue).passive(true).finish();
        match self.channel.queue_declare(args).await {
            Ok(Some((_, messages, consumers))) => Some((messages, consumers)),
            _ => {
                // A passive declare of a missing queue closes the channel.
                self.channel = self.connection.open_channel(None).await.expect("reopen");
                None
            }
        }
    }

    /// Waits until `queue` has `expected` ready messages and consumers
    /// (the broker requeues a closed connection's deliveries a moment
    /// after the close), for up to 10 s; returns the last state seen.
    pub async fn wait_queue_state(
        &mut self,
        queue: &str,
        expected: (u32, u32),
    ) -> Option<(u32, u32)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let state = self.queue_state(queue).await;
            if state == Some(expected) || tokio::time::Instant::now() >= deadline {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes `queue` (with its messages), under its consumers' feet.
    pub async fn delete_queue(&self, queue: &str) {
        self.channel
            .queue_delete(QueueDeleteArguments::new(queue))
            .await
            .expect("delete queue");
    }

    /// Deletes `exchange` (and every binding to it).
    pub async fn delete_exchange(&self, exchange: &str) {
        self.channel
            .exchange_delete(ExchangeDeleteArguments::new(exchange))
            .await
            .expect("delete exchange");
    }

    /// Takes every message from `queue`, acking each.
    pub async fn drain(&self, queue: &str) -> Vec<Got> {
        let mut out = Vec::new();
        while let Some((get, properties, body)) = self
            .channel
            .basic_get(BasicGetArguments::new(queue))
            .await
            .expect("basic.get")
        {
            self.channel
                .basic_ack(BasicAckArguments::new(get.delivery_tag(), false))
                .await
                .expect("ack");
            out.push(Got {
                routing_key: get.routing_key().clone(),
                redelivered: get.redelivered(),
                properties,
                body,
            });
        }
        out
    }

    /// Takes messages from `queue` until `n` arrived or `timeout` passed.
    pub async fn collect(&self, queue: &str, n: usize, timeout: Duration) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            let got = self.drain(queue).await;
            if got.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            out.extend(got);
        }
        out
    }

    /// An exclusive queue (gone with this connection) bound to `exchange`
    /// with `key`.
    pub async fn bound_queue(&self, exchange: &str, key: &str) -> String {
        let args = QueueDeclareArguments::exclusive_server_named();
        self.declare_and_bind(args, exchange, key).await
    }

    /// A durable queue `name`, which outlives a broker restart, bound to
    /// `exchange` with `key`. The caller deletes it.
    pub async fn durable_bound_queue(&self, name: &str, exchange: &str, key: &str) {
        let args = QueueDeclareArguments::durable_client_named(name);
        self.declare_and_bind(args, exchange, key).await;
    }

    async fn declare_and_bind(
        &self,
        args: QueueDeclareArguments,
        exchange: &str,
        key: &str,
    ) -> String {
        bus_test_support::declare_bound(&self.channel, args, exchange, key).await
    }

    /// A queue that receives the bus logs of `service` at `level`
    /// (`WARNING`, `ERROR`, ...).
    pub async fn logs_of(&self, service: &str, level: &str) -> String {
        self.declare_exchanges().await;
        self.bound_queue(Exchange::Logs.name(), &format!("{service}.{level}"))
            .await
    }

    /// Declares the bus's exchanges, as every participant does.
    pub async fn declare_exchanges(&self) {
        for exchange in Exchange::ALL {
            bus_service::raw::declare_exchange(&self.channel, exchange)
                .await
                .expect("declare exchange");
        }
    }

    /// A dead-letter exchange named `name` (fanout, deleted with its last
    /// binding) and an exclusive queue that receives its dead letters.
    pub async fn dead_letter_queue(&self, name: &str) -> String {
        self.channel
            .exchange_declare(
                ExchangeDeclareArguments::new(name, "fanout")
                    .auto_delete(true)
                    .finish(),
            )
            .await
            .expect("declare dead-letter exchange");
        self.bound_queue(name, "").await
    }

    /// Publishes raw bytes, with headers given as text.
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        reply_to: Option<&str>,
        body: Vec<u8>,
    ) {
        let mut properties = BasicProperties::default();
        properties
            .with_content_type(content_type)
            .with_delivery_mode(2);
        if let Some(reply_to) = reply_to {
            properties
                .with_reply_to(reply_to)
                .with_correlation_id("raw");
        }
        if !headers.is_empty() {
            let mut table = FieldTable::new();
            for (k, v) in headers {
                table.insert(
                    (*k).try_into().expect("header name"),
                    FieldValue::S((*v).try_into().expect("header value")),
                );
            }
            properties.with_headers(table);
        }
        self.channel
            .basic_publish(
                properties,
                body,
                BasicPublishArguments::new(exchange, routing_key),
            )
            .await
            .expect("publish");
    }

    /// Closes the side connection.
    pub async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}
