//! A raw amqprs connection that drives a service and watches what it does
//! on the wire, as another program on the bus would. Shared by the
//! integration tests of this crate; each uses only part of it.
#![allow(dead_code)]

pub(crate) mod trace;

use std::time::Duration;

use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, Channel, ConfirmSelectArguments, ConsumerMessage,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use amqprs::{BasicProperties, FieldTable, FieldValue};
use bus_core::{
    CONVERSATION_ID_HEADER, Codec, Exchange, OutgoingMessage, Properties, STATUS_HEADER, Value,
};
use bus_service::raw::{BrokerEvent, ChannelEvents};
use bus_service::{
    Context, HandlerResult, Message, Outcome, Service, ServiceBuilder, ServiceHandle, ServiceState,
};
use bus_test_support::amqp_props::{from_amqprs, to_amqprs};
use bus_test_support::{amqp_url, connect, rabbitmqctl, unique};
use tokio::sync::mpsc;

/// How long anything expected may take to show up.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// AMQP reply codes the tests look for in channel closes.
pub(crate) const NOT_FOUND: u16 = 404;
pub(crate) const RESOURCE_LOCKED: u16 = 405;
pub(crate) const PRECONDITION_FAILED: u16 = 406;

/// A message the probe received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) redelivered: bool,
    /// The properties as amqprs read them, to check what is absent.
    pub(crate) raw: BasicProperties,
    pub(crate) properties: Properties,
    pub(crate) body: Vec<u8>,
}

impl Received {
    fn from_consumer(message: ConsumerMessage) -> Received {
        let deliver = message.deliver.expect("a delivery");
        let raw = message.basic_properties.unwrap_or_default();
        Received {
            exchange: deliver.exchange().clone(),
            routing_key: deliver.routing_key().clone(),
            redelivered: deliver.redelivered(),
            properties: from_amqprs(&raw),
            raw,
            body: message.content.unwrap_or_default(),
        }
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.properties.headers.get(name).and_then(Value::as_str)
    }

    pub(crate) fn conversation_id(&self) -> Option<&str> {
        self.header(CONVERSATION_ID_HEADER)
    }

    pub(crate) fn status(&self) -> Option<&str> {
        self.header(STATUS_HEADER)
    }

    /// The body decoded with the codec its content type names.
    pub(crate) fn value(&self) -> Value {
        Codec::for_content_type(self.properties.content_type.as_deref())
            .decode_value(&self.body)
            .expect("a decodable body")
    }

    /// The body decoded into `T`.
    pub(crate) fn payload<T: serde::de::DeserializeOwned>(&self) -> T {
        Codec::for_content_type(self.properties.content_type.as_deref())
            .decode(&self.body)
            .expect("a body of the expected type")
    }

    /// The body of a log record, as a JSON object.
    pub(crate) fn gelf(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_slice(&self.body).expect("a JSON log record") {
            serde_json::Value::Object(map) => map,
            other => panic!("a log record is a JSON object, got {other}"),
        }
    }

    /// The first `x-death` entry of a dead letter, as `(field, value)` pairs.
    pub(crate) fn x_death(&self) -> Value {
        match self.properties.headers.get("x-death") {
            Some(Value::Array(entries)) if !entries.is_empty() => entries[0].clone(),
            other => panic!("expected an x-death header, got {other:?}"),
        }
    }
}

/// The messages of an exclusive queue the probe consumes with auto-ack.
pub(crate) struct Listener {
    pub(crate) queue: String,
    rx: mpsc::UnboundedReceiver<ConsumerMessage>,
}

impl Listener {
    /// The next message, or a panic naming `what` after [`WAIT`].
    pub(crate) async fn next(&mut self, what: &str) -> Received {
        let message = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
            .unwrap_or_else(|| panic!("consumer closed while waiting for {what}"));
        Received::from_consumer(message)
    }

    /// The next message `pick` accepts; the others are dropped.
    pub(crate) async fn next_where(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Received) -> bool,
    ) -> Received {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
                .unwrap_or_else(|| panic!("consumer closed while waiting for {what}"));
            let received = Received::from_consumer(message);
            if pick(&received) {
                return received;
            }
        }
    }

    /// Whatever arrives within `window`.
    pub(crate) async fn drain_for(&mut self, window: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(Received::from_consumer(message));
        }
        out
    }
}

/// What the broker answered to a publish on a confirm channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `basic.return`, with its reply code and routing key.
    Returned(u16, String),
    /// `basic.ack`.
    Acked,
    /// `basic.nack`.
    Nacked,
}

/// The probe's own connection to the broker.
pub(crate) struct Probe {
    connection: Connection,
    channel: Channel,
}

impl Probe {
    /// Connects to the test broker.
    pub(crate) async fn open() -> Probe {
        Probe::open_at(&amqp_url()).await
    }

    /// Connects to the broker at `url`.
    pub(crate) async fn open_at(url: &str) -> Probe {
        let connection = connect(url, &unique("probe"))
            .await
            .expect("probe connects");
        let channel = connection.open_channel(None).await.expect("probe channel");
        channel
            .register_callback(ChannelEvents(mpsc::unbounded_channel().0))
            .await
            .expect("callback");
        Probe {
            connection,
            channel,
        }
    }

    /// The probe's main channel.
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Consumes a new exclusive queue bound to `exchange` with `keys`.
    pub(crate) async fn listen<K: AsRef<str>>(&self, exchange: &str, keys: &[K]) -> Listener {
        let (queue, _, _) = self
            .channel
            .queue_declare(QueueDeclareArguments::exclusive_server_named())
            .await
            .expect("declare probe queue")
            .expect("declare-ok");
        for key in keys {
            self.channel
                .queue_bind(QueueBindArguments::new(&queue, exchange, key.as_ref()))
                .await
                .expect("bind probe queue");
        }
        self.consume(&queue).await
    }

    /// A fresh `reply_to` key `<prefix>-….Reply`, and a listener for the
    /// results sent to it.
    pub(crate) async fn listen_for_results(&self, prefix: &str) -> (String, Listener) {
        let reply_to = format!("{}.Reply", unique(prefix));
        let listener = self
            .listen("commands", std::slice::from_ref(&reply_to))
            .await;
        (reply_to, listener)
    }

    /// Consumes an existing queue.
    pub(crate) async fn consume(&self, queue: &str) -> Listener {
        let (_, rx) = self
            .channel
            .basic_consume_rx(
                BasicConsumeArguments::new(queue, "")
                    .manual_ack(false)
                    .finish(),
            )
            .await
            .expect("consume probe queue");
        Listener {
            queue: queue.to_owned(),
            rx,
        }
    }

    /// Declares a queue and binds it to `exchange` with `key`; returns its name.
    pub(crate) async fn declare_bound(
        &self,
        args: QueueDeclareArguments,
        exchange: &str,
        key: &str,
    ) -> String {
        bus_test_support::declare_bound(&self.channel, args, exchange, key).await
    }

    /// Declares an exclusive queue bound to `exchange` with `key` that holds
    /// at most `max_length` messages and makes RabbitMQ nack any publish
    /// beyond (`reject-publish`); returns its name.
    pub(crate) async fn declare_rejecting(
        &self,
        exchange: &str,
        key: &str,
        max_length: i32,
    ) -> String {
        let mut arguments = FieldTable::new();
        arguments.insert(
            "x-max-length".try_into().unwrap(),
            FieldValue::I(max_length),
        );
        arguments.insert(
            "x-overflow".try_into().unwrap(),
            FieldValue::S("reject-publish".try_into().unwrap()),
        );
        let args = QueueDeclareArguments::exclusive_server_named()
            .arguments(arguments)
            .finish();
        self.declare_bound(args, exchange, key).await
    }

    /// The number of ready messages in `queue`.
    pub(crate) async fn message_count(&self, queue: &str) -> u32 {
        let (_, messages, _) = self
            .channel
            .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
            .await
            .expect("passive declare")
            .expect("declare-ok");
        messages
    }

    /// Declares the bus's four exchanges, so that queues can be bound to
    /// them before any service has run.
    pub(crate) async fn declare_bus_exchanges(&self) {
        for exchange in Exchange::ALL {
            bus_service::raw::declare_exchange(&self.channel, exchange)
                .await
                .expect("declare a bus exchange");
        }
    }

    /// Declares a non-durable exchange that goes away with its last binding.
    pub(crate) async fn declare_exchange(&self, name: &str, kind: &str) {
        self.channel
            .exchange_declare(
                ExchangeDeclareArguments::new(name, kind)
                    .auto_delete(true)
                    .finish(),
            )
            .await
            .expect("declare exchange");
    }

    /// Publishes raw properties and body.
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &Properties,
        body: Vec<u8>,
    ) {
        self.channel
            .basic_publish(
                to_amqprs(properties),
                body,
                BasicPublishArguments::new(exchange, routing_key),
            )
            .await
            .expect("probe publish");
    }

    /// Publishes a message built by `bus_core`, as any eventail peer would.
    pub(crate) async fn send(&self, message: &OutgoingMessage) {
        self.publish(
            message.exchange.name(),
            &message.routing_key,
            &message.properties,
            message.body.clone(),
        )
        .await;
    }

    /// Sends a CBOR command.
    pub(crate) async fn send_command(
        &self,
        command: &str,
        payload: &Value,
        conversation_id: &str,
        reply_to: &str,
        correlation_id: &str,
    ) {
        let body = Codec::Cbor.encode_value(payload).expect("encode");
        let message = OutgoingMessage::command(
            command,
            Codec::Cbor,
            body,
            conversation_id,
            reply_to,
            correlation_id,
        )
        .expect("valid command");
        self.send(&message).await;
    }

    /// Publishes a CBOR event.
    pub(crate) async fn publish_event(&self, event: &str, payload: &Value, conversation_id: &str) {
        let body = Codec::Cbor.encode_value(payload).expect("encode");
        let message =
            OutgoingMessage::event(event, Codec::Cbor, body, conversation_id).expect("valid");
        self.send(&message).await;
    }

    /// Publishes a CBOR configuration.
    pub(crate) async fn publish_configuration(&self, name: &str, payload: &Value) {
        let body = Codec::Cbor.encode_value(payload).expect("encode");
        let message = OutgoingMessage::configuration(name, Codec::Cbor, body).expect("valid");
        self.send(&message).await;
    }

    /// Publishes a mandatory message on a fresh channel in confirm mode;
    /// returns what the broker answered, up to and including its confirm.
    pub(crate) async fn publish_mandatory(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &Properties,
        body: Vec<u8>,
    ) -> Vec<Answer> {
        let (channel, mut events) = self.fresh_channel().await;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .expect("confirm mode");
        channel
            .basic_publish(
                to_amqprs(properties),
                body,
                BasicPublishArguments::new(exchange, routing_key)
                    .mandatory(true)
                    .finish(),
            )
            .await
            .expect("mandatory publish");
        let mut answers = Vec::new();
        while !answers.contains(&Answer::Acked) && !answers.contains(&Answer::Nacked) {
            let event = tokio::time::timeout(WAIT, events.recv())
                .await
                .unwrap_or_else(|_| panic!("no confirm within {WAIT:?}: {answers:?}"))
                .expect("channel open");
            answers.extend(match event {
                BrokerEvent::Ack { .. } => Some(Answer::Acked),
                BrokerEvent::Nack { .. } => Some(Answer::Nacked),
                BrokerEvent::Returned(r) => Some(Answer::Returned(r.reply_code, r.routing_key)),
                _ => None,
            });
        }
        let _ = channel.close().await;
        answers
    }

    /// Runs `declare` on a fresh channel: `Ok` if the broker accepts it,
    /// or the reply code it closed the channel with.
    pub(crate) async fn try_declare_queue(&self, args: QueueDeclareArguments) -> Result<(), u16> {
        let (channel, mut events) = self.fresh_channel().await;
        let result = channel.queue_declare(args).await;
        Probe::outcome(channel, result.map(|_| ()), &mut events).await
    }

    /// Like [`Probe::try_declare_queue`], for an exchange.
    pub(crate) async fn try_declare_exchange(
        &self,
        args: ExchangeDeclareArguments,
    ) -> Result<(), u16> {
        let (channel, mut events) = self.fresh_channel().await;
        let result = channel.exchange_declare(args).await;
        Probe::outcome(channel, result, &mut events).await
    }

    /// Whether a queue exists (a passive declare succeeds).
    pub(crate) async fn queue_exists(&self, name: &str) -> bool {
        match self
            .try_declare_queue(QueueDeclareArguments::new(name).passive(true).finish())
            .await
        {
            Ok(()) => true,
            Err(NOT_FOUND) => false,
            Err(code) => panic!("passive declare of {name}: unexpected reply code {code}"),
        }
    }

    /// A new channel, and what the broker tells it (the runtime's own
    /// forwarding of channel callbacks).
    async fn fresh_channel(&self) -> (Channel, mpsc::UnboundedReceiver<BrokerEvent>) {
        let channel = self
            .connection
            .open_channel(None)
            .await
            .expect("open channel");
        let (events, events_rx) = mpsc::unbounded_channel();
        channel
            .register_callback(ChannelEvents(events))
            .await
            .expect("callback");
        (channel, events_rx)
    }

    async fn outcome(
        channel: Channel,
        result: Result<(), amqprs::error::Error>,
        events: &mut mpsc::UnboundedReceiver<BrokerEvent>,
    ) -> Result<(), u16> {
        match result {
            Ok(()) => {
                let _ = channel.close().await;
                Ok(())
            }
            Err(error) => {
                let close = async {
                    while let Some(event) = events.recv().await {
                        if let BrokerEvent::ChannelClosed { code, .. } = event {
                            return Some(code);
                        }
                    }
                    None
                };
                let code = tokio::time::timeout(WAIT, close).await.ok().flatten();
                Err(code.unwrap_or_else(|| panic!("refused without a channel close: {error}")))
            }
        }
    }

    /// Closes the connection; exclusive queues go with it.
    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}

/// Starts `service` and waits until it is `state`.
pub(crate) async fn start_in_state<S: bus_service::Service>(
    builder: ServiceBuilder,
    service: S,
    state: ServiceState,
) -> ServiceHandle {
    let name = builder.name().to_owned();
    let handle = builder.start(service).expect("service starts");
    assert!(
        handle.health().wait_for(state, WAIT).await,
        "service {name} not {state} within {WAIT:?}: {:?}",
        handle.health()
    );
    handle
}

/// A builder for `name` on the test broker.
pub(crate) fn builder(name: &str) -> ServiceBuilder {
    ServiceBuilder::new(name).url(&amqp_url())
}

/// Starts `service` and waits until it is ready.
pub(crate) async fn start<S: bus_service::Service>(
    builder: ServiceBuilder,
    service: S,
) -> ServiceHandle {
    start_in_state(builder, service, ServiceState::Ready).await
}

/// Stops a service and checks it stopped cleanly.
pub(crate) async fn stop(handle: ServiceHandle) {
    tokio::time::timeout(WAIT * 3, handle.stop())
        .await
        .expect("service stops in time")
        .expect("service stops cleanly");
}

/// The virtual host of the test broker.
pub(crate) fn vhost() -> String {
    amqp_url()
        .parse::<bus_core::BrokerUrl>()
        .map(|url| url.vhost)
        .expect("a valid broker URL")
}

/// `rabbitmqctl list_queues` rows with `columns` (plus `name`) for the
/// queues `pick` accepts.
pub(crate) fn queue_rows(columns: &[&str], pick: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
    let vhost = vhost();
    let mut args = vec!["-q", "list_queues", "-p", &vhost, "name"];
    args.extend_from_slice(columns);
    args.extend_from_slice(&["--formatter", "json"]);
    let out = rabbitmqctl::run(&args).expect("rabbitmqctl list_queues");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON rows");
    rows.into_iter()
        .filter(|row| pick(row["name"].as_str().unwrap_or_default()))
        .collect()
}

/// The `rabbitmqctl list_queues` row of one queue, if it exists.
pub(crate) fn queue_row(name: &str, columns: &[&str]) -> Option<serde_json::Value> {
    queue_rows(columns, |n| n == name).into_iter().next()
}

/// Polls `rabbitmqctl` until `check` accepts the row of `queue`, and
/// returns that row; panics after [`WAIT`] with the last row seen.
pub(crate) async fn wait_for_queue_row(
    queue: &str,
    columns: &[&str],
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    // Each rabbitmqctl call boots an Erlang VM: slow on a busy machine.
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let row = queue_row(queue, columns);
        if let Some(row) = row.as_ref().filter(|r| check(r)) {
            return row.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("queue {queue}: condition not met in time; last row: {row:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `condition` until it holds, or fails the test after [`WAIT`] × 2.
pub(crate) async fn wait_until(condition: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `queue` holds no message, ready or unacked.
pub(crate) async fn wait_until_empty(queue: &str) {
    wait_for_queue_row(
        queue,
        &["messages_ready", "messages_unacknowledged"],
        |row| row["messages_ready"] == 0 && row["messages_unacknowledged"] == 0,
    )
    .await;
}

/// For each `(exchange, routing key)`, the queues bound with it, from one
/// `rabbitmqctl list_bindings`.
pub(crate) fn bound_queues(bindings: &[(&str, &str)]) -> Vec<Vec<String>> {
    let vhost = vhost();
    let out = rabbitmqctl::run(&[
        "-q",
        "list_bindings",
        "-p",
        &vhost,
        "source_name",
        "destination_name",
        "destination_kind",
        "routing_key",
        "--formatter",
        "json",
    ])
    .expect("rabbitmqctl list_bindings");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON rows");
    bindings
        .iter()
        .map(|(exchange, routing_key)| {
            rows.iter()
                .filter(|r| {
                    r["source_name"] == *exchange
                        && r["routing_key"] == *routing_key
                        && r["destination_kind"] == "queue"
                })
                .filter_map(|r| r["destination_name"].as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// A text field of a CBOR/JSON map payload.
pub(crate) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text {key:?} in {value}"))
}

/// A service that publishes `copies` events `event` for each command it
/// handles, with the command's payload and conversation.
pub(crate) struct Fanout {
    pub(crate) event: String,
    pub(crate) copies: usize,
}

impl Service for Fanout {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        let payload = msg.value()?;
        for _ in 0..self.copies {
            ctx.publish_event(&self.event, &payload, ctx.conversation_id())
                .await?;
        }
        Ok(Outcome::Done)
    }
}

/// A service that hands every event, command and result to the test, and
/// acks it.
pub(crate) struct Recorder(mpsc::UnboundedSender<Message>);

/// A [`Recorder`] and the receiving end of what it records.
pub(crate) fn recorder() -> (Recorder, Recorded) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Recorder(tx), Recorded(rx))
}

impl Service for Recorder {
    async fn handle_event(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let _ = self.0.send(msg);
        Ok(Outcome::Done)
    }
    async fn handle_command(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let _ = self.0.send(msg);
        Ok(Outcome::Done)
    }
    async fn handle_result(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let _ = self.0.send(msg);
        Ok(Outcome::Done)
    }
}

/// What a [`Recorder`] handled.
pub(crate) struct Recorded(mpsc::UnboundedReceiver<Message>);

impl Recorded {
    /// The next handled message, or a panic naming `what` after [`WAIT`].
    pub(crate) async fn next(&mut self, what: &str) -> Message {
        tokio::time::timeout(WAIT, self.0.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} not handled within {WAIT:?}"))
            .expect("service running")
    }

    /// Messages handled so far, without waiting.
    pub(crate) fn so_far(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(msg) = self.0.try_recv() {
            out.push(msg);
        }
        out
    }
}
