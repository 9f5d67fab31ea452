//! Reading a queue without consuming it: `basic.get` and a final requeue,
//! shared by `inspect` and `resurrect`.

use amqprs::BasicProperties;
use amqprs::channel::{BasicGetArguments, BasicNackArguments, Channel, QueueDeclareArguments};
use amqprs::connection::Connection;
use bus_service::raw::{BrokerEvent, ChannelEvents, ConnectionEvents, properties_from_amqp};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::broker::{self, Brokers};
use crate::exit::CliError;
use crate::view::Seen;

/// AMQP names are short strings: at most 255 bytes (amqprs panics beyond).
pub(crate) fn check_name(name: &str) -> Result<(), CliError> {
    if name.len() > 255 {
        return Err(CliError::Usage(format!(
            "queue name longer than 255 bytes: {}...",
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// A queue opened for reading, and what the broker says asynchronously.
pub(crate) struct OpenQueue {
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
    /// Ready messages when it was opened.
    pub(crate) count: u64,
    /// Confirms, returns and closes on the channel and connection.
    pub(crate) events: UnboundedReceiver<BrokerEvent>,
}

/// Opens a connection and a channel, and reads the queue's message count
/// (`queue.declare` passive: a missing queue is an error, not created).
pub(crate) async fn open_queue(
    brokers: &Brokers,
    tool: &str,
    queue: &str,
) -> Result<OpenQueue, CliError> {
    check_name(queue)?;
    let connection = brokers.connect(tool).await?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let opened = async {
        connection
            .register_callback(ConnectionEvents(events_tx.clone()))
            .await?;
        let channel = connection.open_channel(None).await?;
        channel.register_callback(ChannelEvents(events_tx)).await?;
        let declared = channel
            .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
            .await?;
        Ok::<_, amqprs::error::Error>((channel, declared))
    };
    match opened.await {
        Ok((channel, Some((_, count, _)))) => Ok(OpenQueue {
            connection,
            channel,
            count: u64::from(count),
            events,
        }),
        Ok((_, None)) => {
            broker::close(connection).await;
            Err(CliError::Internal("no answer to queue.declare".into()))
        }
        Err(error) => {
            let error = broker::explain(error, &mut events, Some(queue)).await;
            broker::close(connection).await;
            Err(error)
        }
    }
}

/// Fetches the next message without acknowledging it.
pub(crate) async fn get(channel: &Channel, queue: &str) -> Result<Option<Seen>, CliError> {
    Ok(get_raw(channel, queue).await?.map(|(seen, _)| seen))
}

/// [`get`], with the properties as the broker sent them, to republish them
/// unchanged (header types included).
pub(crate) async fn get_raw(
    channel: &Channel,
    queue: &str,
) -> Result<Option<(Seen, BasicProperties)>, CliError> {
    let got = channel
        .basic_get(BasicGetArguments::new(queue).no_ack(false).finish())
        .await
        .map_err(|e| CliError::from_amqp(e, Some(queue)))?;
    Ok(got.map(|(get_ok, properties, body)| {
        let seen = Seen {
            exchange: get_ok.exchange().clone(),
            routing_key: get_ok.routing_key().clone(),
            delivery_tag: get_ok.delivery_tag(),
            redelivered: get_ok.redelivered(),
            properties: properties_from_amqp(&properties),
            body,
        };
        (seen, properties)
    }))
}

/// Puts back every unacknowledged message up to `last_tag`.
pub(crate) async fn requeue_all(channel: &Channel, last_tag: u64) -> Result<(), CliError> {
    if last_tag == 0 {
        return Ok(());
    }
    channel
        .basic_nack(BasicNackArguments::new(last_tag, true, true))
        .await
        .map_err(|e| CliError::from_amqp(e, None))
}
