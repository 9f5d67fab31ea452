//! Setting the broker up around a `bus` run: queues, raw messages, and
//! in-process services that answer commands.

use std::time::{Duration, Instant};

use amqprs::BasicProperties;
use amqprs::channel::{
    BasicGetArguments, BasicNackArguments, BasicPublishArguments, Channel,
    ExchangeDeclareArguments, ExchangeDeleteArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use bus_core::{OutgoingMessage, Properties, Status, Value};
use bus_service::{
    Context, HandlerResult, Message, Outcome, Service, ServiceBuilder, ServiceHandle, ServiceState,
};
use bus_test_support::amqp_props::{from_amqprs, to_amqprs};
use bus_test_support::{QueueCleanup, amqp_url};

/// A connection and a channel of the test's own.
pub(crate) struct Amqp {
    connection: Connection,
    pub(crate) channel: Channel,
}

/// A message fetched with `basic.get`.
pub(crate) struct Got {
    pub(crate) routing_key: String,
    pub(crate) exchange: String,
    pub(crate) redelivered: bool,
    pub(crate) delivery_tag: u64,
    pub(crate) properties: Properties,
    pub(crate) body: Vec<u8>,
}

impl Amqp {
    pub(crate) async fn open() -> Amqp {
        let connection = bus_test_support::connect(&amqp_url(), "bus-cli tests")
            .await
            .expect("connect");
        let channel = connection.open_channel(None).await.expect("channel");
        Amqp {
            connection,
            channel,
        }
    }

    /// [`Amqp::open`], with the four bus exchanges declared.
    pub(crate) async fn bus() -> Amqp {
        let amqp = Amqp::open().await;
        amqp.bus_exchanges().await;
        amqp
    }

    /// A durable, shared queue, as a service's.
    pub(crate) async fn queue(&self, name: &str) {
        self.channel
            .queue_declare(QueueDeclareArguments::durable_client_named(name))
            .await
            .expect("queue.declare");
    }

    /// A queue with arguments (e.g. max-length).
    pub(crate) async fn queue_with(&self, name: &str, arguments: amqprs::FieldTable) {
        self.channel
            .queue_declare(
                QueueDeclareArguments::durable_client_named(name)
                    .arguments(arguments)
                    .finish(),
            )
            .await
            .expect("queue.declare");
    }

    pub(crate) async fn bind(&self, queue: &str, exchange: &str, key: &str) {
        self.channel
            .queue_bind(QueueBindArguments::new(queue, exchange, key))
            .await
            .expect("queue.bind");
    }

    /// A topic exchange, not durable, deleted by [`Amqp::delete_exchange`].
    pub(crate) async fn exchange(&self, name: &str) {
        self.channel
            .exchange_declare(ExchangeDeclareArguments::new(name, "topic"))
            .await
            .expect("exchange.declare");
    }

    /// The four bus exchanges, as every participant declares them.
    pub(crate) async fn bus_exchanges(&self) {
        for name in ["events", "commands", "logs", "configurations"] {
            self.channel
                .exchange_declare(
                    ExchangeDeclareArguments::new(name, "topic")
                        .durable(true)
                        .finish(),
                )
                .await
                .expect("exchange.declare");
        }
    }

    pub(crate) async fn delete_exchange(&self, name: &str) {
        let _ = self
            .channel
            .exchange_delete(ExchangeDeleteArguments::new(name))
            .await;
    }

    /// Publishes, and makes sure the broker has it before returning: the
    /// test may then block its thread waiting for a `bus` process, which
    /// would leave the message in amqprs's outgoing queue.
    pub(crate) async fn publish(&self, exchange: &str, key: &str, props: &Properties, body: &[u8]) {
        self.publish_raw(exchange, key, to_amqprs(props), body)
            .await;
    }

    /// [`Amqp::publish`] with raw amqprs properties.
    pub(crate) async fn publish_raw(
        &self,
        exchange: &str,
        key: &str,
        props: BasicProperties,
        body: &[u8],
    ) {
        self.channel
            .basic_publish(
                props,
                body.to_vec(),
                BasicPublishArguments::new(exchange, key),
            )
            .await
            .expect("publish");
        // A synchronous method after the publish: once it is answered, the
        // broker has received the publish (frames on a channel are ordered).
        self.channel
            .exchange_declare(
                ExchangeDeclareArguments::new("amq.topic", "topic")
                    .passive(true)
                    .finish(),
            )
            .await
            .expect("round trip");
    }

    /// Ready messages in `queue`.
    pub(crate) async fn count(&self, queue: &str) -> u32 {
        let declared = self
            .channel
            .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
            .await
            .expect("passive queue.declare")
            .expect("declare-ok");
        declared.1
    }

    /// Waits until `queue` holds `n` ready messages.
    pub(crate) async fn wait_count(&self, queue: &str, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let count = self.count(queue).await;
            if count == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queue} holds {count} messages, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fetches one message, unacked.
    pub(crate) async fn get(&self, queue: &str) -> Option<Got> {
        let got = self
            .channel
            .basic_get(BasicGetArguments::new(queue))
            .await
            .expect("basic.get")?;
        let (ok, props, body) = got;
        Some(Got {
            routing_key: ok.routing_key().clone(),
            exchange: ok.exchange().clone(),
            redelivered: ok.redelivered(),
            delivery_tag: ok.delivery_tag(),
            properties: from_amqprs(&props),
            body,
        })
    }

    /// Dead-letters a fetched message (nack without requeue).
    pub(crate) async fn reject(&self, tag: u64) {
        self.channel
            .basic_nack(BasicNackArguments::new(tag, false, false))
            .await
            .expect("nack");
    }

    /// Puts every unacked message back.
    pub(crate) async fn requeue_all(&self, tag: u64) {
        self.channel
            .basic_nack(BasicNackArguments::new(tag, true, true))
            .await
            .expect("nack");
    }

    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}

/// Properties of a business message: content type, persistent, conversation.
pub(crate) fn props(content_type: &str, conversation_id: Option<&str>) -> Properties {
    let mut p = Properties {
        content_type: Some(content_type.into()),
        delivery_mode: Some(2),
        ..Properties::default()
    };
    if let Some(id) = conversation_id {
        p.headers.insert("conversation_id".into(), Value::from(id));
    }
    p
}

/// Answers `<name>.Echo` with its payload, byte for byte, `<name>.Fail`
/// with an error result, and never answers `<name>.Silent`.
struct Echo;

impl Service for Echo {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        match msg.routing_key().rsplit('.').next() {
            Some("Echo") => {
                let result = OutgoingMessage::result(
                    msg.reply_to().unwrap_or_default(),
                    &Status::Success,
                    msg.codec(),
                    msg.body().to_vec(),
                    msg.conversation_id(),
                    msg.correlation_id().unwrap_or_default(),
                )?;
                ctx.publish(result).await?
            }
            Some("Fail") => {
                ctx.reply_error(&serde_json::json!({"reason": "refused"}))
                    .await?
            }
            _ => {}
        }
        Ok(Outcome::Done)
    }
}

/// A running echo service named `name`, and the cleanup of its queue.
pub(crate) async fn start_echo(name: &str) -> (ServiceHandle, QueueCleanup) {
    let cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(name)]);
    let handle = ServiceBuilder::new(name)
        .url(&amqp_url())
        .command_keys([
            format!("{name}.Echo"),
            format!("{name}.Fail"),
            format!("{name}.Silent"),
        ])
        .start(Echo)
        .expect("start echo");
    assert!(
        handle
            .health()
            .wait_for(ServiceState::Ready, Duration::from_secs(10))
            .await,
        "echo service not ready"
    );
    (handle, cleanup)
}
