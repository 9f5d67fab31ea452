//! `raw-echo`: the `pong` service written straight on amqprs, with no
//! runtime, as the benchmark's baseline (`cargo xtask bench`).
//!
//! Same semantics as the `pong` example: it consumes `pong.commands`
//! (bound to `pong.EchoMessage`) with prefetch 10, answers each command
//! with a persistent, mandatory success result `{"echo": TEXT in upper
//! case}` on a publisher-confirm channel, logs INFO "Echoing" on `logs`
//! through a second channel without confirms, and acks each command only
//! once its result is confirmed. It is pipelined like the runtime: the
//! next delivery is handled without waiting for earlier confirms, and one
//! `multiple` ack covers every delivery whose result is confirmed.
//!
//! Payloads and GELF records are built with bus-core, as the runtime does,
//! so the comparison measures the runtime, not the codecs. What it leaves
//! out is what a real service needs and a ceiling does not: reconnection,
//! republishing after a nack (a nack ends it), dead-lettering, timers.
//!
//! ```text
//! cargo run --release -p raw-echo -- [AMQP_URL]
//! ```

mod pending;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicNackArguments, BasicPublishArguments,
    BasicQosArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use bus_core::{
    BrokerUrl, CONVERSATION_ID_HEADER, Codec, DEFAULT_URL, Exchange, GelfRecord, LogLevel,
    LogSource, PERSISTENT, STATUS_HEADER, commands_queue,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::pending::Pending;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SERVICE: &str = "pong";
const COMMAND: &str = "pong.EchoMessage";
const PREFETCH: u16 = 10;

#[derive(Deserialize)]
struct EchoMessage {
    message: String,
}

#[derive(Serialize)]
struct Echo {
    echo: String,
}

/// What the broker tells the confirm channel.
enum Confirm {
    Ack { tag: u64, multiple: bool },
    Nack,
    Closed(String),
}

struct Confirms(UnboundedSender<Confirm>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Confirm::Closed(close.to_string()));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Confirm::Closed("consumer cancelled".into()));
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Confirm::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {
        let _ = self.0.send(Confirm::Nack);
    }
    async fn publish_return(&mut self, _: &Channel, ret: Return, _: BasicProperties, _: Vec<u8>) {
        eprintln!("raw-echo: result returned: {ret}");
    }
}

// The same runtime flavour as the `pong` example, so that the comparison
// measures the runtime, not the scheduler.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_URL.into());
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raw-echo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), Error> {
    let url: BrokerUrl = url.parse()?;
    let connection = Connection::open(
        &OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password)
            .virtual_host(&url.vhost)
            .connection_name("raw-echo")
            .finish(),
    )
    .await?;
    let main = connection.open_channel(None).await?;
    let logs = connection.open_channel(None).await?;
    let (events, mut confirms) = unbounded_channel();
    main.register_callback(Confirms(events)).await?;
    for exchange in [Exchange::Commands, Exchange::Logs] {
        main.exchange_declare(
            ExchangeDeclareArguments::new(exchange.name(), Exchange::KIND)
                .durable(Exchange::DURABLE)
                .finish(),
        )
        .await?;
    }
    let queue = commands_queue(SERVICE);
    main.queue_declare(QueueDeclareArguments::durable_client_named(&queue))
        .await?;
    main.queue_bind(QueueBindArguments::new(
        &queue,
        Exchange::Commands.name(),
        COMMAND,
    ))
    .await?;
    main.basic_qos(BasicQosArguments::new(0, PREFETCH, false))
        .await?;
    main.confirm_select(ConfirmSelectArguments::default())
        .await?;
    let (_, mut deliveries) = main
        .basic_consume_rx(
            BasicConsumeArguments::new(&queue, "")
                .manual_ack(true)
                .finish(),
        )
        .await?;
    println!("raw-echo: consuming {queue}");

    let echo = Echoer::new();
    let mut pending = Pending::default();
    let mut seq = 0;
    loop {
        tokio::select! {
            Some(event) = confirms.recv() => match event {
                Confirm::Ack { tag, multiple } => {
                    if let Some(delivery_tag) = pending.confirm(tag, multiple) {
                        main.basic_ack(BasicAckArguments::new(delivery_tag, true)).await?;
                    }
                }
                Confirm::Nack => return Err("the broker nacked a result".into()),
                Confirm::Closed(why) => return Err(why.into()),
            },
            delivery = deliveries.recv() => {
                let Some(delivery) = delivery else {
                    return Err("the consumer stopped".into());
                };
                let Some(tag) = delivery.deliver.map(|d| d.delivery_tag()) else {
                    continue;
                };
                let props = delivery.basic_properties.unwrap_or_default();
                let body = delivery.content.unwrap_or_default();
                if echo.handle(&main, &logs, &props, &body).await? {
                    seq += 1;
                    pending.push(seq, tag);
                } else {
                    main.basic_nack(BasicNackArguments::new(tag, false, false)).await?;
                }
            }
        }
    }
}

/// What each command needs, built once.
struct Echoer {
    source: LogSource,
    conversation_key: amqprs::FieldName,
    status_key: amqprs::FieldName,
}

impl Echoer {
    fn new() -> Echoer {
        Echoer {
            source: LogSource {
                service: SERVICE.into(),
                hostname: gethostname::gethostname().to_string_lossy().into_owned(),
                pid: std::process::id(),
            },
            conversation_key: field_name(CONVERSATION_ID_HEADER),
            status_key: field_name(STATUS_HEADER),
        }
    }

    /// Logs and answers one command; `false` when it cannot be answered
    /// (no `reply_to`, or a payload that does not fit).
    async fn handle(
        &self,
        main: &Channel,
        logs: &Channel,
        props: &BasicProperties,
        body: &[u8],
    ) -> Result<bool, Error> {
        let conversation_id = props
            .headers()
            .and_then(|h| h.get(&self.conversation_key))
            .and_then(|v| match v {
                FieldValue::S(s) => Some(s.as_ref().clone()),
                _ => None,
            })
            .unwrap_or_default();
        let (Some(reply_to), Ok(command)) = (
            props.reply_to(),
            Codec::for_content_type(props.content_type().map(String::as_str))
                .decode::<EchoMessage>(body),
        ) else {
            return Ok(false);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let record = GelfRecord::new(
            &self.source,
            LogLevel::Info,
            "Echoing",
            format!("Sending back {}", command.message),
            conversation_id.clone(),
            now,
        );
        logs.basic_publish(
            BasicProperties::default(),
            record.to_bytes(),
            BasicPublishArguments::new(Exchange::Logs.name(), &record.routing_key()),
        )
        .await?;

        let result = Codec::Cbor.encode(&Echo {
            echo: command.message.to_uppercase(),
        })?;
        let mut headers = FieldTable::new();
        headers.insert(
            self.conversation_key.clone(),
            FieldValue::S(conversation_id.try_into()?),
        );
        headers.insert(
            self.status_key.clone(),
            FieldValue::S("success".try_into()?),
        );
        let mut result_props = BasicProperties::default();
        result_props
            .with_content_type(Codec::Cbor.content_type())
            .with_delivery_mode(PERSISTENT)
            .with_headers(headers);
        if let Some(correlation_id) = props.correlation_id() {
            result_props.with_correlation_id(correlation_id);
        }
        main.basic_publish(
            result_props.finish(),
            result,
            BasicPublishArguments::new(Exchange::Commands.name(), reply_to)
                .mandatory(true)
                .finish(),
        )
        .await?;
        Ok(true)
    }
}

fn field_name(name: &str) -> amqprs::FieldName {
    // Both names are short constants, well under the 255-byte limit.
    name.try_into().unwrap_or_default()
}
