//! The glue between the protocol types of bus-core and amqprs: message
//! properties, header values, and forwarding of broker callbacks into the
//! session's own task.

use amqprs::channel::Channel;
use amqprs::connection::Connection;
use amqprs::{Ack, Nack, callbacks};
use amqprs::{BasicProperties, Cancel, Close, CloseChannel, Return};
use tokio::sync::mpsc::UnboundedSender;

use crate::service::Returned;

/// Something the broker told us asynchronously, forwarded from amqprs's
/// dispatcher task to the task that owns all the state it affects (a
/// session, or a tool's own loop).
#[derive(Debug)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// Publisher confirm: the broker took responsibility for the message(s).
    Ack {
        /// The publish sequence number on the channel.
        tag: u64,
        /// Whether every earlier unconfirmed number is acked too.
        multiple: bool,
    },
    /// Publisher confirm: the broker could not take the message(s).
    Nack {
        /// The publish sequence number on the channel.
        tag: u64,
        /// Whether every earlier unconfirmed number is nacked too.
        multiple: bool,
    },
    /// A mandatory message no queue was bound for.
    Returned(Box<Returned>),
    /// The broker cancelled one of our consumers (for example, its queue was deleted).
    ConsumerCancelled {
        /// The cancelled consumer.
        consumer_tag: String,
    },
    /// The broker closed a channel, usually for a protocol error.
    ChannelClosed {
        /// The AMQP reply code, e.g. 404.
        code: u16,
        /// The broker's text.
        text: String,
    },
    /// The broker closed the connection (shutdown, `close_connection`, ...).
    ConnectionClosed {
        /// The AMQP reply code, e.g. 320.
        code: u16,
        /// The broker's text.
        text: String,
    },
}

/// Forwards channel callbacks (confirms, returns, cancels, closes) as
/// [`BrokerEvent`]s. Sending never blocks: the receiver is unbounded
/// because confirms must never be dropped, and their number is bounded by
/// the number of publishes in flight.
#[derive(Debug)]
pub struct ChannelEvents(pub UnboundedSender<BrokerEvent>);

#[async_trait::async_trait]
impl callbacks::ChannelCallback for ChannelEvents {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ChannelClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ConsumerCancelled {
            consumer_tag: cancel.consumer_tag().clone(),
        });
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        // RabbitMQ does not use channel.flow any more; agree with it.
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        let _ = self.0.send(BrokerEvent::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        let _ = self.0.send(BrokerEvent::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        basic_properties: BasicProperties,
        content: Vec<u8>,
    ) {
        let _ = self.0.send(BrokerEvent::Returned(Box::new(Returned {
            reply_code: ret.reply_code(),
            reply_text: ret.reply_text().clone(),
            exchange: ret.exchange().clone(),
            routing_key: ret.routing_key().clone(),
            properties: crate::properties::from_amqp(&basic_properties),
            body: content,
        })));
    }
}

/// Forwards the connection's close notification as a [`BrokerEvent`].
#[derive(Debug)]
pub struct ConnectionEvents(pub UnboundedSender<BrokerEvent>);

#[async_trait::async_trait]
impl callbacks::ConnectionCallback for ConnectionEvents {
    async fn close(
        &mut self,
        _connection: &Connection,
        close: Close,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ConnectionClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }

    async fn blocked(&mut self, _connection: &Connection, reason: String) {
        // amqprs does not advertise `connection.blocked`, so RabbitMQ never
        // sends this; stalls are detected from missing confirms instead.
        tracing::warn!(%reason, "broker blocked the connection");
    }

    async fn unblocked(&mut self, _connection: &Connection) {
        tracing::info!("broker unblocked the connection");
    }

    async fn secret_updated(&mut self, _connection: &Connection) {}
}
